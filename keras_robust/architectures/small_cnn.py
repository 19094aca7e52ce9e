"""A small convolutional classifier for quick experiments and tests."""

import keras

from keras_robust.architectures import _blocks
from keras_robust.layers import activation_layer
from keras_robust.utils import validation


def SmallCNN(
    num_classes=10,
    input_shape=(32, 32, 3),
    activation="relu",
    filters=(32, 64),
    dense_units=128,
    batch_norm=False,
    name="small_cnn",
):
    """Conv blocks (3x3 conv, activation, 2x2 max-pool) then a dense head.

    Returns logits (no softmax), as every keras_robust method expects.

    Args:
        num_classes: number of output logits.
        input_shape: (height, width, channels) of the images.
        activation: what `kr.layers.activation_layer` accepts: "relu", "silu",
            "gelu" (tanh approximation), "smooth_relu", any Keras activation
            name, or a layer (copied per site).
        filters: output channels of each conv block.
        dense_units: width of the hidden dense layer (0 or None for none).
        batch_norm: add BatchNormalization (momentum 0.9, epsilon 1e-5, the
            PyTorch defaults) after each convolution.
        name: model name.

    Returns:
        A functional `keras.Model`.

    Example:
    >>> net = kr.architectures.SmallCNN(num_classes=10, input_shape=(8, 8, 1))
    """
    num_classes = validation.positive_integer(num_classes, "num_classes")
    input_shape = _blocks.check_input_shape(input_shape)
    if None in input_shape:
        raise ValueError(
            "`input_shape` of SmallCNN needs a fixed height and width (its dense "
            f"head flattens the feature maps), got {input_shape!r}."
        )
    if not isinstance(filters, (tuple, list)):
        raise TypeError(
            f"`filters` must be a sequence of channel counts, got {filters!r}."
        )
    filters = [validation.positive_integer(width, "filters") for width in filters]
    if dense_units is not None:
        dense_units = validation.non_negative_integer(dense_units, "dense_units")
    inputs = keras.Input(shape=input_shape)
    x = inputs
    for index, width in enumerate(filters):
        x = keras.layers.Conv2D(
            width, 3, padding="same", use_bias=not batch_norm, name=f"conv{index}"
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(
                momentum=0.9, epsilon=1e-5, name=f"bn{index}"
            )(x)
        x = activation_layer(activation, name=f"act{index}")(x)
        if min(x.shape[1], x.shape[2]) >= 2:
            x = keras.layers.MaxPooling2D(2, name=f"pool{index}")(x)
    x = keras.layers.Flatten()(x)
    if dense_units:
        x = keras.layers.Dense(dense_units, name="hidden")(x)
        x = activation_layer(activation, name="hidden_act")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)
