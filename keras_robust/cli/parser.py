"""The `keras-robust` command line: subcommands, options and their checks.

Every option's help string says its default; per-dataset defaults are
listed in each subcommand's epilog (and in docs/cli.md).
"""

import argparse
import fractions
import math
import os
import textwrap

from keras_robust.cli import defaults
from keras_robust.cli import errors
from keras_robust.cli import zoo_source
from keras_robust.layers import activation_layer
from keras_robust.layers.activation_layer import SAT_ACTIVATIONS

BACKENDS = ("tensorflow", "jax", "torch")
# What keras.saving.load_model reads.
MODEL_EXTENSIONS = (".keras", ".h5")


class Parser(argparse.ArgumentParser):
    """argparse, with a bad command line reported as ONE line (status 2).

    argparse prints the whole usage before the error; the usages here are
    long, so the error line ends with where to find them instead.
    """

    def error(self, message):
        errors.report(f"{message} (see `{self.prog} --help`)", errors.USAGE_STATUS)
        self.exit(errors.USAGE_STATUS)


# ---- argument types: each raises ArgumentTypeError with a clear message ----


def _integer_at_least(minimum):
    """An argparse type: an integer >= `minimum`."""

    def integer(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return integer


positive_int = _integer_at_least(1)
non_negative_int = _integer_at_least(0)


def number(text):
    """A finite number; a fraction such as `8/255` is accepted too."""
    try:
        value = float(fractions.Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"expected a number such as 0.03 or 8/255, got {text!r}"
        ) from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def positive_number(text):
    """A number > 0 (fractions accepted)."""
    value = number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_number(text):
    """A number >= 0 (fractions accepted)."""
    value = number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def unit_interval(text):
    """A number in [0, 1)."""
    value = number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {text}")
    return value


def retained_variance(text):
    """A number in (0, 1]."""
    value = number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1], got {text}")
    return value


def model_file(text):
    """The path of an existing `.keras` (or legacy `.h5`) file."""
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"not a file: {text!r}")
    if not text.endswith(MODEL_EXTENSIONS):
        raise argparse.ArgumentTypeError(
            f"expected a .keras model file (or a legacy .h5 one), got {text!r}"
        )
    return text


def activation_name(text):
    """A name `kr.layers.activation_layer` accepts."""
    try:
        activation_layer(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"unknown activation {text!r}; use one of {', '.join(SAT_ACTIVATIONS)} "
            "or another Keras activation name"
        ) from None
    return text


# ---- the parser ------------------------------------------------------------


def _per_dataset(attribute, formatter=str):
    """'digits X, cifar10 Y, ...' for a help string."""
    return ", ".join(
        f"{name} {formatter(getattr(info, attribute))}"
        for name, info in defaults.DATASETS.items()
    )


def _wrap(text):
    """A description wrapped by hand (the raw formatter keeps line breaks)."""
    return textwrap.fill(text, width=78)


def _epsilon_text(value):
    return "8/255" if math.isclose(value, 8 / 255) else f"{value:g}"


