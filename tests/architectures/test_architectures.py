"""The residual architectures: exact sizes, shapes, activations, options, saving.

Cases are looped inside a few tests rather than parametrized: every test pays
the autouse `clear_session` (a full `gc.collect`, ~0.3 s here), and on JAX
each new weight shape compiles its own initializer, so few tests sharing
shapes keep the file fast.
"""

import re

import keras
import numpy as np
import pytest

import keras_robust as kr
from keras_robust.architectures import _blocks

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)
SMALL = (8, 8, 3)

# Layer types that never compute an activation; anything else must be an
# activation site named "..._act", "..._act1" or "..._act2".
NON_ACTIVATION_LAYERS = (
    keras.layers.InputLayer,
    keras.layers.Normalization,
    keras.layers.ZeroPadding2D,
    keras.layers.Conv2D,
    keras.layers.BatchNormalization,
    keras.layers.Add,
    keras.layers.Dropout,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.Dense,
)
ACTIVATION_NAME = re.compile(r"_act[12]?$")


def small_wrn(**kwargs):
    kwargs.setdefault("depth", 10)
    kwargs.setdefault("width", 1)
    return kr.architectures.WideResNet(**kwargs)


BUILDERS = {
    "PreActResNet18": kr.architectures.PreActResNet18,
    "ResNet18": kr.architectures.ResNet18,
    "WRN-10-1": small_wrn,
}


def trainable_count(model):
    """What PyTorch's sum(p.numel() for p in model.parameters()) counts."""
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def activation_sites(model):
    return [layer for layer in model.layers if ACTIVATION_NAME.search(layer.name)]


def images(shape, seed=0):
    return np.random.default_rng(seed).uniform(size=shape).astype("float32")


def logits_of(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def test_trainable_parameter_counts_match_the_pytorch_references():
    # PyTorch's parameters() of the reference code (BatchNorm running
    # statistics are buffers there), derived by hand, e.g. PreAct ResNet-18 =
    # stem 1,728 + stages 147,968 + 525,184 + 2,098,944 + 8,392,192 + final
    # BN 1,024 + Linear 5,130.
    expected = {
        "PreActResNet18": 11_172_170,
        "ResNet18": 11_173_962,
        "WideResNet34_10": 46_160_474,
        "WideResNet28_10": 36_479_194,
    }
    counts = {}
    for name in expected:
        # Only the weight shapes matter here: build without drawing initial
        # values (on JAX every new kernel shape compiles its own random
        # kernel, ~8 s for WRN-34-10). The other tests build real models.
        with keras.StatelessScope(initialize_variables=False):
            model = getattr(kr.architectures, name)(num_classes=10)
        counts[name] = trainable_count(model)
        # Bias-free convs: the only bias outside BatchNorm is the Dense one.
        biases = [w.path for w in model.trainable_weights if w.path.endswith("bias")]
        assert [path for path in biases if "bn" not in path] == ["logits/bias"], name
        # The non-trainable rest is the BatchNorm moving statistics.
        assert all(
            w.path.endswith(("moving_mean", "moving_variance"))
            for w in model.non_trainable_weights
        ), name
    assert counts == expected
    # CIFAR-100 head: 512 x 100 + 100 instead of 512 x 10 + 10.
    with keras.StatelessScope(initialize_variables=False):
        model = kr.architectures.PreActResNet18(num_classes=100)
    assert tuple(model.output.shape) == (None, 100)
    assert trainable_count(model) == 11_172_170 - 5_130 + 51_300


def test_resnet18s_return_logits_of_shape_batch_classes():
    for name in ("PreActResNet18", "ResNet18"):
        for input_shape in ((32, 32, 3), (16, 16, 3)):
            model = BUILDERS[name](num_classes=10, input_shape=input_shape)
            logits = logits_of(model, images((2, *input_shape)))
            assert logits.shape == (2, 10), (name, input_shape)
            assert np.all(np.isfinite(logits))
            assert model.layers[-1].get_config()["activation"] == "linear"


def test_wide_resnet_forward_and_structure_at_small_depth():
    model = small_wrn(input_shape=SMALL)
    assert model.name == "wide_resnet10_1"
    assert logits_of(model, images((3, *SMALL))).shape == (3, 10)
    # Widths 16k, 32k, 64k; spatial size halves in stages 2 and 3.
    assert model.get_layer("block1_1_conv2").output.shape[1:] == (8, 8, 16)
    assert model.get_layer("block2_1_conv2").output.shape[1:] == (4, 4, 32)
    assert model.get_layer("block3_1_conv2").output.shape[1:] == (2, 2, 64)
    # 16 -> 16 channels at stride 1 adds x itself; 16 -> 32 at stride 2 adds
    # a 1x1 conv of the pre-activation, as in the TRADES code.
    names = [layer.name for layer in model.layers]
    assert "block1_1_shortcut" not in names
    shortcut = model.get_layer("block2_1_shortcut")
    assert shortcut.kernel.shape == (1, 1, 16, 32)
    assert shortcut.input is model.get_layer("block2_1_act1").output
    # Dropout (off by default) sits between the two convs of every block.
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
    model = small_wrn(input_shape=SMALL, dropout=0.3)
    dropouts = [
        layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)
    ]
    assert [layer.name for layer in dropouts] == [
        "block1_1_dropout",
        "block2_1_dropout",
        "block3_1_dropout",
    ]
    assert all(layer.rate == pytest.approx(0.3) for layer in dropouts)
    assert dropouts[0].input is model.get_layer("block1_1_act2").output


