"""DeepMind's PreAct ResNet-18/34 (Rebuffi et al. 2021), as RobustBench ships it."""

import keras

from keras_robust.architectures import _blocks
from keras_robust.architectures.dm_wide_resnet import CIFAR10_MEAN
from keras_robust.architectures.dm_wide_resnet import CIFAR10_STD
from keras_robust.architectures.dm_wide_resnet import DM_PADDING
from keras_robust.architectures.dm_wide_resnet import mean_std_normalization
from keras_robust.utils.validation import non_negative_integer

BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
STAGE_FILTERS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)


def DMPreActResNet(
    depth=18,
    width=0,
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
    """DeepMind's pre-activation ResNet-18 / ResNet-34 (Swish), logits out.

    The network of the RobustBench entries `Rebuffi2021Fixing_R18_*`,
    `Rade2021Helper_R18_*` and `Gowal2021Improving_R18_ddpm_100m`, layer for
    layer as `DMPreActResNet` in RobustBench's
    `model_zoo/architectures/dm_wide_resnet.py` (DeepMind's
    `adversarial_robustness/pytorch/model_zoo.py`), so their PyTorch weights
    map one to one.

    Structure: optional zero padding (`padding`), `(x - mean) / std`; a 3x3
    stem conv `conv_2d` (64 channels, no BatchNorm); four stages of
    pre-activation blocks (2, 2, 2, 2 for depth 18; 3, 4, 6, 3 for 34) with
    64, 128, 256, 512 channels and strides 1, 2, 2, 2; BatchNorm +
    activation; global average pooling; a Dense layer with bias. A block
    computes `a = act(bn0(x))`, `h = conv2(act(bn1(conv1(pad(a)))))` and
    returns `h + shortcut`. Unlike He et al.'s pre-activation block, the
    shortcut (when the stride or channel count changes) is a bias-free 3x3
    conv of the block's INPUT `pad(x)`, not of `a`. `pad` is one pixel on
    every side for stride 1 and bottom/right only for stride 2, as in
    DeepMind's code.

    Trainable parameters with 10 classes (depth 18): 12,548,426 (the PyTorch
    class's `sum(p.numel() for p in model.parameters())`; the 3x3 shortcuts
    make it larger than the usual 11.17M).

    Layer names follow the PyTorch module paths: `conv_2d`,
    `layer_{s}_{i}_batchnorm_0`, `..._conv_2d_1`, `..._batchnorm_1`,
    `..._conv_2d_2`, `..._shortcut`, `batchnorm`, `logits`; activation sites
    `..._relu_0`, `..._relu_1`, `relu`.

    Args:
        depth: 18 or 34 (DeepMind's two configurations).
        width: must be 0; DeepMind's constructor takes it only to share
            `DMWideResNet`'s signature.
        activation: the activation at every site; "swish" (x * sigmoid(x))
            by default, or anything `kr.layers.activation_layer` accepts.
        num_classes: number of output logits.
        mean: per-channel mean subtracted inside the model (a scalar for all
            channels; None with `std=None` for none). CIFAR-10's by default.
        std: per-channel standard deviation, or a scalar.
        padding: zero pixels added on every side of the input before the
            standardisation.
        input_shape: (height, width, channels), channels last.
        batch_norm_momentum: Keras BatchNormalization momentum; 0.99 is
            DeepMind's training decay (PyTorch's momentum=0.01).
        batch_norm_epsilon: BatchNormalization epsilon (PyTorch's 1e-5).
        name: model name; None gives `dm_preact_resnet{depth}`.

    Returns:
        A functional `keras.Model` mapping [0, 1] images to logits.

    Raises:
        ValueError: for a bad argument value; the message names the argument.

    Example:
    >>> net = kr.architectures.DMPreActResNet(depth=18, num_classes=10)

    Reference:
        Rebuffi, Gowal, Calian, Stimberg, Wiles, Mann, "Fixing Data
        Augmentation to Improve Adversarial Robustness", arXiv:2103.01946,
        2021. Code: github.com/deepmind/deepmind-research,
        `adversarial_robustness/pytorch/model_zoo.py` (`PreActResNet`,
        `_PreActBlock`).
    """
    if isinstance(depth, bool) or depth not in BLOCKS:
        raise ValueError(f"`depth` must be 18 or 34, got {depth!r}.")
    if isinstance(width, bool) or width != 0:
        raise ValueError(
            "`width` must be 0 (DeepMind's PreActResNet has fixed widths; the "
            f"argument only mirrors DMWideResNet's signature), got {width!r}."
        )
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
        name = f"dm_preact_resnet{depth}"
    initializer = _blocks.torch_default_kernel_initializer

    def block(x, in_filters, filters, strides, prefix):
        out = _blocks.batch_norm(x, f"{prefix}_batchnorm_0", momentum, epsilon)
        out = _blocks.activation(out, activation, f"{prefix}_relu_0")
        if strides != 1 or in_filters != filters:
            shortcut = _blocks.padded_conv(
                x,
                filters,
                3,
                strides,
                DM_PADDING[strides],
                f"{prefix}_shortcut",
                initializer,
            )
        else:
            shortcut = x
        out = _blocks.padded_conv(
            out,
            filters,
            3,
            strides,
            DM_PADDING[strides],
            f"{prefix}_conv_2d_1",
            initializer,
        )
        out = _blocks.batch_norm(out, f"{prefix}_batchnorm_1", momentum, epsilon)
        out = _blocks.activation(out, activation, f"{prefix}_relu_1")
        out = _blocks.conv(out, filters, 3, 1, f"{prefix}_conv_2d_2", initializer)
        return keras.layers.Add(name=f"{prefix}_add")([out, shortcut])

    inputs, x = _blocks.model_inputs(input_shape, normalization, padding=padding)
    x = _blocks.conv(x, STAGE_FILTERS[0], 3, 1, "conv_2d", initializer)
    in_filters = STAGE_FILTERS[0]
    stages = zip(STAGE_FILTERS, STAGE_STRIDES, BLOCKS[depth])
    for stage, (filters, stride, blocks) in enumerate(stages):
        for index in range(blocks):
            strides = stride if index == 0 else 1
            x = block(x, in_filters, filters, strides, f"layer_{stage}_{index}")
            in_filters = filters
    x = _blocks.batch_norm(x, "batchnorm", momentum, epsilon)
    x = _blocks.activation(x, activation, "relu")
    outputs = _blocks.classifier_head(x, num_classes, initializer, zero_bias=False)
    return keras.Model(inputs, outputs, name=name)
