"""Data and saved models for the CLI: pipelines, arrays and compatibility checks."""

import math

import keras
import numpy as np

from keras_robust import datasets
from keras_robust.cli import defaults
from keras_robust.cli.errors import UsageError

# Batch size used only to read a split into memory.
_READ_BATCH = 1000


def training_data(name, batch_size, seed, augment, data_dir=None, limit=None):
    """The shuffled (and augmented) train split for `fit`.

    The last incomplete batch of each epoch is dropped: on JAX a smaller
    batch costs one more compilation, and the shuffle drops different images
    each epoch.

    Args:
        name: data set name.
        batch_size: images per batch.
        seed: seed of the order and the augmentation.
        augment: random crop (and flip) of `kr.datasets.load`.
        data_dir: tensorflow-datasets folder.
        limit: None, or the number of images per epoch (a fresh random subset
            each epoch).

    Returns:
        `(dataset, images_per_epoch, steps_per_epoch)`.
    """
    info = defaults.DATASETS[name]
    images = info.train_size if limit is None else min(limit, info.train_size)
    if images < batch_size:
        raise UsageError(
            f"--batch-size {batch_size} is larger than the {images} training "
            "images per epoch; lower --batch-size or raise --limit"
        )
    dataset = datasets.load(
        name,
        "train",
        batch_size=batch_size,
        augment=augment,
        seed=seed,
        data_dir=data_dir,
        drop_remainder=True,
    )
    if limit is not None and limit < info.train_size:
        dataset = dataset.unbatch().take(limit).batch(batch_size, drop_remainder=True)
    steps = images // batch_size
    return dataset, steps * batch_size, steps


def arrays(name, split, data_dir=None, limit=None):
    """A whole split (or its first `limit` images) as numpy arrays.

    Returns:
        `(images, labels)`: float32 (n, H, W, C) in [0, 1] and int32 (n,).
    """
    dataset = datasets.load(
        name,
        split,
        batch_size=_READ_BATCH,
        augment=False,
        shuffle=False,
        data_dir=data_dir,
    )
    images, labels, count = [], [], 0
    for x_batch, y_batch in dataset.as_numpy_iterator():
        images.append(x_batch)
        labels.append(y_batch)
        count += len(x_batch)
        if limit is not None and count >= limit:
            break
    images = np.concatenate(images)[:limit]
    labels = np.concatenate(labels)[:limit]
    return images, labels


def load_model(path):
    """A `.keras` model (kr.models classes are registered by the import).

    Raises:
        UsageError: Keras cannot read the file.
    """
    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, TypeError, OSError, KeyError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UsageError(
            f"cannot load the model {path!r}: {type(error).__name__}: {first_line}"
        ) from error


def check_model_fits(model, name):
    """Raises UsageError if the model's input shape or classes do not fit `name`.

    Models without a known input shape (subclassed ones) are not checked.
    """
    info = defaults.DATASETS[name]
    classifier = getattr(model, "classifier", model)
    try:
        input_shape = tuple(classifier.input_shape[1:])
        num_classes = classifier.output_shape[-1]
    except (AttributeError, ValueError, TypeError, IndexError):
        return
    expected = tuple(info.image_shape)
    fits = len(input_shape) == len(expected) and all(
        size is None or size == want for size, want in zip(input_shape, expected)
    )
    if not fits:
        raise UsageError(
            f"the model takes images of shape {input_shape}, but {name} images "
            f"have shape {expected}; was it trained on another data set?"
        )
    if num_classes is not None and num_classes != info.num_classes:
        raise UsageError(
            f"the model has {num_classes} outputs, but {name} has "
            f"{info.num_classes} classes; was it trained on another data set?"
        )


def model_epsilon(model):
    """The training epsilon of a kr.models model, else None."""
    epsilon = getattr(model, "epsilon", None)
    if isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0:
        return float(epsilon)
    return None
