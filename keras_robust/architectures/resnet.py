"""ResNet-18 with the CIFAR stem (3x3 conv, stride 1, no max-pool)."""

import keras

from keras_robust.architectures import _blocks

STAGE_FILTERS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)
BLOCKS_PER_STAGE = (2, 2, 2, 2)


def ResNet18(
    num_classes=10,
    input_shape=(32, 32, 3),
    activation="relu",
    normalization=None,
    batch_norm_momentum=0.9,
    batch_norm_epsilon=1e-5,
    name="resnet18",
):
    """ResNet-18 (post-activation BasicBlocks) for CIFAR-sized images, logits out.

    Structure (as in the reference code): a 3x3 stem conv (64 channels,
    stride 1) + BatchNorm + activation and no max-pool; four stages of two
    BasicBlocks with 64, 128, 256, 512 channels and strides 1, 2, 2, 2;
    global average pooling; a Dense layer. A BasicBlock computes
    `act(bn2(conv2(act(bn1(conv1(x))))) + shortcut(x))`, where the shortcut
    is the identity, or a bias-free 1x1 conv + BatchNorm when the stride or
    the channel count changes. All convs are bias-free; only the Dense layer
    has a bias. Activation sites: the stem's, plus 2 per block x 8 blocks
    (the second one after the residual addition) = 17, each its own layer
    (named `stem_act`, `block{stage}_{block}_act1` and `..._act2`).

    With 10 classes the model has 11,173,962 trainable parameters, exactly
    PyTorch's `sum(p.numel() for p in model.parameters())` for the reference
    (PyTorch counts parameters only; BatchNorm running mean/variance are
    buffers there and non-trainable weights here, so compare against
    `sum(w.size for w in model.trainable_weights)`, not `count_params()`).

    Differences from the reference, none of which changes the function: the
    reference's `avg_pool2d(out, 4)` is global average pooling here (the same
    on 32x32 inputs); stride-2 convs use an explicit symmetric ZeroPadding2D
    so that PyTorch weights give the same outputs. Initialisation follows
    PyTorch's defaults, which the reference keeps: kaiming-uniform(a=sqrt(5))
    kernels, i.e. U(+-1/sqrt(fan_in)), a Dense bias drawn from
    U(+-1/sqrt(fan_in)), BatchNorm gamma=1, beta=0 (not Keras' glorot
    default).

    Args:
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
        batch_norm_momentum: Keras BatchNormalization momentum, the weight of
            the old moving average. 0.9 is PyTorch's default momentum=0.1.
        batch_norm_epsilon: BatchNormalization epsilon (PyTorch's 1e-5).
        name: model name.

    Returns:
        A functional `keras.Model` mapping images to logits (no softmax).

    Raises:
        ValueError: for a bad argument value; the message names the argument.
        TypeError: for a non-integer `num_classes` (as the library's other
            integer checks).

    Example:
    >>> net = kr.architectures.ResNet18(num_classes=100, activation="gelu")

    Reference:
        He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition",
        CVPR 2016. Code: `resnet.py` of github.com/kuangliu/pytorch-cifar, as
        copied into the robust-overfitting (Rice et al., ICML 2020) and
        Bag-of-Tricks (Pang et al., ICLR 2021) repositories.
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
    initializer = _blocks.torch_default_kernel_initializer

    def bn(x, layer_name):
        return _blocks.batch_norm(x, layer_name, momentum, epsilon)

    def basic_block(x, in_filters, filters, strides, prefix):
        out = _blocks.conv(x, filters, 3, strides, f"{prefix}_conv1", initializer)
        out = bn(out, f"{prefix}_bn1")
        out = _blocks.activation(out, activation, f"{prefix}_act1")
        out = _blocks.conv(out, filters, 3, 1, f"{prefix}_conv2", initializer)
        out = bn(out, f"{prefix}_bn2")
        if strides != 1 or in_filters != filters:
            shortcut = _blocks.conv(
                x, filters, 1, strides, f"{prefix}_shortcut", initializer
            )
            shortcut = bn(shortcut, f"{prefix}_shortcut_bn")
        else:
            shortcut = x
        out = keras.layers.Add(name=f"{prefix}_add")([out, shortcut])
        return _blocks.activation(out, activation, f"{prefix}_act2")

    inputs, x = _blocks.model_inputs(input_shape, normalization)
    x = _blocks.conv(x, STAGE_FILTERS[0], 3, 1, "stem_conv", initializer)
    x = bn(x, "stem_bn")
    x = _blocks.activation(x, activation, "stem_act")
    in_filters = STAGE_FILTERS[0]
    stages = zip(STAGE_FILTERS, STAGE_STRIDES, BLOCKS_PER_STAGE)
    for stage, (filters, stride, blocks) in enumerate(stages, start=1):
        for block in range(1, blocks + 1):
            strides = stride if block == 1 else 1
            x = basic_block(x, in_filters, filters, strides, f"block{stage}_{block}")
            in_filters = filters
    outputs = _blocks.classifier_head(x, num_classes, initializer, zero_bias=False)
    return keras.Model(inputs, outputs, name=name)
