"""Wide ResNet (Zagoruyko & Komodakis) as in the TRADES code: WRN-34-10 and friends."""

import numbers

import keras

from keras_robust.architectures import _blocks
from keras_robust.utils.validation import positive_integer


def WideResNet(
    depth=34,
    width=10,
    num_classes=10,
    input_shape=(32, 32, 3),
    activation="relu",
    normalization=None,
    dropout=0.0,
    batch_norm_momentum=0.9,
    batch_norm_epsilon=1e-5,
    name=None,
):
    """Wide ResNet WRN-`depth`-`width` with pre-activation blocks, logits out.

    Structure (as in the reference code): a 3x3 stem conv (16 channels,
    stride 1); three stages of n = (depth - 4) / 6 pre-activation blocks with
    16*width, 32*width, 64*width channels and strides 1, 2, 2; a final
    BatchNorm + activation; global average pooling; a Dense layer. A block
    computes `a = act(bn1(x))`, `h = act(bn2(conv1(a)))`, optional dropout,
    and returns `conv2(h) + shortcut`, where the shortcut is `x` when the
    channel count (and stride) is unchanged, else a bias-free 1x1 conv of
    `a`. All convs are bias-free; only the Dense layer has a bias. Activation
    sites: 2 per block x 3n blocks + the final one = 6n + 1 (31 for WRN-34),
    each its own layer (named `block{stage}_{block}_act1`, `..._act2`,
    `final_act`).

    Trainable parameters with 10 classes: WRN-34-10 46,160,474, WRN-28-10
    36,479,194, exactly PyTorch's `sum(p.numel() for p in
    model.parameters())` for the network the reference runs (PyTorch counts
    parameters only; BatchNorm running mean/variance are buffers there and
    non-trainable weights here, so compare against
    `sum(w.size for w in model.trainable_weights)`, not `count_params()`).
    The TRADES file also registers a `sub_block1` that `forward` never uses;
    it is left out here, as in the usual 46.16M figure for WRN-34-10.

    Differences from the reference, none of which changes the function: the
    reference's `avg_pool2d(out, 8)` is global average pooling here (the same
    on 32x32 inputs); stride-2 convs use an explicit symmetric ZeroPadding2D
    so that PyTorch weights give the same outputs. Initialisation follows the
    reference's: conv kernels N(0, 2 / fan_out) (He normal, fan-out), Dense
    bias zero, Dense kernel PyTorch's default U(+-1/sqrt(fan_in)), BatchNorm
    gamma=1, beta=0 (not Keras' glorot default).

    Args:
        depth: total depth; (depth - 4) must be divisible by 6 (10, 16, 22,
            28, 34, 40, 70, ...).
        width: widening factor k (positive integer).
        num_classes: number of output logits (positive integer).
        input_shape: (height, width, channels), channels last. Height and
            width may be None.
        activation: the activation at every site: any name accepted by
            `kr.layers.activation_layer` ("relu", "silu", "gelu", "elu",
            "softplus", "mish", "smooth_relu", "parametric_softplus",
            "smooth_grad_relu", other Keras names), a callable, or a layer,
            which is copied per site.
        normalization: None, or `(mean, std)`, per-channel sequences of length
            `channels`. The first layer then computes `(x - mean) / std`, so
            the model takes pixels in [0, 1] and attacks work in pixel space.
        dropout: dropout rate in [0, 1) between the two convs of each block
            (0 adds no Dropout layer; TRADES uses 0).
        batch_norm_momentum: Keras BatchNormalization momentum, the weight of
            the old moving average. 0.9 is PyTorch's default momentum=0.1.
        batch_norm_epsilon: BatchNormalization epsilon (PyTorch's 1e-5).
        name: model name; None gives `wide_resnet{depth}_{width}`.

    Returns:
        A functional `keras.Model` mapping images to logits (no softmax).

    Raises:
        ValueError: for a bad argument value; the message names the argument.
        TypeError: for a non-integer `num_classes`, `depth` or `width` (as
            the library's other integer checks).

    Example:
    >>> net = kr.architectures.WideResNet(depth=28, width=10, num_classes=10)

    Reference:
        Zagoruyko, Komodakis, "Wide Residual Networks", BMVC 2016. Code:
        `models/wideresnet.py` of Zhang et al., "Theoretically Principled
        Trade-off between Robustness and Accuracy" (TRADES), ICML 2019
        (github.com/yaodongyu/TRADES), itself from
        github.com/xternalz/WideResNet-pytorch.
    """
    depth = _check_depth(depth)
    width = positive_integer(width, "width")
    num_classes, input_shape, normalization, momentum, epsilon = (
        _blocks.check_common_arguments(
            num_classes,
            input_shape,
            normalization,
            batch_norm_momentum,
            batch_norm_epsilon,
        )
    )
    dropout = _check_dropout(dropout)
    if name is None:
        name = f"wide_resnet{depth}_{width}"
    blocks_per_stage = (depth - 4) // 6
    stage_filters = (16 * width, 32 * width, 64 * width)
    stage_strides = (1, 2, 2)
    conv_initializer = _blocks.kaiming_normal_fan_out_initializer

    def bn(x, layer_name):
        return _blocks.batch_norm(x, layer_name, momentum, epsilon)

    def wide_block(x, in_filters, filters, strides, prefix):
        out = bn(x, f"{prefix}_bn1")
        out = _blocks.activation(out, activation, f"{prefix}_act1")
        if strides != 1 or in_filters != filters:
            shortcut = _blocks.conv(
                out, filters, 1, strides, f"{prefix}_shortcut", conv_initializer
            )
        else:
            shortcut = x
        out = _blocks.conv(
            out, filters, 3, strides, f"{prefix}_conv1", conv_initializer
        )
        out = bn(out, f"{prefix}_bn2")
        out = _blocks.activation(out, activation, f"{prefix}_act2")
        if dropout > 0:
            out = keras.layers.Dropout(dropout, name=f"{prefix}_dropout")(out)
        out = _blocks.conv(out, filters, 3, 1, f"{prefix}_conv2", conv_initializer)
        return keras.layers.Add(name=f"{prefix}_add")([out, shortcut])

    inputs, x = _blocks.model_inputs(input_shape, normalization)
    x = _blocks.conv(x, 16, 3, 1, "stem_conv", conv_initializer)
    in_filters = 16
    for stage, (filters, stride) in enumerate(
        zip(stage_filters, stage_strides), start=1
    ):
        for block in range(1, blocks_per_stage + 1):
            strides = stride if block == 1 else 1
            x = wide_block(x, in_filters, filters, strides, f"block{stage}_{block}")
            in_filters = filters
    x = bn(x, "final_bn")
    x = _blocks.activation(x, activation, "final_act")
    outputs = _blocks.classifier_head(
        x,
        num_classes,
        _blocks.torch_default_kernel_initializer,
        zero_bias=True,
    )
    return keras.Model(inputs, outputs, name=name)


