"""The RobustBench entries we can build: lookup, listing, metadata."""

import dataclasses
import difflib

from keras_robust.zoo.entries import ENTRIES

DATASETS = ("cifar10", "cifar100")
THREAT_MODELS = ("Linf", "L2")


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One RobustBench leaderboard entry and how to build it here.

    Attributes:
        name: RobustBench's model name, e.g. "Rebuffi2021Fixing_70_16_cutmix_extra".
        dataset: "cifar10" or "cifar100".
        threat_model: "Linf" or "L2".
        architecture: the `kr.architectures` builder ("DMWideResNet", ...).
        arguments: its architecture arguments (depth, width, activation, ...).
        num_classes: number of logits.
        normalization: the in-model (mean, std), or None (the network takes
            [0, 1] pixels as they are).
        checkpoint_key: the entry of the checkpoint dict holding the
            state_dict when it is not a usual one (None otherwise).
        clean_accuracy: published clean test accuracy (percent).
        autoattack_accuracy: published AutoAttack accuracy (percent) at
            `epsilon`.
        epsilon: the leaderboard's perturbation budget ("8/255", "0.5").
        additional_data: whether training used data beyond the training set.
        paper, link, venue: the publication.
        leaderboard_architecture: the leaderboard's architecture label.
        gdrive_id: the Google Drive id RobustBench downloads the
            checkpoint from.
        source: where each fact comes from (RobustBench file, line, commit).
    """

    name: str
    dataset: str
    threat_model: str
    architecture: str
    arguments: dict
    num_classes: int
    normalization: tuple | None
    checkpoint_key: str | None
    clean_accuracy: float | None
    autoattack_accuracy: float | None
    epsilon: str | None
    additional_data: bool
    paper: str | None
    link: str | None
    venue: str | None
    leaderboard_architecture: str | None
    gdrive_id: str
    source: str

    @property
    def download_url(self):
        """Where RobustBench downloads the checkpoint from (Google Drive)."""
        return f"https://drive.google.com/file/d/{self.gdrive_id}/view"


_ENTRIES = {
    (entry["dataset"], entry["threat_model"], entry["name"]): ZooEntry(**entry)
    for entry in ENTRIES
}


def check_dataset(dataset):
    if dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {DATASETS}, got {dataset!r}.")
    return dataset


def check_threat_model(threat_model):
    by_lower = {name.lower(): name for name in THREAT_MODELS}
    if not isinstance(threat_model, str) or threat_model.lower() not in by_lower:
        raise ValueError(
            f"`threat_model` must be one of {THREAT_MODELS}, got {threat_model!r}."
        )
    return by_lower[threat_model.lower()]


def list_models(dataset="cifar10", threat_model="Linf"):
    """Names of the RobustBench entries that `kr.zoo.load` can build.

    Args:
        dataset: "cifar10" or "cifar100".
        threat_model: "Linf" or "L2" (case-insensitive).

    Returns:
        A list of names in RobustBench's order.

    Example:
    >>> kr.zoo.list_models("cifar10", "Linf")[:2]
    ['Andriushchenko2020Understanding', 'Carmon2019Unlabeled']
    """
    dataset = check_dataset(dataset)
    threat_model = check_threat_model(threat_model)
    return [
        name
        for (data, threat, name) in _ENTRIES
        if (data, threat) == (dataset, threat_model)
    ]


def info(name, dataset="cifar10", threat_model="Linf"):
    """The `ZooEntry` (architecture, normalisation, published accuracies) of a model.

    Args:
        name: a name from `list_models(dataset, threat_model)`.
        dataset: "cifar10" or "cifar100".
        threat_model: "Linf" or "L2".

    Returns:
        A `ZooEntry`.

    Raises:
        ValueError: an unknown name; the message lists close matches and
            where else the name exists.

    Example:
    >>> kr.zoo.info("Gowal2020Uncovering_70_16").autoattack_accuracy
    57.2
    """
    dataset = check_dataset(dataset)
    threat_model = check_threat_model(threat_model)
    entry = _ENTRIES.get((dataset, threat_model, name))
    if entry is not None:
        return entry
    names = list_models(dataset, threat_model)
    close = difflib.get_close_matches(str(name), names, n=5, cutoff=0.5)
    elsewhere = [f"{d}/{t}" for (d, t, n) in _ENTRIES if n == name]
    message = f"No zoo model {name!r} for {dataset} / {threat_model}."
    if close:
        message += f" Close matches: {close}."
    if elsewhere:
        message += f" It exists for {elsewhere} (pass dataset= / threat_model=)."
    message += (
        " kr.zoo.list_models(dataset, threat_model) lists the "
        f"{len(names)} available here (RobustBench entries whose architecture "
        "keras_robust has)."
    )
    raise ValueError(message)