def test_activation_is_used_at_every_site_and_nowhere_else():
    expected_sites = {
        # 8 pre-activation blocks x (act1 before conv1, act2 before conv2) +
        # the final act before pooling; nothing after the additions.
        "PreActResNet18": 2 * 8 + 1,
        # stem act + 8 blocks x (act1 inside, act2 after the addition).
        "ResNet18": 1 + 2 * 8,
        # depth 10: n = (10 - 4) / 6 = 1 block per stage, 3 x 2 + final act.
        "WRN-10-1": 2 * 3 + 1,
    }
    probe = np.linspace(-3.0, 3.0, 13, dtype="float32")
    silu = keras.ops.convert_to_numpy(keras.activations.silu(probe))
    relu = np.maximum(probe, 0.0)
    for name, builder in BUILDERS.items():
        for activation, expected in (("silu", silu), ("relu", relu)):
            model = builder(activation=activation, input_shape=SMALL)
            sites = activation_sites(model)
            assert len(sites) == expected_sites[name], name
            assert len({id(layer) for layer in sites}) == len(sites), name
            # Every other layer computes no activation (linear convs/dense).
            for layer in model.layers:
                if layer in sites:
                    continue
                assert isinstance(layer, NON_ACTIVATION_LAYERS), (name, layer.name)
                if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
                    assert layer.get_config()["activation"] == "linear", layer.name
            for layer in sites:
                actual = keras.ops.convert_to_numpy(layer(probe))
                np.testing.assert_allclose(
                    actual, expected, rtol=1e-6, atol=1e-6, err_msg=layer.name
                )
    # The default is ReLU.
    default = kr.architectures.ResNet18(input_shape=SMALL)
    assert {
        layer.get_config()["activation"] for layer in activation_sites(default)
    } == {"relu"}


def test_learnable_activations_get_their_own_weights_at_each_site():
    model = small_wrn(activation="smooth_relu", input_shape=SMALL)
    sites = activation_sites(model)
    assert len(sites) == 7
    assert all(isinstance(layer, kr.layers.SmoothReLU) for layer in sites)
    site_weights = [id(w) for layer in sites for w in layer.weights]
    assert len(site_weights) == len(set(site_weights)) >= 7
    # A layer instance as `activation` is copied per site, not shared.
    model = small_wrn(activation=kr.layers.SmoothReLU(), input_shape=SMALL)
    sites = activation_sites(model)
    assert len({id(layer) for layer in sites}) == 7


def test_normalization_inside_equals_normalizing_the_input():
    # Input sizes already used above, so JAX reuses its compiled ops.
    sizes = {"PreActResNet18": (16, 16, 3), "ResNet18": (16, 16, 3)}
    for name, builder in BUILDERS.items():
        input_shape = sizes.get(name, SMALL)
        x = images((2, *input_shape))
        standardized = (x - np.array(CIFAR10_MEAN, "float32")) / np.array(
            CIFAR10_STD, "float32"
        )
        plain = builder(input_shape=input_shape)
        normalized = builder(
            input_shape=input_shape, normalization=(CIFAR10_MEAN, CIFAR10_STD)
        )
        assert normalized.layers[1].name == "normalization", name
        assert trainable_count(normalized) == trainable_count(plain), name
        # Same layers apart from the parameter-free Normalization: copy weights.
        for layer in plain.layers:
            normalized.get_layer(layer.name).set_weights(layer.get_weights())
        np.testing.assert_allclose(
            logits_of(normalized, x),
            logits_of(plain, standardized),
            rtol=1e-4,
            atol=1e-4,
            err_msg=name,
        )
    # One channel works too.
    gray = small_wrn(input_shape=(8, 8, 1), normalization=([0.1307], [0.3081]))
    assert logits_of(gray, images((1, 8, 8, 1))).shape == (1, 10)


INVALID_NORMALIZATIONS = [
    ((0.5, 0.2), "mean must hold one value per input channel"),
    ((0.5, 0.2, 0.1), "pair of per-channel"),
    (((0.5, 0.5, 0.5),), "pair of per-channel"),
    (((0.5, 0.5), (0.2, 0.2, 0.2)), "mean must hold one value per input channel"),
    (((0.5, 0.5, 0.5), (0.2, 0.2)), "std must hold one value per input channel"),
    (((0.5, 0.5, 0.5), (0.2, 0.0, 0.2)), "std must be > 0"),
    (((0.5, 0.5, 0.5), (0.2, -0.1, 0.2)), "std must be > 0"),
    (((0.5, float("nan"), 0.5), (0.2, 0.2, 0.2)), "mean must be finite"),
    ((("a", "b", "c"), (0.2, 0.2, 0.2)), "mean must be a sequence"),
]