def WideResNet34_10(**kwargs):
    """WRN-34-10 (46,160,474 trainable parameters for 10 classes), TRADES' model.

    Args:
        **kwargs: any other argument of `WideResNet` (num_classes,
            input_shape, activation, normalization, dropout, ...).

    Returns:
        A functional `keras.Model` mapping images to logits.

    Example:
    >>> net = kr.architectures.WideResNet34_10(num_classes=10, activation="silu")
    """
    return WideResNet(depth=34, width=10, **kwargs)


def WideResNet28_10(**kwargs):
    """WRN-28-10 (36,479,194 trainable parameters for 10 classes).

    Args:
        **kwargs: any other argument of `WideResNet` (num_classes,
            input_shape, activation, normalization, dropout, ...).

    Returns:
        A functional `keras.Model` mapping images to logits.

    Example:
    >>> net = kr.architectures.WideResNet28_10(num_classes=100)
    """
    return WideResNet(depth=28, width=10, **kwargs)


def _check_depth(depth):
    depth = positive_integer(depth, "depth")
    if depth < 10 or (depth - 4) % 6 != 0:
        raise ValueError(
            "`depth` must satisfy (depth - 4) % 6 == 0 with depth >= 10 (one "
            "block per stage or more), e.g. 10, 16, 22, 28, 34, 40, 70; got "
            f"{depth!r}."
        )
    return depth


def _check_dropout(dropout):
    if (
        isinstance(dropout, bool)
        or not isinstance(dropout, numbers.Real)
        or not 0.0 <= dropout < 1.0
    ):
        raise ValueError(f"`dropout` must be a number in [0, 1), got {dropout!r}.")
    return float(dropout)
