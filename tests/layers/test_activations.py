"""SmoothReLU, ParametricSoftplus, SmoothGradReLU against their formulas."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_robust as kr
from tests.helpers import FIT_JIT_COMPILE
from tests.helpers import to_numpy

# Includes large |x| (overflow of exp(alpha x) in a naive softplus) and 0.
X = np.concatenate(
    [np.linspace(-50.0, 50.0, 201), [-1e4, -3.0, -1e-3, 0.0, 1e-3, 0.05, 1e4]]
).astype("float32")


def np_smooth_relu(x, a):
    positive = np.maximum(x.astype("float64"), 0.0)
    return positive - np.log1p(a * positive) / a


def np_parametric_softplus(x, alpha):
    z = alpha * x.astype("float64")
    return np.logaddexp(0.0, z) / alpha


def np_sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def gradient(layer, x):
    """d sum(layer(x)) / dx, the elementwise derivative."""
    return to_numpy(
        kr.backend.input_gradient(lambda v: ops.sum(layer(v)), ops.convert_to_tensor(x))
    )


@pytest.mark.parametrize("initial_b", [20.0, 3.0])
def test_smooth_relu_matches_formula_and_derivative(initial_b):
    layer = kr.layers.SmoothReLU(initial_b=initial_b)
    a = initial_b**2
    np.testing.assert_allclose(
        to_numpy(layer(X)), np_smooth_relu(X, a), rtol=1e-5, atol=1e-6
    )
    positive = np.maximum(X.astype("float64"), 0.0)
    np.testing.assert_allclose(
        gradient(layer, X), a * positive / (1.0 + a * positive), rtol=1e-4, atol=1e-6
    )
    assert to_numpy(layer(X))[X < 0].max() == 0.0


def test_smooth_relu_b_is_one_learnable_scalar_per_layer():
    layer = kr.layers.SmoothReLU()
    layer.build((None, 3))
    assert [tuple(w.shape) for w in layer.trainable_weights] == [()]
    assert float(to_numpy(layer.b)) == 20.0
    frozen = kr.layers.SmoothReLU(trainable_b=False)
    frozen.build((None, 3))
    assert not frozen.trainable_weights and len(frozen.weights) == 1


def test_smooth_relu_b_is_trained():
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(1)(kr.layers.SmoothReLU(initial_b=2.0)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = np.random.default_rng(0).uniform(0, 1, (32, 4)).astype("float32")
    model.fit(x, x.sum(1, keepdims=True), epochs=2, verbose=0)
    assert float(to_numpy(model.layers[1].b)) != 2.0


@pytest.mark.parametrize("alpha", [10.0, 1.0, 100.0])
def test_parametric_softplus_matches_formula_and_derivative(alpha):
    layer = kr.layers.ParametricSoftplus(alpha=alpha)
    outputs = to_numpy(layer(X))
    assert np.all(np.isfinite(outputs))
    np.testing.assert_allclose(
        outputs, np_parametric_softplus(X, alpha), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        gradient(layer, X), np_sigmoid(alpha * X), rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize("alpha", [10.0, 2.0])
def test_smooth_grad_relu_is_relu_forward_sigmoid_backward(alpha):
    layer = kr.layers.SmoothGradReLU(alpha=alpha)
    np.testing.assert_array_equal(to_numpy(layer(X)), np.maximum(X, 0.0))
    np.testing.assert_allclose(
        gradient(layer, X), np_sigmoid(alpha * X), rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize(
    "smooth_for, smooth_in_attack, smooth_in_update",
    [("both", True, True), ("attack", True, False), ("update", False, True)],
)
def test_smooth_grad_relu_smooths_where_asked(
    smooth_for, smooth_in_attack, smooth_in_update
):
    layer = kr.layers.SmoothGradReLU(alpha=10.0, smooth_for=smooth_for)
    smooth, exact = np_sigmoid(10.0 * X), (X > 0).astype("float32")
    with kr.layers.attack_phase():
        assert kr.layers.in_attack_phase()
        in_attack = gradient(layer, X)
    assert not kr.layers.in_attack_phase()
    in_update = gradient(layer, X)
    for measured, smoothed in (
        (in_attack, smooth_in_attack),
        (in_update, smooth_in_update),
    ):
        np.testing.assert_allclose(
            measured, smooth if smoothed else exact, rtol=1e-4, atol=1e-6
        )


def _one_hidden_unit_model(activation_layer):
    """logits = [h, -h], h = act(x1 + x2 - 1): for x = (0.2, 0.2), h's input is -0.6."""
    inputs = keras.Input((2,))
    pre = keras.layers.Dense(1)
    hidden = activation_layer(pre(inputs))
    head = keras.layers.Dense(2)
    model = keras.Model(inputs, head(hidden))
    pre.set_weights([np.ones((2, 1), "float32"), np.array([-1.0], "float32")])
    head.set_weights([np.array([[1.0, -1.0]], "float32"), np.zeros(2, "float32")])
    return model