BAD_ARGUMENTS = [
    ({"num_classes": 0}, "num_classes"),
    ({"input_shape": (32, 32)}, "input_shape"),
    ({"input_shape": (32, 32, None)}, "input_shape"),
    ({"input_shape": (32, 32, 0)}, "input_shape"),
    ({"normalization": ((0.5,), (0.2,))}, "normalization"),
    ({"batch_norm_momentum": 1.0}, "batch_norm_momentum"),
    ({"batch_norm_momentum": -0.1}, "batch_norm_momentum"),
    ({"batch_norm_epsilon": 0.0}, "batch_norm_epsilon"),
    ({"batch_norm_epsilon": "small"}, "batch_norm_epsilon"),
    ({"activation": "not_an_activation"}, "activation"),
]


def test_bad_arguments_raise_errors_naming_them():
    for normalization, message in INVALID_NORMALIZATIONS:
        with pytest.raises(ValueError, match="`normalization`") as info:
            kr.architectures.PreActResNet18(normalization=normalization)
        assert message in str(info.value), normalization
    for builder in BUILDERS.values():
        for kwargs, argument in BAD_ARGUMENTS:
            with pytest.raises(ValueError, match=f"`{argument}`"):
                builder(**kwargs)
        with pytest.raises(TypeError, match="`num_classes`"):
            builder(num_classes=2.5)


def test_wide_resnet_arguments_are_checked():
    for depth in (12, 26, 4):
        with pytest.raises(ValueError, match=r"`depth` must satisfy \(depth - 4\)"):
            kr.architectures.WideResNet(depth=depth, width=1)
    with pytest.raises(TypeError, match="`depth`"):
        kr.architectures.WideResNet(depth=34.0, width=1)
    with pytest.raises(ValueError, match="`depth`"):
        kr.architectures.WideResNet(depth=-2, width=1)
    with pytest.raises(ValueError, match="`width`"):
        kr.architectures.WideResNet(depth=10, width=0)
    with pytest.raises(TypeError, match="`width`"):
        kr.architectures.WideResNet(depth=10, width=1.5)
    for dropout in (1.0, -0.1, "0.5"):
        with pytest.raises(ValueError, match="`dropout`"):
            kr.architectures.WideResNet(depth=10, width=1, dropout=dropout)


def test_batch_norm_defaults_are_pytorchs_and_arguments_are_passed():
    for name, builder in BUILDERS.items():
        for kwargs, momentum, epsilon in (
            ({}, 0.9, 1e-5),
            ({"batch_norm_momentum": 0.99, "batch_norm_epsilon": 1e-3}, 0.99, 1e-3),
        ):
            with keras.StatelessScope(initialize_variables=False):
                model = builder(input_shape=SMALL, **kwargs)
            norms = [
                layer
                for layer in model.layers
                if isinstance(layer, keras.layers.BatchNormalization)
            ]
            assert norms, name
            assert all(layer.momentum == pytest.approx(momentum) for layer in norms)
            assert all(layer.epsilon == pytest.approx(epsilon) for layer in norms)
    with pytest.warns(UserWarning, match="PyTorch's momentum=0.1 is Keras' 0.9"):
        small_wrn(input_shape=SMALL, batch_norm_momentum=0.1)


def test_strided_convs_pad_symmetrically_like_pytorch():
    """Conv2d(stride=2, padding=1) in PyTorch pads one pixel on every side."""
    x = images((1, 6, 6, 2))
    inputs = keras.Input((6, 6, 2))
    outputs = _blocks.conv(
        inputs, 3, 3, 2, "probe", _blocks.torch_default_kernel_initializer
    )
    model = keras.Model(inputs, outputs)
    kernel = keras.ops.convert_to_numpy(model.get_layer("probe").kernel)
    padded = np.pad(x[0], ((1, 1), (1, 1), (0, 0)))
    expected = np.zeros((3, 3, 3), "float32")
    for i in range(3):
        for j in range(3):
            patch = padded[2 * i : 2 * i + 3, 2 * j : 2 * j + 3, :]
            expected[i, j] = np.einsum("hwc,hwco->o", patch, kernel)
    actual = keras.ops.convert_to_numpy(model(x))[0]
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_save_and_load_round_trip_gives_identical_outputs(tmp_path):
    model = small_wrn(
        activation="silu",
        normalization=(CIFAR10_MEAN, CIFAR10_STD),
        input_shape=SMALL,
    )
    # Non-trivial BatchNorm moving statistics, so that they must be saved.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(np.full(shape, 0.1, "float32"))
            layer.moving_variance.assign(np.full(shape, 2.0, "float32"))
    x = images((2, *SMALL))
    before = logits_of(model, x)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(logits_of(loaded, x), before)
    assert [layer.name for layer in loaded.layers] == [
        layer.name for layer in model.layers
    ]
