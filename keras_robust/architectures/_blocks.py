"""Plumbing shared by the residual architectures: checks, conv/BN/activation.

Every helper adds layers with explicit names, so that models are readable
(`model.summary()`), their activation sites easy to find and their weights
easy to map onto the PyTorch reference code.
"""

import contextlib
import math
import numbers
import threading
import warnings

import keras
import numpy as np

from keras_robust.layers import activation_layer
from keras_robust.utils.validation import positive_integer

_PLACEHOLDER = threading.local()


@contextlib.contextmanager
def placeholder_initializers():
    """Architectures built inside get zero kernels and biases.

    For weights overwritten right after the build (`kr.zoo.load` copies a
    checkpoint in): on JAX every new weight shape compiles its own random
    initializer, 55 s for a WRN-70-16 on 2 cores, while zeros cost little.
    """
    previous = getattr(_PLACEHOLDER, "active", False)
    _PLACEHOLDER.active = True
    try:
        yield
    finally:
        _PLACEHOLDER.active = previous


def _placeholder():
    return getattr(_PLACEHOLDER, "active", False)


def torch_default_kernel_initializer():
    """PyTorch's default Conv2d/Linear weight init, `kaiming_uniform_(a=sqrt(5))`.

    It draws from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), which is Keras'
    `VarianceScaling(scale=1/3, mode="fan_in", distribution="uniform")`
    (Keras' fan_in of a conv kernel is kernel_h * kernel_w * in_channels, as
    in PyTorch).
    """
    if _placeholder():
        return keras.initializers.Zeros()
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
    )


def kaiming_normal_fan_out_initializer():
    """PyTorch's `kaiming_normal_(mode="fan_out", nonlinearity="relu")`."""
    if _placeholder():
        return keras.initializers.Zeros()
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def check_common_arguments(
    num_classes, input_shape, normalization, batch_norm_momentum, batch_norm_epsilon
):
    """Validate the arguments every architecture takes.

    Returns:
        (num_classes, input_shape, normalization, momentum, epsilon) with
        `input_shape` a tuple and `normalization` None or a (mean, std) pair
        of float64 numpy arrays.
    """
    num_classes = positive_integer(num_classes, "num_classes")
    input_shape = check_input_shape(input_shape)
    normalization = check_normalization(normalization, channels=input_shape[-1])
    momentum, epsilon = check_batch_norm(batch_norm_momentum, batch_norm_epsilon)
    return num_classes, input_shape, normalization, momentum, epsilon


