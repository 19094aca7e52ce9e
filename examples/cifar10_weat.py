"""Robust CIFAR-10 with WEAT-adv, end to end: the seed paper's pipeline.

    python examples/cifar10_weat.py --backend jax --out runs/cifar10_weat
    python examples/cifar10_weat.py --smoke   # the whole pipeline in < 2 min on CPU

1. Data: CIFAR-10 through `kr.datasets.load` (tensorflow-datasets); the last
   1,000 training images are held out for checkpoint selection (never the
   test set); random crop (4-pixel zero padding) and horizontal flip.
2. Model: ResNet-18 (CIFAR stem) with PyTorch-style coupled weight decay
   5e-4 (`kr.architectures.with_coupled_weight_decay`), trained with
   `kr.models.WEAT(variant="adv")`: epsilon 8/255, PGD-10 with step 2/255 on
   the KL, beta 6; SGD momentum 0.9 with the one-cycle schedule (peak 0.1,
   pct_start 0.25), batch 128, 100 epochs — the reference recipe.
3. During training: `kr.callbacks.RobustValidation` (PGD-20 accuracy on the
   held-out images, keeps the best weights), `kr.callbacks.EnergyPhaseLogger`
   (energy gap, phases, robust-overfitting warning, plot), a CSV history.
4. Evaluation: AutoAttack "standard" on the test set, report as JSON.
5. Generation: class-wise PCA start and SGLD on the joint energy, a sheet of
   samples per class.

Outputs in `--out`: model.keras, history.csv, energy_phases.png (and CSV),
report.json, samples.png. `--smoke` runs the same code on 128 random
mock-CIFAR images (`tfds.testing.mock_data`, no download) with a SmallCNN,
one epoch, a 2-step attack, AutoAttack "fast" without the sanity checks on
32 test images and 5 SGLD steps: it checks the plumbing, not the numbers.
"""

import argparse
import contextlib
import os
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--backend",
        choices=["tensorflow", "jax", "torch"],
        default=None,
        help="Keras backend (default: $KERAS_BACKEND or Keras' own)",
    )
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default="runs/cifar10_weat", help="output directory")
    parser.add_argument("--data-dir", default=None, help="prepared tfds data folder")
    parser.add_argument(
        "--eval-samples", type=int, default=10000, help="test images for AutoAttack"
    )
    parser.add_argument("--per-class", type=int, default=8, help="samples per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--smoke", action="store_true", help="tiny end-to-end run on random mock data"
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.backend:
        # Keras reads the backend when it is first imported, just below.
        os.environ["KERAS_BACKEND"] = args.backend
    import keras
    import numpy as np

    import keras_robust as kr

    settings = smoke_settings(args) if args.smoke else full_settings(args)
    os.makedirs(args.out, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    print(f"backend {keras.backend.backend()}; outputs in {args.out}")
    start = time.perf_counter()

    with settings["data_context"]:
        load = dict(data_dir=args.data_dir, seed=args.seed)
        train = kr.datasets.load(
            "cifar10", settings["train_split"], args.batch_size, **load
        )
        held_out = kr.datasets.load("cifar10", settings["val_split"], 256, **load)
        test = kr.datasets.load("cifar10", "test", 256, **load)
        plain = dict(augment=False, shuffle=False, **load)
        x_train, y_train = arrays(
            kr.datasets.load("cifar10", settings["train_split"], 512, **plain)
        )
        x_test, y_test = arrays(test, limit=settings["eval_samples"])
        held_out = held_out.take(settings["val_batches"])

    net = kr.architectures.with_coupled_weight_decay(settings["net"](kr), 5e-4)
    model = kr.models.WEAT(
        net,
        epsilon=8 / 255,
        step_size=2 / 255,
        steps=settings["attack_steps"],
        beta=6.0,
        variant="adv",
        seed=args.seed,
    )
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    schedule = kr.schedules.OneCycle(
        0.1, total_steps=settings["epochs"] * steps_per_epoch, pct_start=0.25
    )
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9))
    model.fit(
        train,
        epochs=settings["epochs"],
        callbacks=[
            kr.callbacks.RobustValidation(held_out),
            kr.callbacks.EnergyPhaseLogger(log_dir=args.out),
            keras.callbacks.CSVLogger(os.path.join(args.out, "history.csv")),
        ],
        shuffle=False,  # `kr.datasets.load` shuffles the training split itself.
        verbose=2,
    )
    model.save(os.path.join(args.out, "model.keras"))

    report = kr.evaluation.evaluate_robustness(
        model,
        x_test,
        y_test,
        epsilon=8 / 255,
        attacks=settings["autoattack"],
        checks=settings["checks"],
    )
    print(report)
    report.to_json(os.path.join(args.out, "report.json"))

    initializer = kr.generation.PCAInitializer(0.95, sigma=0.01).fit(x_train, y_train)
    sampler = kr.generation.LangevinSampler(
        model,
        steps=settings["sgld_steps"],
        step_size=1.0,
        initializer=initializer,
        seed=args.seed,
    )
    labels = np.repeat(np.arange(10), args.per_class)
    samples = sampler.sample(labels)
    grid = kr.generation.save_image_grid(
        samples,
        os.path.join(args.out, "samples.png"),
        nrow=args.per_class,
        row_labels=CLASS_NAMES,
    )
    print(f"done in {time.perf_counter() - start:.0f} s")
    for name in ("model.keras", "history.csv", "report.json"):
        print(f"  {os.path.join(args.out, name)}")
    print(f"  {os.path.join(args.out, 'energy_phases.png')}\n  {grid}")


CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


def full_settings(args):
    return {
        "data_context": contextlib.nullcontext(),
        "train_split": "train[:49000]",
        "val_split": "train[49000:]",
        "val_batches": -1,
        "eval_samples": args.eval_samples,
        "net": lambda kr: kr.architectures.ResNet18(10),
        "epochs": args.epochs,
        "attack_steps": 10,
        "autoattack": "standard",
        "checks": True,
        "sgld_steps": 50,
    }


def smoke_settings(args):
    import tensorflow_datasets as tfds

    args.batch_size = min(args.batch_size, 16)
    args.per_class = min(args.per_class, 2)
    return {
        # Random images of CIFAR-10's structure; split names and sizes are
        # not honoured, so every split holds the same 128 mock examples.
        "data_context": tfds.testing.mock_data(num_examples=128),
        "train_split": "train",
        "val_split": "train",
        "val_batches": 1,
        "eval_samples": 32,
        "net": lambda kr: kr.architectures.SmallCNN(10, (32, 32, 3), batch_norm=True),
        "epochs": 1,
        "attack_steps": 2,
        "autoattack": "fast",
        "checks": False,
        "sgld_steps": 5,
    }


def arrays(dataset, limit=None):
    """Numpy (images, labels) of a dataset, up to `limit` examples."""
    import numpy as np

    images, labels, count = [], [], 0
    for x, y in dataset:
        images.append(np.asarray(x))
        labels.append(np.asarray(y))
        count += len(labels[-1])
        if limit is not None and count >= limit:
            break
    images, labels = np.concatenate(images), np.concatenate(labels)
    return (images, labels) if limit is None else (images[:limit], labels[:limit])


if __name__ == "__main__":
    main()