def _common_options():
    """Options every subcommand takes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dataset",
        required=True,
        choices=tuple(defaults.DATASETS),
        help="data set (required): digits ships with scikit-learn and works "
        "offline; cifar10, cifar100 and svhn come from tensorflow-datasets",
    )
    common.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="folder of prepared tensorflow-datasets data (default: "
        "$TFDS_DATA_DIR or ~/tensorflow_datasets); ignored for digits",
    )
    common.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="Keras backend to run on; if it is not the one Keras started "
        "with, the command re-runs itself with KERAS_BACKEND set (default: "
        "$KERAS_BACKEND or Keras' configured backend)",
    )
    common.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="random seed of weights, data order, attacks and sampling "
        "(default: %(default)s)",
    )
    common.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="0 silent, 1 progress bars, 2 one line per epoch (default: %(default)s)",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an error instead of one line",
    )
    return common


def _add_train(subparsers, common):
    table = "\n".join(
        f"  {name:<9} {info.architecture:<15} {_epsilon_text(info.epsilon):<8}"
        f"{info.epochs:<7}{info.batch_size:<6}{info.optimizer:<10}"
        f"{info.learning_rate:<7g}{info.weight_decay:g}"
        for name, info in defaults.DATASETS.items()
    )
    epilog = textwrap.dedent(
        """\
        per-dataset defaults (step size epsilon/4, 10 attack steps):
          dataset   arch            epsilon epochs batch optimizer lr     weight decay
        {table}
          sgd: momentum 0.9, learning rate x0.1 after 50% and 75% of the epochs;
          weight decay: coupled, as in PyTorch SGD: an L2(wd/2) penalty on
          every kernel, bias and BatchNorm weight.

        writes into --out: model.keras, history.csv, energy_phases.png (and
        energy_phases.csv), report.json.

        example:
          keras-robust train --method weat --dataset digits --out runs/demo
        """
    ).format(table=table)
    train = subparsers.add_parser(
        "train",
        parents=[common],
        help="adversarially train a classifier with model.fit",
        description=_wrap(
            "Adversarially train a classifier on a data set with model.fit, "
            "log the energy phases, save the model and evaluate it on the test "
            "split."
        ),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument(
        "--method",
        required=True,
        choices=tuple(defaults.METHODS),
        help="training method (required): kr.models.AT, TRADES, MART, WEAT, "
        "SCORE, DyART or FastAT",
    )
    train.add_argument(
        "--arch",
        choices=tuple(defaults.ARCHITECTURES),
        default=None,
        help="classifier architecture (default: per dataset, "
        f"{_per_dataset('architecture')})",
    )
    train.add_argument(
        "--activation",
        type=activation_name,
        default="relu",
        help="activation at every site: "
        f"{', '.join(SAT_ACTIVATIONS)} or another Keras activation name "
        "(default: %(default)s)",
    )
    train.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random crop of the zero-padded image (and horizontal flip for "
        "CIFAR) of kr.datasets.load (default: per dataset, "
        f"{_per_dataset('augment', lambda v: 'on' if v else 'off')})",
    )
    train.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help=f"training epochs (default: per dataset, {_per_dataset('epochs')})",
    )
    train.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="training batch size (default: per dataset, "
        f"{_per_dataset('batch_size')})",
    )
    train.add_argument(
        "--epsilon",
        type=positive_number,
        default=None,
        help="L-inf radius of the threat model, e.g. 0.2 or 8/255 (default: "
        f"per dataset, {_per_dataset('epsilon', _epsilon_text)})",
    )
    train.add_argument(
        "--step-size",
        type=positive_number,
        default=None,
        help="step of the training attack (default: epsilon/4; fastat 1.25 epsilon)",
    )
    train.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help=f"iterations of the training attack (default: {defaults.STEPS}; "
        "fastat 1; dyart: boundary-search steps, default "
        f"{defaults.DYART_SEARCH_STEPS})",
    )
    train.add_argument(
        "--beta",
        type=non_negative_number,
        default=None,
        help="weight of the robustness term of trades, mart, weat and score "
        "(default: the method's, 6.0; score 3.0)",
    )
    train.add_argument(
        "--optimizer",
        choices=("adam", "sgd"),
        default=None,
        help=f"optimizer (default: per dataset, {_per_dataset('optimizer')})",
    )
    train.add_argument(
        "--learning-rate",
        type=positive_number,
        default=None,
        help="(initial) learning rate (default: per dataset, "
        f"{_per_dataset('learning_rate', lambda v: f'{v:g}')}; with another "
        "--optimizer than the dataset's: "
        + ", ".join(
            f"{name} {rate:g}"
            for name, rate in defaults.OPTIMIZER_LEARNING_RATES.items()
        )
        + ")",
    )
    train.add_argument(
        "--weight-decay",
        type=non_negative_number,
        default=None,
        help="coupled weight decay as in PyTorch SGD: an L2(wd/2) penalty on "
        "every kernel, bias and BatchNorm weight "
        "(kr.architectures.with_coupled_weight_decay) (default: per dataset, "
        f"{_per_dataset('weight_decay', lambda v: f'{v:g}')})",
    )
    train.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        metavar="N",
        help="train on only this many images per epoch (a random subset "
        "each epoch), for smoke runs (default: the whole train split)",
    )
    train.add_argument(
        "--eval-attack",
        choices=defaults.EVAL_ATTACKS,
        default="pgd20",
        help="attack of the final report on the test split: pgd20 (PGD-20, "
        "step epsilon/4), apgd (APGD-CE, 100 steps), autoattack (standard), "
        "autoattack-plus (AutoAttack+) or autoattack-fast (APGD-CE + APGD-T) "
        "(default: %(default)s)",
    )
    train.add_argument(
        "--eval-samples",
        type=positive_int,
        default=None,
        metavar="N",
        help="evaluate on the first N test images (default: all)",
    )
    train.add_argument(
        "--no-checks",
        action="store_true",
        help="skip the report's sanity checks for masked gradients",
    )
    train.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="output folder (default: runs/<method>_<dataset>)",
    )


def _add_evaluate(subparsers, common):
    evaluate = subparsers.add_parser(
        "evaluate",
        parents=[common],
        help="clean and robust accuracy of a saved model on the test split",
        description=_wrap(
            "Load a .keras model and report its clean and robust accuracy on "
            "the test split (kr.evaluation.evaluate_robustness), with sanity "
            "checks for masked gradients."
        ),
        epilog=textwrap.dedent(
            """\
            attacks:
              pgd20            PGD-20, cross-entropy, step epsilon/4, random start
              apgd             APGD-CE, 100 iterations
              autoattack       AutoAttack standard: APGD-CE, APGD-T, FAB-T, Square
              autoattack-plus  AutoAttack+: APGD-CE, APGD-DLR, FAB (5 restarts
                               each), Square, APGD-T, FAB-T
              autoattack-fast  APGD-CE and APGD-T
            --attack autoattack --version rand: APGD-CE and APGD-DLR averaging
            20 gradients (EOT), for models that draw noise at inference

            examples:
              keras-robust evaluate runs/demo/model.keras --dataset digits --attack autoattack
              keras-robust evaluate runs/demo/model.keras --dataset digits --norm l1 --epsilon 2
              keras-robust evaluate --zoo Rebuffi2021Fixing_R18_ddpm --checkpoint Rebuffi2021Fixing_R18_ddpm.pt --dataset cifar10 --resume aa_state.json
            """
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument(
        "model",
        type=model_file,
        nargs="?",
        default=None,
        help="a .keras file (e.g. from train), or none with --zoo",
    )
    zoo_source.add_options(evaluate)
    evaluate.add_argument(
        "--attack",
        choices=defaults.EVAL_ATTACKS,
        default="autoattack",
        help="evaluation attack (default: %(default)s)",
    )
    evaluate.add_argument(
        "--version",
        choices=("standard", "plus", "rand", "fast"),
        default=None,
        help="AutoAttack version of --attack autoattack: standard, plus "
        "(AutoAttack+), rand (APGD-CE and APGD-DLR with 20 EOT passes, for "
        "randomized defenses) or fast (default: standard)",
    )
    evaluate.add_argument(
        "--norm",
        choices=("linf", "l2", "l1"),
        default=None,
        help="threat model (default: the --zoo leaderboard's, else a kr.models "
        "model's training norm, else linf); with l1, PGD has no L1 form "
        "(--attack pgd20 is refused)",
    )
    evaluate.add_argument(
        "--epsilon",
        type=positive_number,
        default=None,
        help="radius in --norm, e.g. 0.2 or 8/255 (default: the leaderboard's "
        "or the model's training epsilon in that norm, else for linf per "
        f"dataset, {_per_dataset('epsilon', _epsilon_text)})",
    )
    evaluate.add_argument(
        "--n-samples",
        type=positive_int,
        default=None,
        metavar="N",
        help="evaluate on the first N test images (default: all)",
    )
    evaluate.add_argument(
        "--batch-size",
        type=positive_int,
        default=defaults.EVAL_BATCH_SIZE,
        help="evaluation batch size (default: %(default)s)",
    )
    evaluate.add_argument(
        "--no-checks",
        action="store_true",
        help="skip the sanity checks for masked gradients",
    )
    evaluate.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="also write the report as JSON to this file (default: none)",
    )
    evaluate.add_argument(
        "--resume",
        default=None,
        metavar="STATE",
        help="make the evaluation resumable: progress is saved to this JSON "
        "file after every batch, and a killed run started again with the same "
        "arguments and --resume STATE continues where it stopped (default: none)",
    )


def _add_generate(subparsers, common):
    generate = subparsers.add_parser(
        "generate",
        parents=[common],
        help="sample class-conditional images with Langevin dynamics",
        description=_wrap(
            "Sample class-conditional images from a saved classifier with "
            "kr.generation.LangevinSampler (SGLD on the joint energy), starting "
            "from a class-wise PCA start fitted on the train split, and write "
            "them as one grid, a row per class."
        ),
        epilog=textwrap.dedent(
            """\
            example:
              keras-robust generate runs/demo/model.keras --dataset digits --per-class 8 --out runs/demo/samples.png
            """
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    generate.add_argument(
        "model",
        type=model_file,
        nargs="?",
        default=None,
        help="a .keras file (e.g. from train), or none with --zoo",
    )
    zoo_source.add_options(generate)
    generate.add_argument(
        "--per-class",
        type=positive_int,
        metavar="N",
        default=8,
        help="samples per class, one row per class (default: %(default)s)",
    )
    generate.add_argument(
        "--out",
        default="samples.png",
        metavar="FILE",
        help="the image grid to write, PNG or PDF (default: %(default)s)",
    )
    generate.add_argument(
        "--steps",
        type=positive_int,
        default=defaults.LANGEVIN_STEPS,
        help="Langevin steps (default: %(default)s)",
    )
    generate.add_argument(
        "--step-size",
        type=positive_number,
        default=None,
        help="Langevin step eta (default: per dataset, "
        f"{_per_dataset('langevin_step_size', lambda v: f'{v:g}')})",
    )
    generate.add_argument(
        "--sigma",
        type=positive_number,
        default=None,
        help="spread of the class-wise PCA start (default: per dataset, "
        f"{_per_dataset('pca_sigma', lambda v: f'{v:g}')})",
    )
    generate.add_argument(
        "--retained-variance",
        type=retained_variance,
        default=defaults.PCA_RETAINED_VARIANCE,
        help="share of each class's variance the PCA start keeps "
        "(default: %(default)s)",
    )
    generate.add_argument(
        "--noise-std",
        type=non_negative_number,
        default=defaults.LANGEVIN_NOISE_STD,
        help="standard deviation of the Langevin noise (default: %(default)s)",
    )
    generate.add_argument(
        "--momentum",
        type=unit_interval,
        default=0.0,
        help="SGLD momentum in [0, 1); 0 is plain SGLD (default: %(default)s)",
    )


def _add_analyze(subparsers, common):
    analyze = subparsers.add_parser(
        "analyze",
        parents=[common],
        help="boundary margins, input gradients or energy paths of a saved model",
        description=_wrap(
            "Analyse a saved classifier on the test split with kr.analysis: "
            "margins (each point's distance to the decision boundary and the "
            "speed one training step moves it, DyART's boundary dynamics), "
            "gradients (input gradients of the loss as images) or energy (the "
            "marginal and joint energies along attack and random directions)."
        ),
        epilog=textwrap.dedent(
            """\
            examples:
              keras-robust analyze runs/demo/model.keras --dataset digits --what margins
              keras-robust analyze runs/demo/model.keras --dataset digits --what gradients --out runs/demo/analysis
            """
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    analyze.add_argument(
        "model",
        type=model_file,
        nargs="?",
        default=None,
        help="a .keras file (e.g. from train), or none with --zoo",
    )
    zoo_source.add_options(analyze)
    analyze.add_argument(
        "--what",
        required=True,
        choices=("margins", "gradients", "energy"),
        help="the analysis to run (required)",
    )
    analyze.add_argument(
        "--epsilon",
        type=positive_number,
        default=None,
        help="L-inf radius: the vulnerability threshold of margins, the length "
        "of the energy paths (default: the model's training epsilon, else per "
        f"dataset, {_per_dataset('epsilon', _epsilon_text)})",
    )
    analyze.add_argument(
        "--n-samples",
        type=positive_int,
        default=500,
        metavar="N",
        help="analyse the first N test images (default: %(default)s)",
    )
    analyze.add_argument(
        "--out",
        default="analysis",
        metavar="DIR",
        help="folder of the JSON and PNG outputs (default: %(default)s)",
    )


def build_parser():
    """The `keras-robust` parser: `train`, `evaluate`, `generate`, `analyze`."""
    parser = Parser(
        prog=errors.PROG,
        description="Train, evaluate and sample from adversarially robust "
        "Keras classifiers (keras_robust).",
        epilog="`keras-robust COMMAND --help` explains the options of a command.",
    )
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="the command to run"
    )
    common = _common_options()
    _add_train(subparsers, common)
    _add_evaluate(subparsers, common)
    _add_generate(subparsers, common)
    _add_analyze(subparsers, common)
    return parser
