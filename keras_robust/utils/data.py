"""Peeking at the data `fit`/`evaluate` receive, to check it before training."""

import keras
import numpy as np


def _is_tf_dataset(data):
    return hasattr(data, "element_spec") and hasattr(data, "take")


def first_batch(x, y=None):
    """(x, y) numpy arrays of the first batch (or all of an array), else None.

    Arrays are returned whole, since checking them costs far less than one
    epoch. Datasets (`tf.data`, `keras.utils.PyDataset`) give their first
    batch. Python generators cannot be peeked without consuming them, and
    dict or multi-input data are not images: both return None.
    """
    if x is None:
        return None
    if isinstance(x, keras.utils.PyDataset):
        if len(x) == 0:
            return None
        x, y, _ = keras.utils.unpack_x_y_sample_weight(x[0])
    elif _is_tf_dataset(x):
        batch = next(iter(x.take(1)), None)
        if batch is None:
            return None
        x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        return None
    x = np.asarray(keras.ops.convert_to_numpy(x))
    y = None if y is None else np.asarray(keras.ops.convert_to_numpy(y))
    return x, y


def unpack_validation_data(validation_data):
    """(x, y) from `fit`'s `validation_data` argument."""
    if isinstance(validation_data, (tuple, list)):
        return tuple(validation_data[:2]) + (None,) * (2 - len(validation_data[:2]))
    return validation_data, None
