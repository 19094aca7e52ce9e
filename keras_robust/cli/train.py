"""`keras-robust train`: adversarial training with `fit`, outputs in one folder."""

import dataclasses
import os
import time

import keras

from keras_robust import architectures
from keras_robust import callbacks
from keras_robust.cli import data
from keras_robust.cli import defaults
from keras_robust.cli.errors import UsageError
from keras_robust.cli.errors import as_usage_errors
from keras_robust.cli.evaluate import robustness_report
from keras_robust.cli.output import print_outputs
from keras_robust.cli.output import print_settings

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
ENERGY_PLOT_FILE = "energy_phases.png"  # written by EnergyPhaseLogger
ENERGY_CSV_FILE = "energy_phases.csv"
REPORT_FILE = "report.json"


def build_classifier(arch, info, activation):
    """The architecture for the data set's image shape and classes."""
    return defaults.ARCHITECTURES[arch](
        num_classes=info.num_classes,
        input_shape=info.image_shape,
        activation=activation,
    )


def build_method(method, classifier, info, args, epsilon):
    """The `kr.models` method with the CLI's attack settings."""
    kwargs = {"epsilon": epsilon, "seed": args.seed}
    if method == "fastat":
        # FastAT's own defaults: one FGSM step of 1.25 epsilon.
        kwargs["step_size"] = args.step_size
        kwargs["steps"] = 1 if args.steps is None else args.steps
    elif method == "dyart":
        if args.step_size is not None:
            raise UsageError(
                "--step-size does not apply to dyart: its training step is a "
                "boundary search of --steps iterations"
            )
        # DyART's training step is a boundary search; its radius r0 is
        # twice epsilon in the reference (16/255 at 8/255).
        kwargs["search_steps"] = (
            defaults.DYART_SEARCH_STEPS if args.steps is None else args.steps
        )
        kwargs["r0"] = 2 * epsilon
        kwargs["lam"] = info.dyart_lam
    else:
        kwargs["step_size"] = (
            epsilon * defaults.STEP_SIZE_FRACTION
            if args.step_size is None
            else args.step_size
        )
        kwargs["steps"] = defaults.STEPS if args.steps is None else args.steps
    if args.beta is not None:
        if method not in defaults.BETA_METHODS:
            raise UsageError(
                f"--beta applies to {', '.join(defaults.BETA_METHODS)}, not {method}"
            )
        kwargs["beta"] = args.beta
    return defaults.METHODS[method](classifier, **kwargs)


