"""replace_activations: every ReLU swapped, everything else (weights) kept."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_robust as kr
from tests.helpers import FIT_JIT_COMPILE
from tests.helpers import SubclassedDense
from tests.helpers import tiny_cnn
from tests.helpers import to_numpy

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 1, (6, 8, 8, 1)).astype("float32")


def mixed_model():
    """ReLU in all three forms Keras has, next to layers that must stay."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu_layer")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(6, activation="tanh", name="dense_tanh")(x)
    x = keras.layers.Dense(6, name="pre")(x)
    x = keras.layers.Activation("relu", name="relu_activation")(x)
    x = keras.layers.ReLU(max_value=6.0, name="relu6")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    model = keras.Model(inputs, outputs)
    # Non-trivial BatchNorm statistics, which must be copied too.
    bn = model.get_layer("bn")
    bn.set_weights([w + RNG.uniform(0.1, 0.5, w.shape) for w in bn.get_weights()])
    return model


def layer_outputs(model, name, x):
    return to_numpy(keras.Model(model.input, model.get_layer(name).output)(x))


def activation_names(model):
    return {
        layer.name: keras.activations.serialize(layer.activation)
        for layer in model.layers
        if isinstance(layer, keras.layers.Activation)
    }


def test_every_relu_is_replaced_and_the_rest_kept():
    model = mixed_model()
    swapped = kr.layers.replace_activations(model, "silu")
    names = [layer.name for layer in swapped.layers]
    assert names == [
        model.layers[0].name,
        "conv",
        "conv_activation",
        "bn",
        "relu_layer",
        "flat",
        "dense_tanh",
        "pre",
        "relu_activation",
        "relu6",
        "logits",
    ]
    assert activation_names(swapped) == {
        "conv_activation": "silu",
        "relu_layer": "silu",
        "relu_activation": "silu",
    }
    assert swapped.get_layer("conv").get_config()["activation"] == "linear"
    assert swapped.get_layer("dense_tanh").get_config()["activation"] == "tanh"
    assert isinstance(swapped.get_layer("relu6"), keras.layers.ReLU)  # capped: kept
    for layer in model.layers:
        for before, after in zip(
            layer.get_weights(), swapped.get_layer(layer.name).get_weights()
        ):
            np.testing.assert_array_equal(before, after)
    # The original is untouched.
    assert model.get_layer("conv").get_config()["activation"] == "relu"


def test_outputs_change_only_where_the_activation_differs():
    model = mixed_model()
    swapped = kr.layers.replace_activations(model, "silu")
    # Before the first activation: the same numbers.
    conv = keras.Model(model.input, model.get_layer("conv").output)
    pre_activation = to_numpy(
        ops.conv(IMAGES, model.get_layer("conv").kernel) + model.get_layer("conv").bias
    )
    np.testing.assert_allclose(
        layer_outputs(swapped, "conv", IMAGES), pre_activation, atol=1e-5
    )
    np.testing.assert_allclose(
        to_numpy(conv(IMAGES)), np.maximum(pre_activation, 0), atol=1e-5
    )
    np.testing.assert_allclose(
        layer_outputs(swapped, "conv_activation", IMAGES),
        pre_activation / (1 + np.exp(-pre_activation)),
        rtol=1e-4,
        atol=1e-5,
    )
    assert np.abs(to_numpy(swapped(IMAGES)) - to_numpy(model(IMAGES))).max() > 1e-3


def test_relu_for_relu_and_smooth_grad_relu_keep_the_function():
    model = mixed_model()
    expected = to_numpy(model(IMAGES))
    for activation in ("relu", "smooth_grad_relu"):
        swapped = kr.layers.replace_activations(model, activation)
        np.testing.assert_allclose(to_numpy(swapped(IMAGES)), expected, atol=1e-5)

    def input_gradient(net):
        x = ops.convert_to_tensor(IMAGES)
        return to_numpy(kr.backend.input_gradient(lambda v: ops.sum(net(v)), x))

    smooth = kr.layers.replace_activations(model, "smooth_grad_relu")
    assert np.abs(input_gradient(smooth) - input_gradient(model)).max() > 1e-4


