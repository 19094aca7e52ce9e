"""Coupled L2 weight decay, as PyTorch SGD's `weight_decay` applies it."""

import keras

from keras_robust.utils import validation

# Keras layer config keys of every weight PyTorch SGD would decay.
_REGULARIZER_KEYS = (
    "kernel_regularizer",
    "bias_regularizer",
    "depthwise_regularizer",
    "pointwise_regularizer",
    "gamma_regularizer",
    "beta_regularizer",
)


def with_coupled_weight_decay(model, weight_decay=5e-4):
    """A copy of `model` whose weights carry PyTorch-style coupled L2 decay.

    PyTorch `SGD(weight_decay=wd)` adds `wd * w` to every parameter's
    gradient (kernels, biases and BatchNorm scales and offsets alike) before
    momentum. The same update comes from the loss term `(wd / 2) ||w||^2` on
    each of those weights, i.e. `keras.regularizers.L2(wd / 2)` — not the
    optimizer's decoupled `weight_decay`. This clones a functional or
    sequential model with that regulariser on every kernel, bias, depthwise /
    pointwise kernel, and BatchNorm gamma and beta, and copies the weights.
    `kr.models` add the classifier's regularisation losses to their
    objectives, so the copy trains with the references' weight decay.

    Args:
        model: a functional or sequential Keras model.
        weight_decay: PyTorch's `weight_decay`, >= 0 (5e-4 in the references).

    Returns:
        the regularised copy (same architecture and weights).

    Example:
    >>> net = kr.architectures.with_coupled_weight_decay(
    ...     kr.architectures.ResNet18(10), 5e-4)
    """
    weight_decay = validation.positive_number(
        weight_decay, "weight_decay", allow_zero=True
    )
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a Keras functional or sequential model, got "
            f"{type(model).__name__}."
        )
    regularizer = keras.regularizers.L2(weight_decay / 2)

    def clone_layer(layer):
        config = layer.get_config()
        for key in _REGULARIZER_KEYS:
            if key in config:
                config[key] = regularizer
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=clone_layer)
    except ValueError as error:
        raise TypeError(
            "`model` must be a functional or sequential Keras model "
            "(subclassed models cannot be cloned); add "
            f"`keras.regularizers.L2({weight_decay / 2:g})` to its layers instead."
        ) from error
    copy.set_weights(model.get_weights())
    return copy