def check_input_shape(input_shape):
    """(height, width, channels); height/width may be None, channels may not."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if shape is None or len(shape) != 3:
        raise ValueError(
            "`input_shape` must be (height, width, channels) for channels-last "
            f"images, got {input_shape!r}."
        )
    for index, size in enumerate(shape):
        if size is None and index < 2:
            continue
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(
                "`input_shape` must be (height, width, channels) with positive "
                "integer sizes (height and width may be None), got "
                f"{input_shape!r}."
            )
    return tuple(None if size is None else int(size) for size in shape)


def check_normalization(normalization, channels):
    """None, or a (mean, std) pair of per-channel sequences with std > 0."""
    if normalization is None:
        return None
    try:
        mean, std = normalization
    except (TypeError, ValueError):
        raise ValueError(
            "`normalization` must be None or a (mean, std) pair of per-channel "
            f"sequences, got {normalization!r}."
        ) from None
    arrays = []
    for values, label in ((mean, "mean"), (std, "std")):
        try:
            array = np.asarray(values, dtype="float64")
        except (TypeError, ValueError):
            raise ValueError(
                f"`normalization` {label} must be a sequence of {channels} "
                f"numbers (one per channel), got {values!r}."
            ) from None
        if array.ndim != 1 or array.shape[0] != channels:
            raise ValueError(
                f"`normalization` {label} must hold one value per input channel "
                f"({channels}, the last entry of `input_shape`), got {values!r}."
            )
        if not np.all(np.isfinite(array)):
            raise ValueError(f"`normalization` {label} must be finite, got {values!r}.")
        arrays.append(array)
    if np.any(arrays[1] <= 0):
        raise ValueError(
            f"`normalization` std must be > 0 for every channel, got {std!r}."
        )
    return arrays[0], arrays[1]


def check_batch_norm(momentum, epsilon):
    if (
        isinstance(momentum, bool)
        or not isinstance(momentum, numbers.Real)
        or not 0.0 <= momentum < 1.0
    ):
        raise ValueError(
            "`batch_norm_momentum` must be a number in [0, 1) (Keras convention: "
            "the weight of the old moving average; PyTorch's momentum=0.1 is "
            f"Keras' 0.9), got {momentum!r}."
        )
    if momentum < 0.5:
        warnings.warn(
            f"`batch_norm_momentum={momentum}` follows the Keras convention: it "
            "is the weight of the OLD moving average, so the statistics barely "
            "average over batches. PyTorch's momentum=0.1 is Keras' 0.9.",
            stacklevel=4,
        )
    if (
        isinstance(epsilon, bool)
        or not isinstance(epsilon, numbers.Real)
        or not math.isfinite(epsilon)
        or epsilon <= 0
    ):
        raise ValueError(
            f"`batch_norm_epsilon` must be a finite number > 0, got {epsilon!r}."
        )
    return float(momentum), float(epsilon)


def model_inputs(input_shape, normalization, padding=0):
    """`keras.Input` and, with `normalization`, the in-model standardisation.

    With `normalization=(mean, std)` the first layer computes (x - mean) / std
    per channel, so the model (and every attack on it) takes pixels in [0, 1].
    `padding > 0` first pads the [0, 1] image with that many zero pixels on
    every side (DeepMind's `padding` argument, applied before the
    standardisation as there).
    """
    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    if padding:
        x = keras.layers.ZeroPadding2D(padding, name="input_pad")(x)
    if normalization is not None:
        mean, std = normalization
        x = keras.layers.Normalization(
            mean=mean.tolist(), variance=(std**2).tolist(), name="normalization"
        )(x)
    return inputs, x


def conv(x, filters, kernel_size, strides, name, kernel_initializer):
    """Bias-free conv with PyTorch's symmetric `padding=kernel_size // 2`.

    Keras' "same" padding matches PyTorch for stride 1, but pads only
    bottom/right for stride 2 on even sizes; an explicit ZeroPadding2D and a
    "valid" conv reproduce PyTorch exactly, so ported weights give the same
    outputs.
    """
    padding = "same"
    if strides > 1 and kernel_size > 1:
        x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer=kernel_initializer(),
        name=name,
    )(x)


def padded_conv(x, filters, kernel_size, strides, padding, name, kernel_initializer):
    """Bias-free "valid" conv after an explicit zero padding.

    `padding` is ((top, bottom), (left, right)), as PyTorch's `F.pad` before a
    `padding=0` conv in DeepMind's code (stride 2 pads bottom/right only).
    """
    if padding != ((0, 0), (0, 0)):
        x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="valid",
        use_bias=False,
        kernel_initializer=kernel_initializer(),
        name=name,
    )(x)


def batch_norm(x, name, momentum, epsilon):
    return keras.layers.BatchNormalization(
        momentum=momentum, epsilon=epsilon, name=name
    )(x)


def activation(x, activation_spec, name):
    """A NEW activation layer for this site (learnable ones get own weights)."""
    return activation_layer(activation_spec, name=name)(x)


def classifier_head(x, num_classes, kernel_initializer, zero_bias):
    """Global average pooling and the Dense logits layer (no softmax).

    `zero_bias=False` draws the bias like PyTorch's Linear default,
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if zero_bias or _placeholder():
        bias_initializer = "zeros"
    else:
        bound = 1.0 / math.sqrt(x.shape[-1])
        bias_initializer = keras.initializers.RandomUniform(-bound, bound)
    return keras.layers.Dense(
        num_classes,
        kernel_initializer=kernel_initializer(),
        bias_initializer=bias_initializer,
        name="logits",
    )(x)
