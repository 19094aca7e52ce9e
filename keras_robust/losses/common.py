"""Shared pieces of the training objectives: reductions, cross-entropy, KL.

Inputs are checked where that costs nothing inside a compiled step: dtypes
and static shapes always, label values and per-sample sizes only where the
data is concrete (eager calls), with errors that name the argument.
"""

import numbers

import numpy as np
from keras import ops

from keras_robust import backend
from keras_robust.utils import labels as labels_lib
from keras_robust.utils import validation


def _float(tensor, name="input"):
    return validation.float_tensor(tensor, name)


def is_python_value(value):
    """True for an argument to validate here: anything but a tensor or array
    (those may be symbolic inside a compiled step: the caller's concern)."""
    return isinstance(value, numbers.Number) or not hasattr(value, "dtype")


def checked_number(value, name, allow_zero=False):
    """`validation.positive_number` for Python values; tensors pass unchecked."""
    if is_python_value(value):
        return validation.positive_number(value, name, allow_zero=allow_zero)
    return value


def _static_shape(tensor):
    return tuple(tensor.shape)


def same_shape(shape, other):
    return len(shape) == len(other) and all(
        a is None or b is None or a == b for a, b in zip(shape, other)
    )


def logits_inputs(**named):
    """The named logits as float32 tensors of one (batch, classes) shape, classes >= 2."""
    tensors, first = [], None
    for name, value in named.items():
        tensor = _float(value, name)
        shape = _static_shape(tensor)
        if len(shape) != 2 or (shape[1] is not None and shape[1] < 2):
            raise ValueError(
                f"`{name}` must be logits of shape (batch, classes) with "
                f"classes >= 2, got shape {shape}."
            )
        if first is not None and not same_shape(shape, first[1]):
            raise ValueError(
                f"`{name}` must have the shape of `{first[0]}`, got {shape} "
                f"and {first[1]}."
            )
        first = first or (name, shape)
        tensors.append(tensor)
    return tensors


def check_labels(y_true, logits, name="y_true"):
    """Concrete labels: one per row of `logits`, valid for its classes."""
    if backend.is_tracing(y_true):
        return
    batch, num_classes = _static_shape(logits)
    validation.check_labels(y_true, num_classes, name=name, batch_size=batch)


def check_per_sample(value, name, batch):
    """`value` as float32 holding one number per example of the batch."""
    tensor = _float(value, name)
    shape = _static_shape(tensor)
    if batch is not None and None not in shape and int(np.prod(shape)) != batch:
        raise ValueError(
            f"`{name}` must hold one value per example ({batch}), got shape {shape}."
        )
    return tensor


def weighted_mean(per_sample, sample_weight=None):
    """sum_i w_i l_i / B, or the plain mean without weights."""
    per_sample = _float(per_sample, "per_sample")
    if sample_weight is None:
        return ops.mean(per_sample)
    shape = _static_shape(per_sample)
    batch = None if None in shape else int(np.prod(shape))
    sample_weight = check_per_sample(sample_weight, "sample_weight", batch)
    sample_weight = ops.reshape(sample_weight, ops.shape(per_sample))
    return ops.sum(per_sample * sample_weight) / ops.cast(
        ops.shape(per_sample)[0], "float32"
    )


def _cross_entropy(y_true, logits):
    targets = labels_lib.to_one_hot(y_true, logits.shape[-1])
    return -ops.sum(targets * ops.log_softmax(logits, axis=-1), axis=-1)


def _kl_divergence(logits_p, logits_q):
    log_p = ops.log_softmax(logits_p, axis=-1)
    log_q = ops.log_softmax(logits_q, axis=-1)
    return ops.sum(ops.exp(log_p) * (log_p - log_q), axis=-1)


def cross_entropy(y_true, logits):
    """Per-sample softmax cross-entropy -sum_k y_k log p(k|x).

    Args:
        y_true: integer labels (batch,) or one-hot/soft labels (batch, classes).
        logits: (batch, classes) logits.

    Returns:
        (batch,) float32 losses.
    """
    (logits,) = logits_inputs(logits=logits)
    check_labels(y_true, logits)
    return _cross_entropy(y_true, logits)


def kl_divergence(logits_p, logits_q):
    """Per-sample KL(p || q) = sum_k p_k (log p_k - log q_k) from logits.

    Computed with log-softmax, so it stays finite for extreme logits.

    Args:
        logits_p: (batch, classes) logits of the reference distribution p.
        logits_q: (batch, classes) logits of q.

    Returns:
        (batch,) float32 divergences.
    """
    return _kl_divergence(*logits_inputs(logits_p=logits_p, logits_q=logits_q))


def adversarial_cross_entropy_loss(y_true, logits_adversarial, sample_weight=None):
    """Madry et al. (2018) PGD-AT objective: mean_i CE(f(x*_i), y_i)."""
    (logits,) = logits_inputs(logits_adversarial=logits_adversarial)
    check_labels(y_true, logits)
    return weighted_mean(_cross_entropy(y_true, logits), sample_weight)
