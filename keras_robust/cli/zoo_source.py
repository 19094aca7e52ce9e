"""The classifier of `evaluate` / `generate`: a .keras file or `--zoo NAME`."""

import fractions

from keras_robust import zoo
from keras_robust.cli import data
from keras_robust.cli.errors import UsageError


def add_options(command):
    """`--zoo`, `--checkpoint` and `--threat-model` of a subcommand."""
    command.add_argument(
        "--zoo",
        default=None,
        metavar="NAME",
        help="a RobustBench model instead of a .keras file (kr.zoo.list_models "
        "lists them; with --dataset cifar10 or cifar100 and --checkpoint)",
    )
    command.add_argument(
        "--checkpoint",
        default=None,
        metavar="FILE",
        help="the --zoo model's RobustBench checkpoint (.pt, .pth or "
        ".safetensors; default: the file in the Keras cache, if any)",
    )
    command.add_argument(
        "--threat-model",
        choices=zoo.registry.THREAT_MODELS,
        default="Linf",
        help="the leaderboard the --zoo model is from (default: %(default)s)",
    )


def load_classifier(args):
    """(model, description) for the command line's model file or zoo entry.

    Raises:
        UsageError: neither or both sources, --checkpoint without --zoo, a
            data set the zoo has no models for, or what kr.zoo.load raises
            (unknown name, missing or unfitting checkpoint).
    """
    if args.zoo is None:
        if args.model is None:
            raise UsageError("give a .keras model file, or --zoo NAME")
        if args.checkpoint is not None:
            raise UsageError("--checkpoint goes with --zoo NAME")
        return data.load_model(args.model), args.model
    if args.model is not None:
        raise UsageError(f"give a model file or --zoo, not both ({args.model!r})")
    if args.dataset not in zoo.registry.DATASETS:
        raise UsageError(
            f"--zoo models are RobustBench's {' and '.join(zoo.registry.DATASETS)} "
            f"models; --dataset {args.dataset} has none"
        )
    entry = zoo.info(args.zoo, args.dataset, args.threat_model)
    model = zoo.load(
        entry.name,
        checkpoint=args.checkpoint,
        dataset=entry.dataset,
        threat_model=entry.threat_model,
    )
    published = (
        f"published clean {entry.clean_accuracy}%, AutoAttack "
        f"{entry.autoattack_accuracy}% at {entry.threat_model} {entry.epsilon}"
    )
    return model, f"zoo {entry.name} ({published})"


def zoo_epsilon(args):
    """The leaderboard's epsilon (in its --threat-model) of a --zoo model, else None."""
    if args.zoo is None:
        return None
    epsilon = zoo.info(args.zoo, args.dataset, args.threat_model).epsilon
    return float(fractions.Fraction(epsilon)) if epsilon else None
