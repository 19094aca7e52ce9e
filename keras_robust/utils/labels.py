"""Label conventions: integer labels of shape (batch,) or (batch, 1), or
one-hot / soft labels of shape (batch, classes)."""

from keras import ops


def _is_dense(labels, num_classes):
    shape = labels.shape
    return len(shape) == 2 and shape[-1] == num_classes and num_classes > 1


def to_one_hot(labels, num_classes):
    """Float32 (batch, classes) targets; soft labels are kept as they are."""
    labels = ops.convert_to_tensor(labels)
    if _is_dense(labels, num_classes):
        return ops.cast(labels, "float32")
    return ops.one_hot(to_indices(labels, num_classes), num_classes, dtype="float32")


def to_indices(labels, num_classes):
    """Int32 class indices of shape (batch,); dense labels give their argmax."""
    labels = ops.convert_to_tensor(labels)
    if _is_dense(labels, num_classes):
        return ops.cast(ops.argmax(labels, axis=-1), "int32")
    return ops.cast(ops.reshape(labels, (-1,)), "int32")


def random_wrong_labels(labels, num_classes, rng):
    """A class other than each integer label, uniform among the wrong ones.

    The targets of targeted attacks in the energy analyses (numpy `rng`).
    """
    offsets = rng.integers(1, num_classes, size=len(labels))
    return (labels + offsets) % num_classes