def build_optimizer(name, learning_rate, epochs, steps_per_epoch, method):
    """Adam at a constant rate, or SGD with momentum and a step decay."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    # Drop the rate 10x after each fraction of the epochs (whole epochs).
    boundaries = sorted(
        {
            max(1, int(fraction * epochs)) * steps_per_epoch
            for fraction in defaults.LR_DECAY_AT
        }
    )
    boundaries = [step for step in boundaries if step < epochs * steps_per_epoch]
    schedule = learning_rate
    if boundaries:
        rates = [learning_rate * 0.1**index for index in range(len(boundaries) + 1)]
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, rates)
    clipnorm = defaults.DYART_GLOBAL_CLIPNORM if method == "dyart" else None
    return keras.optimizers.SGD(
        schedule, momentum=defaults.SGD_MOMENTUM, global_clipnorm=clipnorm
    )


def _optimizer_text(name, learning_rate, weight_decay, method):
    if name == "adam":
        text = f"Adam, learning rate {learning_rate:g}"
    else:
        text = (
            f"SGD, momentum {defaults.SGD_MOMENTUM}, learning rate "
            f"{learning_rate:g} (x0.1 after 50% and 75% of the epochs)"
        )
        if method == "dyart":
            text += f", global clipnorm {defaults.DYART_GLOBAL_CLIPNORM}"
    if weight_decay:
        text += f", weight decay {weight_decay:g} (L2 {weight_decay / 2:g})"
    return text


@dataclasses.dataclass(frozen=True)
class Settings:
    """The options of one run, with the per-dataset defaults filled in."""

    arch: str
    augment: bool
    epochs: int
    batch_size: int
    epsilon: float
    optimizer: str
    learning_rate: float
    weight_decay: float
    out: str

    def path(self, file):
        return os.path.join(self.out, file)


def resolve_settings(args):
    """`Settings` from the parsed options: what was not given, per dataset."""
    info = defaults.DATASETS[args.dataset]

    def given(value, default):
        return default if value is None else value

    optimizer = given(args.optimizer, info.optimizer)
    # The data set's learning rate belongs to its optimizer.
    default_rate = (
        info.learning_rate
        if optimizer == info.optimizer
        else defaults.OPTIMIZER_LEARNING_RATES[optimizer]
    )
    return Settings(
        arch=given(args.arch, info.architecture),
        augment=given(args.augment, info.augment),
        epochs=given(args.epochs, info.epochs),
        batch_size=given(args.batch_size, info.batch_size),
        epsilon=given(args.epsilon, info.epsilon),
        optimizer=optimizer,
        learning_rate=given(args.learning_rate, default_rate),
        weight_decay=given(args.weight_decay, info.weight_decay),
        out=given(args.out, os.path.join("runs", f"{args.method}_{args.dataset}")),
    )


def run(args):
    """Trains, saves, evaluates; prints where every output is. 0 on success."""
    info = defaults.DATASETS[args.dataset]
    settings = resolve_settings(args)
    paths = {
        "model": settings.path(MODEL_FILE),
        "history": settings.path(HISTORY_FILE),
        "energy plot": settings.path(ENERGY_PLOT_FILE),
        "energy csv": settings.path(ENERGY_CSV_FILE),
        "report": settings.path(REPORT_FILE),
    }
    with as_usage_errors():
        keras.utils.set_random_seed(args.seed)
        train_data, images_per_epoch, steps_per_epoch = data.training_data(
            args.dataset,
            settings.batch_size,
            args.seed,
            settings.augment,
            args.data_dir,
            args.limit,
        )
        # Read the test split before training: a missing data set should
        # fail now, not after hours of training.
        x_test, y_test = data.arrays(
            args.dataset, "test", args.data_dir, limit=args.eval_samples
        )
        classifier = build_classifier(settings.arch, info, args.activation)
        if settings.weight_decay:
            # PyTorch SGD's coupled decay: L2(wd / 2) on every weight.
            classifier = architectures.with_coupled_weight_decay(
                classifier, settings.weight_decay
            )
        model = build_method(args.method, classifier, info, args, settings.epsilon)
        model.compile(
            optimizer=build_optimizer(
                settings.optimizer,
                settings.learning_rate,
                settings.epochs,
                steps_per_epoch,
                args.method,
            ),
            metrics=["accuracy"],
        )
        os.makedirs(settings.out, exist_ok=True)
    print_settings(
        "train",
        [
            ("method", f"{type(model).__name__} on {args.dataset}"),
            (
                "classifier",
                f"{settings.arch} ({args.activation}), {classifier.count_params():,} parameters",
            ),
            ("threat model", f"L-inf epsilon {settings.epsilon:.6g}"),
            ("training attack", repr(model.attack)),
            (
                "schedule",
                f"{settings.epochs} epoch{'s' * (settings.epochs != 1)} of {images_per_epoch} images, batch "
                f"{settings.batch_size}, {'augmented' if settings.augment else 'not augmented'}",
            ),
            (
                "optimizer",
                _optimizer_text(
                    settings.optimizer,
                    settings.learning_rate,
                    settings.weight_decay,
                    args.method,
                ),
            ),
            ("output", settings.out),
        ],
    )
    start = time.perf_counter()
    model.fit(
        train_data,
        epochs=settings.epochs,
        verbose=args.verbose,
        # The dataset shuffles itself; fit's shuffle only warns for tf.data.
        shuffle=False,
        callbacks=[
            callbacks.EnergyPhaseLogger(log_dir=settings.out, verbose=args.verbose),
            keras.callbacks.CSVLogger(paths["history"]),
        ],
    )
    seconds = time.perf_counter() - start
    model.save(paths["model"])
    print(
        f"\nTrained in {seconds:.1f} s; evaluating on {len(x_test)} test images "
        f"({args.eval_attack})",
        flush=True,
    )
    report = robustness_report(
        model,
        x_test,
        y_test,
        settings.epsilon,
        args.eval_attack,
        args.seed,
        not args.no_checks,
        defaults.EVAL_BATCH_SIZE,
        args.verbose,
    )
    print(report)
    report.to_json(paths["report"])
    print()
    print_outputs(list(paths.items()))
    return 0
