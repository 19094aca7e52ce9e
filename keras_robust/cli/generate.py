"""`keras-robust generate`: Langevin samples of a saved classifier, one grid."""

import os
import time

import numpy as np

from keras_robust import generation
from keras_robust.cli import data
from keras_robust.cli import defaults
from keras_robust.cli import zoo_source
from keras_robust.cli.errors import as_usage_errors
from keras_robust.cli.output import print_outputs
from keras_robust.cli.output import print_settings


def run(args):
    """Fits the PCA start, samples, writes the grid; 0 on success."""
    info = defaults.DATASETS[args.dataset]
    step_size = info.langevin_step_size if args.step_size is None else args.step_size
    sigma = info.pca_sigma if args.sigma is None else args.sigma
    with as_usage_errors():
        model, description = zoo_source.load_classifier(args)
        data.check_model_fits(model, args.dataset)
        x_train, y_train = data.arrays(args.dataset, "train", args.data_dir)
        initializer = generation.PCAInitializer(
            args.retained_variance, sigma=sigma
        ).fit(x_train, y_train)
        del x_train, y_train  # CIFAR's train split is 600 MB as float32
        sampler = generation.LangevinSampler(
            model,
            steps=args.steps,
            step_size=step_size,
            noise_std=args.noise_std,
            momentum=args.momentum,
            initializer=initializer,
            seed=args.seed,
        )
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    labels = np.repeat(np.arange(info.num_classes), args.per_class)
    print_settings(
        "generate",
        [
            ("model", description),
            (
                "start",
                f"class-wise PCA of the {args.dataset} train split "
                f"(retained variance {args.retained_variance:g}, sigma {sigma:g})",
            ),
            (
                "sampler",
                f"{args.steps} SGLD steps on the joint energy, step size "
                f"{step_size:g}, noise {args.noise_std:g}, momentum "
                f"{args.momentum:g}",
            ),
            ("samples", f"{args.per_class} per class, {len(labels)} in all"),
        ],
    )
    start = time.perf_counter()
    images = sampler.sample(labels, seed=args.seed, verbose=min(args.verbose, 1))
    seconds = time.perf_counter() - start
    logits = sampler.classifier.predict(images, batch_size=256, verbose=0)
    hits = float(np.mean(np.asarray(logits).argmax(-1) == labels))
    print(
        f"Sampled {len(images)} images in {seconds:.1f} s; the model classifies "
        f"{100 * hits:.1f}% of them as their target class."
    )
    generation.save_image_grid(
        images,
        args.out,
        nrow=args.per_class,
        row_labels=info.class_names[: info.num_classes],
    )
    print_outputs([("sample grid", args.out)])
    return 0
