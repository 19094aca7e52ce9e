"""Small models and conversions shared by the tests."""

import keras
import numpy as np

import keras_robust as kr


def tiny_cnn(num_classes=10, input_shape=(8, 8, 1), **kwargs):
    kwargs.setdefault("filters", (16, 32))
    kwargs.setdefault("dense_units", 64)
    return kr.architectures.SmallCNN(num_classes, input_shape, **kwargs)


def linear_classifier(weights, bias):
    """Dense logits model f(x) = x W + b with the given numpy weights."""
    inputs = keras.Input((weights.shape[0],))
    layer = keras.layers.Dense(weights.shape[1])
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([weights.astype("float32"), bias.astype("float32")])
    return model


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))
