"""scikit-learn's bundled 8x8 `digits` images: offline, small, real."""

import math

import numpy as np

from keras_robust.utils import validation


def load_digits(test_fraction=0.25, seed=0):
    """The 1,797 8x8 grey-scale digits with a fixed stratified split.

    Pixels (0..16 in scikit-learn) are scaled to [0, 1] and shaped NHWC.

    Args:
        test_fraction: share of each class held out for testing.
        seed: seed of the split; the same seed always gives the same split.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: float32 images of shape
        (n, 8, 8, 1) in [0, 1] and int32 labels in [0, 9].

    Example:
    >>> (x_train, y_train), (x_test, y_test) = kr.datasets.load_digits()
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    validation.positive_number(test_fraction, "test_fraction")
    if not test_fraction < 1.0:
        raise ValueError(
            f"`test_fraction` must lie strictly between 0 and 1, got {test_fraction!r}."
        )
    if seed is not None:
        seed = validation.non_negative_integer(seed, "seed")
    bunch = sklearn_digits()
    images = (bunch.images / 16.0).astype("float32")[..., np.newaxis]
    labels = bunch.target.astype("int32")
    # A stratified split needs one example per class on each side.
    test_count = math.ceil(test_fraction * len(labels))
    classes = len(np.unique(labels))
    if min(test_count, len(labels) - test_count) < classes:
        raise ValueError(
            f"`test_fraction`={test_fraction!r} leaves fewer than {classes} "
            f"examples (one per class) in the train or test split of "
            f"{len(labels)} digits."
        )
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        labels,
        test_size=test_fraction,
        stratify=labels,
        random_state=seed,
    )
    return (x_train, y_train), (x_test, y_test)
