"""PreAct ResNet-18, the network of the robust-overfitting and bag-of-tricks code."""

import keras

from keras_robust.architectures import _blocks

STAGE_FILTERS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)
BLOCKS_PER_STAGE = (2, 2, 2, 2)


def PreActResNet18(
    num_classes=10,
    input_shape=(32, 32, 3),
    activation="relu",
    normalization=None,
    batch_norm_momentum=0.9,
    batch_norm_epsilon=1e-5,
    name="preact_resnet18",
    shortcut="activation",
    final_batch_norm=True,
):
    """Pre-activation ResNet-18 for CIFAR-sized images, returning logits.

    Structure (as in the reference code): a 3x3 stem conv (64 channels, stride
    1, no BatchNorm, no pooling); four stages of two pre-activation blocks
    with 64, 128, 256, 512 channels and strides 1, 2, 2, 2; a final
    BatchNorm + activation; global average pooling; a Dense layer.
    A block computes `a = act(bn1(x))`, `out = conv2(act(bn2(conv1(a))))`
    and returns `out + shortcut`, where the shortcut is `x`, or a bias-free
    1x1 conv of `a` when the stride or the channel count changes. All convs
    are bias-free; only the Dense layer has a bias. There is no activation
    after the addition, so the activation sites are 2 per block x 8 blocks +
    the final one = 17, each its own layer (named `block{stage}_{block}_act1`,
    `..._act2` and `final_act`).

    With 10 classes the model has 11,172,170 trainable parameters, exactly
    PyTorch's `sum(p.numel() for p in model.parameters())` for the reference
    (PyTorch counts parameters only; BatchNorm running mean/variance are
    buffers there and non-trainable weights here, so compare against
    `sum(w.size for w in model.trainable_weights)`, not `count_params()`).

    Two options reproduce the other PreAct ResNet-18 that RobustBench ships
    (`PreActResNet(PreActBlock, [2, 2, 2, 2])` in its
    `model_zoo/architectures/resnet.py`, the network of `Wong2020Fast` and
    `Andriushchenko2020Understanding`): `shortcut="input"` takes the 1x1
    shortcut conv of the block input `x` instead of `a`, and
    `final_batch_norm=False` drops the final BatchNorm + activation
    (11,171,146 trainable parameters). The defaults are the robust-overfitting
    network, RobustBench's `PreActBlockV2` with `bn_before_fc=True`
    (`Rice2020Overfitting` in L2, `Kireev2021Effectiveness_*`).

    Differences from the reference, none of which changes the function: the
    reference's `avg_pool2d(out, 4)` is global average pooling here (the same
    on 32x32 inputs, and it also works on other sizes); stride-2 convs use an
    explicit symmetric ZeroPadding2D so that PyTorch weights give the same
    outputs. Initialisation follows PyTorch's defaults, which the reference
    keeps: kaiming-uniform(a=sqrt(5)) kernels, i.e. U(+-1/sqrt(fan_in)), a
    Dense bias drawn from U(+-1/sqrt(fan_in)), BatchNorm gamma=1, beta=0
    (not Keras' glorot default).

    Args:
        num_classes: number of output logits (positive integer).
        input_shape: (height, width, channels), channels last. Height and
            width may be None (global pooling makes the head size-agnostic).
        activation: the activation at every site: any name accepted by
            `kr.layers.activation_layer` ("relu", "silu", "gelu", "elu",
            "softplus", "mish", "smooth_relu", "parametric_softplus",
            "smooth_grad_relu", other Keras names), a callable, or a layer,
            which is copied per site (learnable activations get their own
            weights at each site).
        normalization: None, or `(mean, std)`, per-channel sequences of length
            `channels`. The first layer then computes `(x - mean) / std`, so
            the model takes pixels in [0, 1] and attacks work in pixel space.
        batch_norm_momentum: Keras BatchNormalization momentum, the weight of
            the old moving average. 0.9 is PyTorch's default momentum=0.1.
        batch_norm_epsilon: BatchNormalization epsilon (PyTorch's 1e-5).
        name: model name.
        shortcut: what the 1x1 shortcut conv reads where the stride or the
            channel count changes: "activation" (`a = act(bn1(x))`, the
            robust-overfitting code) or "input" (`x`, RobustBench's
            `PreActBlock`).
        final_batch_norm: whether a BatchNorm + activation precedes the
            pooling (False: RobustBench's `PreActResNet` default,
            `bn_before_fc=False`).

    Returns:
        A functional `keras.Model` mapping images to logits (no softmax).

    Raises:
        ValueError: for a bad argument value; the message names the argument.
        TypeError: for a non-integer `num_classes` (as the library's other
            integer checks).

    Example:
    >>> net = kr.architectures.PreActResNet18(
    ...     num_classes=10,
    ...     activation="silu",
    ...     normalization=((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)),
    ... )

    Reference:
        He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks",
        ECCV 2016. Code: `preactresnet.py` of Rice, Wong, Kolter,
        "Overfitting in adversarially robust deep learning", ICML 2020
        (github.com/locuslab/robust_overfitting), also used by Pang et al.,
        "Bag of Tricks for Adversarial Training", ICLR 2021
        (github.com/P2333/Bag-of-Tricks-for-AT).
    """
    num_classes, input_shape, normalization, momentum, epsilon = (
        _blocks.check_common_arguments(
            num_classes,
            input_shape,
            normalization,
            batch_norm_momentum,
            batch_norm_epsilon,
        )
    )
    if shortcut not in ("activation", "input"):
        raise ValueError(
            f'`shortcut` must be "activation" or "input", got {shortcut!r}.'
        )
    if not isinstance(final_batch_norm, bool):
        raise TypeError(
            f"`final_batch_norm` must be True or False, got {final_batch_norm!r}."
        )
    initializer = _blocks.torch_default_kernel_initializer

    def bn(x, layer_name):
        return _blocks.batch_norm(x, layer_name, momentum, epsilon)

    def preact_block(x, in_filters, filters, strides, prefix):
        out = bn(x, f"{prefix}_bn1")
        out = _blocks.activation(out, activation, f"{prefix}_act1")
        if strides != 1 or in_filters != filters:
            residual = _blocks.conv(
                out if shortcut == "activation" else x,
                filters,
                1,
                strides,
                f"{prefix}_shortcut",
                initializer,
            )
        else:
            residual = x
        out = _blocks.conv(out, filters, 3, strides, f"{prefix}_conv1", initializer)
        out = bn(out, f"{prefix}_bn2")
        out = _blocks.activation(out, activation, f"{prefix}_act2")
        out = _blocks.conv(out, filters, 3, 1, f"{prefix}_conv2", initializer)
        return keras.layers.Add(name=f"{prefix}_add")([out, residual])

    inputs, x = _blocks.model_inputs(input_shape, normalization)
    x = _blocks.conv(x, STAGE_FILTERS[0], 3, 1, "stem_conv", initializer)
    in_filters = STAGE_FILTERS[0]
    stages = zip(STAGE_FILTERS, STAGE_STRIDES, BLOCKS_PER_STAGE)
    for stage, (filters, stride, blocks) in enumerate(stages, start=1):
        for block in range(1, blocks + 1):
            strides = stride if block == 1 else 1
            x = preact_block(x, in_filters, filters, strides, f"block{stage}_{block}")
            in_filters = filters
    if final_batch_norm:
        x = bn(x, "final_bn")
        x = _blocks.activation(x, activation, "final_act")
    outputs = _blocks.classifier_head(x, num_classes, initializer, zero_bias=False)
    return keras.Model(inputs, outputs, name=name)