def test_swapped_small_cnn_equals_small_cnn_built_with_the_activation():
    relu_net = tiny_cnn()
    swapped = kr.layers.replace_activations(relu_net, "gelu")
    built = tiny_cnn(activation="gelu")
    built.set_weights(relu_net.get_weights())
    np.testing.assert_allclose(
        to_numpy(swapped(IMAGES)), to_numpy(built(IMAGES)), atol=1e-5
    )


def test_learnable_activation_gets_one_weight_per_site_and_round_trips(tmp_path):
    model = mixed_model()
    swapped = kr.layers.replace_activations(model, "smooth_relu")
    sites = [
        layer for layer in swapped.layers if isinstance(layer, kr.layers.SmoothReLU)
    ]
    assert len(sites) == 3
    assert len(swapped.trainable_weights) == len(model.trainable_weights) + 3
    path = tmp_path / "smooth.keras"
    swapped.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        to_numpy(loaded(IMAGES)), to_numpy(swapped(IMAGES)), atol=1e-6
    )


def test_layer_template_is_copied_with_its_options():
    template = kr.layers.SmoothGradReLU(alpha=4.0, smooth_for="attack")
    swapped = kr.layers.replace_activations(mixed_model(), template)
    sites = [
        layer for layer in swapped.layers if isinstance(layer, kr.layers.SmoothGradReLU)
    ]
    assert len(sites) == 3 and template not in sites
    assert {(s.alpha, s.smooth_for) for s in sites} == {(4.0, "attack")}


def test_sequential_and_nested_models():
    sequential = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(4, activation="relu", name="d1"),
            keras.layers.ReLU(name="r"),
            keras.layers.Dense(2, name="d2"),
        ]
    )
    swapped = kr.layers.replace_activations(sequential, "elu")
    assert [layer.name for layer in swapped.layers] == [
        "d1",
        "d1_activation",
        "r",
        "d2",
    ]
    x = RNG.normal(size=(3, 5)).astype("float32")
    hidden = x @ sequential.get_layer("d1").get_weights()[0]
    hidden = hidden + sequential.get_layer("d1").get_weights()[1]
    elu = np.where(hidden > 0, hidden, np.expm1(hidden))
    elu = np.where(elu > 0, elu, np.expm1(elu))
    w, b = sequential.get_layer("d2").get_weights()
    np.testing.assert_allclose(to_numpy(swapped(x)), elu @ w + b, rtol=1e-4, atol=1e-5)

    inputs = keras.Input((5,))
    nested = keras.Model(inputs, keras.layers.ReLU(name="outer")(sequential(inputs)))
    swapped_nested = kr.layers.replace_activations(nested, "elu")
    inner = swapped_nested.layers[1]
    assert isinstance(inner, keras.Sequential) and inner is not sequential
    assert "d1_activation" in [layer.name for layer in inner.layers]
    assert activation_names(swapped_nested) == {"outer": "elu"}


def test_subclassed_models_and_bad_activations_are_refused():
    with pytest.raises(ValueError, match="subclassed"):
        kr.layers.replace_activations(SubclassedDense(), "silu")
    with pytest.raises(ValueError, match="activation"):
        kr.layers.replace_activations(mixed_model(), "not_an_activation")
    with pytest.raises(TypeError, match="model"):
        kr.layers.replace_activations("model.keras", "silu")


def test_swapped_model_trains_adversarially_compiled(digits):
    (x, y), _ = digits
    net = kr.layers.replace_activations(tiny_cnn(), "smooth_relu")
    model = kr.models.AT(net, epsilon=0.1, step_size=0.05, steps=2, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=FIT_JIT_COMPILE)
    history = model.fit(x[:128], y[:128], batch_size=32, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    b_values = [float(to_numpy(layer.b)) for layer in net.layers if hasattr(layer, "b")]
    assert len(b_values) == 3 and all(b != 20.0 for b in b_values)
