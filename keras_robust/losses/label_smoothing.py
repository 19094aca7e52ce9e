"""Label smoothing of classification targets, for every method's cross-entropy."""

from keras_robust.utils import labels as labels_lib
from keras_robust.utils import validation


def check_label_smoothing(label_smoothing):
    """`label_smoothing` as a float in [0, 1), or a clear error."""
    value = validation.positive_number(
        label_smoothing, "label_smoothing", allow_zero=True
    )
    if value >= 1:
        raise ValueError(
            f"`label_smoothing` must lie in [0, 1), got {label_smoothing!r}."
        )
    return float(value)


def smoothed_targets(y_true, num_classes, label_smoothing):
    """(1 - s) onehot(y) + s / K, float32 (batch, K).

    The smoothing of `tf.losses.softmax_cross_entropy(label_smoothing=s)`,
    which the Smooth Adversarial Training reference trains with (s = 0.1,
    `ResNet/adv_model.py`, line 174, through `imagenet_utils.py`, line 221),
    and of `keras.losses.CategoricalCrossentropy(label_smoothing=s)`. Soft
    labels are smoothed the same way. `s = 0` returns the one-hot targets.

    Args:
        y_true: integer (batch,) or one-hot/soft (batch, K) labels.
        num_classes: K.
        label_smoothing: s in [0, 1).

    Returns:
        (batch, K) float32 targets, to pass as `y_true` to any of the
        objectives (they accept soft labels).

    Example:
    >>> targets = kr.losses.label_smoothing.smoothed_targets(y, 10, 0.1)
    >>> loss = kr.losses.adversarial_cross_entropy_loss(targets, net(x_adv))
    """
    targets = labels_lib.to_one_hot(y_true, num_classes)
    if not label_smoothing:
        return targets
    return targets * (1.0 - label_smoothing) + label_smoothing / num_classes
