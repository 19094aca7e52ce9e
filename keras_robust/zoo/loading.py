"""Build a zoo entry's network and load its checkpoint."""

import os

import keras

from keras_robust import architectures
from keras_robust.architectures import _blocks
from keras_robust.zoo.registry import info

CIFAR_SHAPE = (32, 32, 3)
CACHE_SUBDIR = "keras_robust_zoo"
SUFFIXES = (".pt", ".pth", ".safetensors")


def build(name, dataset="cifar10", threat_model="Linf", input_shape=None):
    """A zoo entry's network with fresh (untrained) weights.

    Args:
        name: a name from `kr.zoo.list_models(dataset, threat_model)`.
        dataset: "cifar10" or "cifar100".
        threat_model: "Linf" or "L2".
        input_shape: None or (32, 32, 3): the CIFAR models were trained on
            32x32 RGB images, and anything else is refused.

    Returns:
        A functional `keras.Model` taking [0, 1] images (its standardisation
        is inside) and returning logits.

    Example:
    >>> net = kr.zoo.build("Rebuffi2021Fixing_R18_ddpm")
    """
    entry = info(name, dataset, threat_model)
    _check_input_shape(entry, input_shape)
    arguments = dict(entry.arguments)
    model_name = "zoo_" + "".join(c if c.isalnum() else "_" for c in entry.name)
    common = {"num_classes": entry.num_classes, "name": model_name}
    if entry.architecture in ("DMWideResNet", "DMPreActResNet"):
        mean, std = entry.normalization
        builder = getattr(architectures, entry.architecture)
        return builder(mean=mean, std=std, **arguments, **common)
    builder = {
        "WideResNet": architectures.WideResNet,
        "ResNet18": architectures.ResNet18,
        "PreActResNet18": architectures.PreActResNet18,
    }[entry.architecture]
    return builder(normalization=entry.normalization, **arguments, **common)


def load(
    name,
    checkpoint=None,
    dataset="cifar10",
    threat_model="Linf",
    file_hash=None,
    input_shape=None,
    weights_only=True,
):
    """A RobustBench model in Keras: its architecture with its trained weights.

    The checkpoint is RobustBench's PyTorch file (`.pt`, as
    `robustbench.utils.load_model` saves it under
    `models/{dataset}/{threat_model}/{name}.pt`) or a `.safetensors`
    conversion of it. Nothing is downloaded without `checkpoint`: RobustBench
    publishes no file hashes, and its Google Drive links need a browser or
    `gdown` for large files.

    Args:
        name: a name from `kr.zoo.list_models(dataset, threat_model)`.
        checkpoint: a path to the checkpoint; or an http(s) URL, downloaded
            once with `keras.utils.get_file` (into the Keras cache,
            `~/.keras/keras_robust_zoo/`) and checked against `file_hash`;
            or None to use a file already in that cache
            (`keras_robust_zoo/{dataset}/{threat_model}/{name}.pt`).
        dataset: "cifar10" or "cifar100".
        threat_model: "Linf" or "L2".
        file_hash: SHA-256 (or MD5) of the file at a URL `checkpoint`
            (required for URLs).
        input_shape: None or (32, 32, 3).
        weights_only: passed to `torch.load` (PyTorch's safe unpickler).

    Returns:
        A functional `keras.Model` on [0, 1] images returning logits. Its
        published accuracies are `kr.zoo.info(name, dataset,
        threat_model)`.

    Raises:
        ValueError: unknown name (close matches listed), non-CIFAR
            `input_shape`, a checkpoint that does not fit the architecture
            or is corrupt, a URL without `file_hash`.
        FileNotFoundError: no checkpoint given or cached; the message says
            where to download it and how to pass it.

    Example:

    ```python
    net = kr.zoo.load("Rebuffi2021Fixing_70_16_cutmix_extra",
                      checkpoint="models/cifar10/Linf/Rebuffi2021Fixing_70_16_cutmix_extra.pt")
    ```
    """
    entry = info(name, dataset, threat_model)
    _check_input_shape(entry, input_shape)
    path = resolve_checkpoint(entry, checkpoint, file_hash)
    # Read (and reject a corrupt file) before the expensive build.
    state = architectures.torch_weights.read_state_dict(
        path, key=entry.checkpoint_key, weights_only=weights_only
    )
    # Zero placeholders: every weight is overwritten by the checkpoint.
    with _blocks.placeholder_initializers():
        model = build(entry.name, entry.dataset, entry.threat_model)
    architectures.load_torch_weights(model, state, strict=True)
    return model


def resolve_checkpoint(entry, checkpoint, file_hash=None):
    """The local path of an entry's checkpoint (downloading a URL once)."""
    subdir = os.path.join(CACHE_SUBDIR, entry.dataset, entry.threat_model)
    if checkpoint is None:
        for suffix in SUFFIXES:
            cached = os.path.join(_cache_dir(), subdir, entry.name + suffix)
            if os.path.isfile(cached):
                return cached
        raise FileNotFoundError(_missing_message(entry, subdir))
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(
            "`checkpoint` must be a path or an http(s) URL, got "
            f"{type(checkpoint).__name__}."
        )
    checkpoint = os.fspath(checkpoint)
    if checkpoint.startswith(("http://", "https://")):
        if file_hash is None:
            raise ValueError(
                "`file_hash` (the file's SHA-256) is required to download "
                f"`checkpoint` {checkpoint!r}: RobustBench publishes no hashes, "
                "and an unchecked download could be anything."
            )
        suffix = next((s for s in SUFFIXES if checkpoint.endswith(s)), ".pt")
        try:
            return keras.utils.get_file(
                fname=entry.name + suffix,
                origin=checkpoint,
                file_hash=file_hash,
                cache_subdir=subdir,
            )
        except Exception as error:  # noqa: BLE001 - no network, HTTP errors, bad hash
            raise FileNotFoundError(
                f"Could not download {checkpoint!r} ({error}). "
                + _missing_message(entry, subdir)
            ) from error
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(
            f"`checkpoint` {checkpoint!r} does not exist. "
            + _missing_message(entry, subdir)
        )
    return checkpoint


def _cache_dir():
    return os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))


def _missing_message(entry, subdir):
    return (
        f"No checkpoint for zoo model {entry.name!r} ({entry.dataset}, "
        f"{entry.threat_model}). RobustBench hosts it at {entry.download_url} "
        f"(`gdown {entry.gdrive_id}`, or `robustbench.utils.load_model("
        f"{entry.name!r}, dataset={entry.dataset!r}, "
        f"threat_model={entry.threat_model!r})`, which saves it as "
        f"models/{entry.dataset}/{entry.threat_model}/{entry.name}.pt). Then "
        f"pass checkpoint='path/to/{entry.name}.pt' (.pt, .pth or "
        f".safetensors), or put the file in "
        f"{os.path.join(_cache_dir(), subdir)}/."
    )


def _check_input_shape(entry, input_shape):
    if input_shape is None:
        return
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if shape != CIFAR_SHAPE:
        raise ValueError(
            f"`input_shape` must be {CIFAR_SHAPE} for {entry.name!r}: RobustBench's "
            f"{entry.dataset} models take 32x32 RGB images in [0, 1], got "
            f"{input_shape!r}. Resize the images instead."
        )
