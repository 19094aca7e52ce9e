"""Argument and data checks with messages that name the argument.

Hyperparameters are checked at construction. Data values are checked only
where data is concrete (eager calls, the first batch `fit` sees), never as a
silent fix inside a compiled step.
"""

import math
import numbers
import warnings

import keras
import numpy as np

NORMS = {"linf": "linf", "inf": "linf", "l2": "l2", "2": "l2", "l1": "l1", "1": "l1"}


def positive_number(value, name, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number, got {value!r}.")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be a finite number {bound}, got {value!r}.")
    return value


def positive_integer(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer >= 1, got {value!r}.")
    if value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
    return int(value)


def non_negative_integer(value, name):
    # TypeError for what is not an integer, ValueError for a negative one
    # (Python's own convention, as `positive_integer` follows).
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer >= 0, got {value!r}.")
    if value < 0:
        raise ValueError(f"`{name}` must be an integer >= 0, got {value!r}.")
    return int(value)


def boolean(value, name):
    """`value` itself if it is True or False (numpy booleans included)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False, got {value!r}.")
    return bool(value)


def seed_value(seed, name="seed"):
    """None, a `keras.random.SeedGenerator`, or an int >= 0 (numpy ints become int)."""
    if seed is None or isinstance(seed, keras.random.SeedGenerator):
        return seed
    return non_negative_integer(seed, name)


def norm_name(value, allowed=("linf", "l2"), where=None):
    """'linf', 'l2' or 'l1' among `allowed`; also 'inf', numpy.inf, 2, 1.

    `where` names what refuses an allowed-elsewhere norm ("FAB" has no L1
    form), so that the error says so.
    """
    key = None
    if isinstance(value, str):
        key = value.lower()
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        key = "inf" if math.isinf(value) else {2: "2", 1: "1"}.get(value)
    name = NORMS.get(key)
    if name not in allowed:
        choices = " or ".join(repr(n) for n in allowed)
        known = f" ({where} has no {name!r} form)" if name and where else ""
        raise ValueError(f"`norm` must be {choices}{known}, got {value!r}.")
    return name


def one_of(value, name, allowed):
    if value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"`{name}` must be one of {options}; got {value!r}.")
    return value


def clip_range(clip_min, clip_max):
    for value, name in ((clip_min, "clip_min"), (clip_max, "clip_max")):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"`{name}` must be a number, got {value!r}.")
    if not clip_min < clip_max:
        raise ValueError(
            f"`clip_min` must be smaller than `clip_max`, got "
            f"clip_min={clip_min!r}, clip_max={clip_max!r}."
        )
    return float(clip_min), float(clip_max)


ATTACK_RANGE_ADVICE = (
    "Rescale the inputs (keras_robust expects pixels in [0, 1] by default) or "
    "set `clip_min`/`clip_max` on the attack to the range your inputs live in."
)


def check_images(x, clip_min, clip_max, name="x", range_text=None, advice=None):
    """Concrete images: floating dtype, finite, inside [clip_min, clip_max].

    `range_text` names the valid range in messages (default
    "[clip_min, clip_max] = [lo, hi]", the attacks' arguments) and `advice`
    ends the out-of-range message (default: rescale or set the attack's
    clip range), so that each caller points at its own arguments.
    """
    if range_text is None:
        range_text = f"[clip_min, clip_max] = [{clip_min}, {clip_max}]"
    array = np.asarray(keras.ops.convert_to_numpy(x))
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(
            f"`{name}` has dtype {array.dtype}; keras_robust expects floating "
            f"images in {range_text}. Convert "
            f"them first, e.g. `{name}.astype('float32') / 255` for 8-bit images."
        )
    if array.size == 0:
        return
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` contains NaN or Inf values.")
    low, high = float(array.min()), float(array.max())
    tolerance = 1e-6 * max(1.0, clip_max - clip_min)
    if low < clip_min - tolerance or high > clip_max + tolerance:
        raise ValueError(
            f"`{name}` has values in [{low:.4g}, {high:.4g}], outside the valid "
            f"input range {range_text}. {advice or ATTACK_RANGE_ADVICE}"
        )


def check_data(x, y):
    """`x` and `y`: arrays with one label per image, or a dataset without `y`."""
    if y is None:
        if isinstance(x, np.ndarray):
            raise ValueError("`y` is required with array images `x`.")
        if not hasattr(x, "__iter__"):
            raise TypeError(
                "`x` must be images with labels `y`, or a dataset of (images, "
                f"labels) batches; got {type(x).__name__}."
            )
        return
    if np.ndim(x) < 1:
        raise TypeError(
            f"`x` must be an array of images when `y` is given, got {type(x).__name__}."
        )
    if np.ndim(y) < 1 or len(y) != len(x):
        raise ValueError(
            f"`y` must hold one label per image of `x` ({len(x)}), got shape "
            f"{np.shape(y)}."
        )


def check_logits(logits, where="classifier"):
    """The classifier must return (batch, classes) logits with classes >= 2."""
    shape = tuple(logits.shape)
    if len(shape) != 2 or shape[-1] is None or shape[-1] < 2:
        raise ValueError(
            f"The {where} must return logits of shape (batch, classes) with "
            f"classes >= 2; it returned shape {shape}. Wrap a model whose last "
            "layer is a Dense(classes) without activation."
        )
    if looks_like_probabilities(logits):
        warnings.warn(
            f"The {where} seems to return probabilities (rows are non-negative "
            "and sum to 1). Attacks and robust losses need logits: remove the "
            "final softmax, or the gradients will be masked.",
            stacklevel=3,
        )
    return shape[-1]


def looks_like_probabilities(outputs):
    """True if every row of `outputs` is non-negative and sums to 1 (1e-3)."""
    array = np.asarray(keras.ops.convert_to_numpy(outputs), dtype=np.float64)
    return bool(
        array.size and np.all(array >= 0) and np.allclose(array.sum(-1), 1.0, atol=1e-3)
    )


def _is_numeric(dtype):
    try:
        dtype = keras.backend.standardize_dtype(dtype)
    except ValueError:  # strings, objects
        return False
    return dtype == "bool" or dtype.startswith(("int", "uint", "float", "bfloat"))


def float_tensor(value, name):
    """`value` as a float32 tensor; a TypeError naming it for non-numeric data."""
    try:
        tensor = keras.ops.convert_to_tensor(value)
    except (TypeError, ValueError):
        tensor = None
    if tensor is None or not _is_numeric(tensor.dtype):
        raise TypeError(
            f"`{name}` must be a numeric array or tensor, got {type(value).__name__}"
            f"{'' if tensor is None else f' of dtype {tensor.dtype}'}."
        )
    return keras.ops.cast(tensor, "float32")


def check_labels(y, num_classes, name="y", batch_size=None):
    """Integer labels in [0, classes) or dense labels of shape (batch, classes).

    With `batch_size`, there must be one label per example of the batch.
    """
    try:
        array = np.asarray(keras.ops.convert_to_numpy(y))
    except (TypeError, ValueError):
        array = np.asarray(None)
    if not _is_numeric(array.dtype):
        raise TypeError(
            f"`{name}` must be numeric class labels, got {type(y).__name__}"
            f" of dtype {array.dtype}."
        )
    if batch_size is not None and array.ndim and len(array) != batch_size:
        raise ValueError(
            f"`{name}` holds {len(array)} labels for a batch of {batch_size} "
            "examples: pass one label per example."
        )
    if array.ndim == 2 and array.shape[-1] == num_classes:
        if not np.all(np.isfinite(array)) or np.any(array < 0):
            raise ValueError(
                f"One-hot/soft `{name}` must hold finite non-negative values."
            )
        return
    if array.ndim == 2 and array.shape[-1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"`{name}` must be integer labels of shape (batch,) or one-hot labels "
            f"of shape (batch, {num_classes}); got shape {array.shape}."
        )
    if not np.issubdtype(array.dtype, np.integer) and (
        not np.all(np.isfinite(array)) or np.any(array != np.round(array))
    ):
        raise ValueError(f"`{name}` must hold integer class labels.")
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise ValueError(
            f"`{name}` has labels in [{int(array.min())}, {int(array.max())}] but "
            f"the classifier has {num_classes} classes: labels must lie in "
            f"[0, {num_classes - 1}]."
        )