@pytest.mark.parametrize("smooth_for, moves", [("attack", True), ("update", False)])
def test_attacks_see_the_attack_gradient(smooth_for, moves):
    """Below the ReLU's kink, FGSM moves only if the attacker gets the smooth gradient."""
    model = _one_hidden_unit_model(kr.layers.SmoothGradReLU(smooth_for=smooth_for))
    x = np.full((2, 2), 0.2, "float32")
    attack = kr.attacks.FGSM(epsilon=0.1)
    for _ in range(2):  # the first call runs eagerly, the second compiled
        moved = np.abs(to_numpy(attack(model, x, np.zeros(2, "int32"))) - x).max()
        np.testing.assert_allclose(moved, 0.1 if moves else 0.0, atol=1e-6)


@pytest.mark.parametrize(
    "layer",
    [
        kr.layers.SmoothReLU(initial_b=7.0, trainable_b=False),
        kr.layers.ParametricSoftplus(alpha=4.0),
        kr.layers.SmoothGradReLU(alpha=3.0, smooth_for="attack"),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_layers_round_trip_through_a_saved_model(layer, tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, layer(keras.layers.Dense(3)(inputs)))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.linspace(-1, 1, 12, dtype="float32").reshape(4, 3)
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), atol=1e-6)
    assert loaded.layers[-1].get_config() == model.layers[-1].get_config()


def test_layers_work_compiled():
    inputs = keras.Input((5,))
    x = kr.layers.SmoothReLU()(keras.layers.Dense(5)(inputs))
    x = kr.layers.ParametricSoftplus()(keras.layers.Dense(5)(x))
    x = kr.layers.SmoothGradReLU()(keras.layers.Dense(5)(x))
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=FIT_JIT_COMPILE,
    )
    data = np.random.default_rng(0).normal(size=(16, 5)).astype("float32")
    history = model.fit(data, np.arange(16) % 2, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: kr.layers.SmoothReLU(initial_b=0.0), "initial_b"),
        (lambda: kr.layers.ParametricSoftplus(alpha=-1.0), "alpha"),
        (lambda: kr.layers.SmoothGradReLU(alpha=0.0), "alpha"),
        (lambda: kr.layers.SmoothGradReLU(smooth_for="forward"), "smooth_for"),
        (lambda: kr.layers.activation_layer("relu2"), "activation"),
    ],
)
def test_bad_arguments_name_themselves(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_activation_layer_names():
    x = np.linspace(-3, 3, 13, dtype="float32")
    gelu_tanh = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    expected = {
        "silu": x / (1 + np.exp(-x)),
        "gelu": gelu_tanh,
        "elu": np.where(x > 0, x, np.expm1(x)),
        "softplus": np.log1p(np.exp(x)),
        "mish": x * np.tanh(np.log1p(np.exp(x))),
        "smooth_relu": np_smooth_relu(x, 400.0),
        "parametric_softplus": np_parametric_softplus(x, 10.0),
        "smooth_grad_relu": np.maximum(x, 0),
    }
    assert set(expected) | {"relu"} == set(kr.layers.SAT_ACTIVATIONS)
    for name, values in expected.items():
        layer = kr.layers.activation_layer(name, name=f"site_{name}")
        assert layer.name == f"site_{name}"
        np.testing.assert_allclose(to_numpy(layer(x)), values, rtol=1e-4, atol=1e-5)


def test_activation_layer_copies_layers_per_site():
    template = kr.layers.SmoothReLU(initial_b=5.0)
    first = kr.layers.activation_layer(template, name="a")
    second = kr.layers.activation_layer(template, name="b")
    assert first is not template and first is not second
    assert first.get_config()["initial_b"] == 5.0 and first.name == "a"
