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


def finite_examples(x, y=None):
    """The examples (rows) of numpy `x` and `y` whose floating values are finite."""
    keep = np.ones(len(x), dtype=bool)
    for array in (x, y):
        if array is not None and np.issubdtype(array.dtype, np.floating):
            keep &= np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    return x[keep], None if y is None else y[keep]


def unpack_validation_data(validation_data):
    """(x, y) from `fit`'s `validation_data` argument."""
    if isinstance(validation_data, (tuple, list)):
        return tuple(validation_data[:2]) + (None,) * (2 - len(validation_data[:2]))
    return validation_data, None


def classifier_of(model):
    """The wrapped classifier of a RobustModel, or the model itself."""
    return getattr(model, "classifier", model)


def iterate_batches(data, y=None, batch_size=256):
    """(x, y) numpy batches from arrays, a `tf.data.Dataset` or an iterable."""
    if y is not None or isinstance(data, np.ndarray):
        if y is None:
            raise ValueError("Pass labels with the images: `(x, y)`.")
        for start in range(0, len(data), batch_size):
            yield data[start : start + batch_size], y[start : start + batch_size]
        return
    for batch in data:
        x_batch, y_batch, _ = keras.utils.unpack_x_y_sample_weight(batch)
        yield (
            np.asarray(keras.ops.convert_to_numpy(x_batch)),
            np.asarray(keras.ops.convert_to_numpy(y_batch)),
        )


def integer_labels(y):
    """Integer labels from integer or one-hot numpy labels."""
    y = np.asarray(y)
    return y.argmax(-1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1)
