"""DeepMind's WideResNet (Gowal et al. 2020, Rebuffi et al. 2021), as RobustBench ships it."""

import numbers

import keras

from keras_robust.architectures import _blocks
from keras_robust.utils.validation import non_negative_integer
from keras_robust.utils.validation import positive_integer

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)

# DeepMind's stride-2 convs pad one row/column at the bottom/right only
# (`F.pad(v, (0, 1, 0, 1))`, TensorFlow's "SAME" on even sizes); stride 1
# pads one on every side.
DM_PADDING = {1: ((1, 1), (1, 1)), 2: ((0, 1), (0, 1))}


def DMWideResNet(
    depth=28,
    width=10,
    activation="swish",
    num_classes=10,
    mean=CIFAR10_MEAN,
    std=CIFAR10_STD,
    padding=0,
    input_shape=(32, 32, 3),
    batch_norm_momentum=0.99,
    batch_norm_epsilon=1e-5,
    name=None,
):
    """DeepMind's WideResNet WRN-`depth`-`width` (Swish), logits out.

    The network of the RobustBench entries `Gowal2020Uncovering_*`,
    `Rebuffi2021Fixing_*`, `Gowal2021Improving_*`, `Wang2023Better_*` and
    others, layer for layer as in RobustBench's
    `model_zoo/architectures/dm_wide_resnet.py` (DeepMind's
    `adversarial_robustness/pytorch/model_zoo.py`), so their PyTorch weights
    map one to one (`kr.architectures.load_torch_weights`).

    Structure: optional zero padding of the [0, 1] image (`padding`), then
    `(x - mean) / std` per channel; a 3x3 stem conv `init_conv` (16
    channels); three groups of n = (depth - 4) / 6 pre-activation blocks
    with 16w, 32w, 64w channels and strides 1, 2, 2; BatchNorm + activation;
    global average pooling; a Dense layer with bias. A block computes
    `a = act(bn0(x))`, `h = conv1(act(bn1(conv0(pad(a)))))` and returns
    `h + shortcut`, where the shortcut is `x`, or a bias-free 1x1 conv
    (stride s) of `a` when the channel count changes. `pad` is one pixel on
    every side for stride 1 and one at the bottom/right only for stride 2
    (DeepMind's emulation of TensorFlow's "SAME"; not PyTorch's symmetric
    `padding=1`, which would shift every stride-2 feature map by a pixel).

    Trainable parameters with 10 classes: WRN-28-10 36,479,194, WRN-70-16
    266,796,506 (the PyTorch class's `sum(p.numel() for p in
    model.parameters())`; BatchNorm running statistics are buffers there and
    non-trainable weights here).

    Layer names follow the PyTorch module paths with "." written "_":
    `init_conv`, `layer_{g}_block_{i}_batchnorm_0`, `..._conv_0`,
    `..._batchnorm_1`, `..._conv_1`, `..._shortcut`, `batchnorm`, `logits`;
    the activation sites are `..._relu_0`, `..._relu_1` and `relu`
    (DeepMind's names, whatever the activation).

    Args:
        depth: total depth, (depth - 4) divisible by 6 (28, 34, 70, 106, ...).
        width: widening factor w (positive integer).
        activation: the activation at every site; "swish" (x * sigmoid(x),
            Keras' "silu", DeepMind's `Swish` and `nn.SiLU`) by default, or
            anything `kr.layers.activation_layer` accepts ("relu", ...).
        num_classes: number of output logits.
        mean: per-channel mean subtracted inside the model (a scalar for
            all channels; None with `std=None` for no standardisation).
            CIFAR-10's by default.
        std: per-channel standard deviation, or a scalar (CIFAR-10's by
            default).
        padding: zero pixels added on every side of the input before the
            standardisation (DeepMind's `padding`; 0 for CIFAR).
        input_shape: (height, width, channels), channels last.
        batch_norm_momentum: Keras BatchNormalization momentum (the weight of
            the old average). 0.99 is the decay DeepMind trained with
            (`adversarial_robustness/jax/model_zoo.py`, `decay_rate: .99`,
            PyTorch's momentum=0.01); it does not change inference.
        batch_norm_epsilon: BatchNormalization epsilon (PyTorch's 1e-5).
        name: model name; None gives `dm_wide_resnet{depth}_{width}`.

    Returns:
        A functional `keras.Model` mapping [0, 1] images to logits.

    Raises:
        ValueError: for a bad argument value; the message names the argument.
        TypeError: for a non-integer `depth`, `width` or `num_classes`.

    Example:
    >>> net = kr.architectures.DMWideResNet(depth=70, width=16)

    Reference:
        Gowal, Qin, Uesato, Mann, Kohli, "Uncovering the Limits of
        Adversarial Training against Norm-Bounded Adversarial Examples",
        arXiv:2010.03593, 2020. Code: github.com/deepmind/deepmind-research,
        `adversarial_robustness/pytorch/model_zoo.py` (`WideResNet`, `_Block`).
    """
    depth = _check_depth(depth)
    width = positive_integer(width, "width")
    padding = non_negative_integer(padding, "padding")
    channels = _blocks.check_input_shape(input_shape)[-1]
    normalization = mean_std_normalization(mean, std, channels)
    num_classes, input_shape, normalization, momentum, epsilon = (
        _blocks.check_common_arguments(
            num_classes,
            input_shape,
            normalization,
            batch_norm_momentum,
            batch_norm_epsilon,
        )
    )
    if name is None:
        name = f"dm_wide_resnet{depth}_{width}"
    blocks_per_group = (depth - 4) // 6
    group_filters = (16 * width, 32 * width, 64 * width)
    group_strides = (1, 2, 2)
    initializer = _blocks.torch_default_kernel_initializer

    def block(x, in_filters, filters, strides, prefix):
        activated = _blocks.batch_norm(x, f"{prefix}_batchnorm_0", momentum, epsilon)
        activated = _blocks.activation(activated, activation, f"{prefix}_relu_0")
        out = _blocks.padded_conv(
            activated,
            filters,
            3,
            strides,
            DM_PADDING[strides],
            f"{prefix}_conv_0",
            initializer,
        )
        out = _blocks.batch_norm(out, f"{prefix}_batchnorm_1", momentum, epsilon)
        out = _blocks.activation(out, activation, f"{prefix}_relu_1")
        out = _blocks.conv(out, filters, 3, 1, f"{prefix}_conv_1", initializer)
        if in_filters != filters:
            shortcut = _blocks.padded_conv(
                activated,
                filters,
                1,
                strides,
                ((0, 0), (0, 0)),
                f"{prefix}_shortcut",
                initializer,
            )
        else:
            shortcut = x
        return keras.layers.Add(name=f"{prefix}_add")([shortcut, out])

    inputs, x = _blocks.model_inputs(input_shape, normalization, padding=padding)
    x = _blocks.conv(x, 16, 3, 1, "init_conv", initializer)
    in_filters = 16
    groups = zip(group_filters, group_strides)
    for group, (filters, stride) in enumerate(groups):
        for index in range(blocks_per_group):
            strides = stride if index == 0 else 1
            x = block(x, in_filters, filters, strides, f"layer_{group}_block_{index}")
            in_filters = filters
    x = _blocks.batch_norm(x, "batchnorm", momentum, epsilon)
    x = _blocks.activation(x, activation, "relu")
    outputs = _blocks.classifier_head(x, num_classes, initializer, zero_bias=False)
    return keras.Model(inputs, outputs, name=name)


def mean_std_normalization(mean, std, channels):
    """DeepMind's (mean, std) arguments as `_blocks`' normalization pair.

    A scalar (DeepMind allows a float) is used for every channel.
    """
    if mean is None and std is None:
        return None
    if mean is None or std is None:
        raise ValueError(
            "`mean` and `std` must both be None (no standardisation) or both "
            f"per-channel sequences, got mean={mean!r}, std={std!r}."
        )
    if isinstance(mean, numbers.Real):
        mean = (mean,) * channels
    if isinstance(std, numbers.Real):
        std = (std,) * channels
    return (mean, std)


def _check_depth(depth):
    depth = positive_integer(depth, "depth")
    if depth < 10 or (depth - 4) % 6 != 0:
        raise ValueError(
            "`depth` must satisfy (depth - 4) % 6 == 0 with depth >= 10, e.g. "
            f"16, 28, 34, 70, 106; got {depth!r}."
        )
    return depth
