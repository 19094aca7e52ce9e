"""`kr.analysis.margin_speeds`: margins and their speeds against closed forms."""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import to_numpy

FEATURES = 6


def _binary_linear(seed=0):
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(2)])
    rng = np.random.RandomState(seed)
    weights = rng.randn(FEATURES, 2).astype("float32")
    bias = np.array([0.1, -0.1], "float32")
    model.set_weights([weights, bias])
    # Close to the box's centre, so that the closest boundary point is
    # interior to [0, 1] and the closed forms hold.
    x = (0.5 + 0.02 * rng.randn(8, FEATURES)).astype("float32")
    y = (x @ weights + bias).argmax(1)
    return model, x, y


def _linear_margin(weights, bias, x, y, norm):
    w = weights[:, 1] - weights[:, 0]
    signed = np.where(y == 1, 1.0, -1.0) * (x @ w + bias[1] - bias[0])
    dual = np.abs(w).sum() if norm == "linf" else np.sqrt(np.sum(w**2))
    return signed / dual


def _random_direction(model, seed=1):
    rng = np.random.RandomState(seed)
    return [rng.randn(*v.shape).astype("float32") for v in model.trainable_variables]


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_linear_margin_and_speed_equal_the_closed_form(norm):
    model, x, y = _binary_linear()
    weights, bias = model.get_weights()
    v_weights, v_bias = direction = _random_direction(model)
    result = kr.analysis.margin_speeds(
        model, x, y, update_direction=direction, norm=norm
    )
    assert result.found.all() and result.correct.all()
    margin = _linear_margin(weights, bias, x, y, norm)
    np.testing.assert_allclose(result.margin, margin, rtol=1e-4)
    # d/dt of (sign (w.x + c) / ||w||_*) along (v_w, v_c), differentiated by hand.
    w, c = weights[:, 1] - weights[:, 0], bias[1] - bias[0]
    dw, dc = v_weights[:, 1] - v_weights[:, 0], v_bias[1] - v_bias[0]
    sign = np.where(y == 1, 1.0, -1.0)
    if norm == "linf":
        dual, d_dual = np.abs(w).sum(), np.sign(w) @ dw
    else:
        dual = np.sqrt(np.sum(w**2))
        d_dual = w @ dw / dual
    closed_form = sign * (x @ dw + dc) / dual - sign * (x @ w + c) * d_dual / dual**2
    np.testing.assert_allclose(result.speed, closed_form, rtol=2e-3, atol=1e-5)
    # And a central finite difference of the closed-form margin.
    h = 1e-3
    plus = _linear_margin(weights + h * v_weights, bias + h * v_bias, x, y, norm)
    minus = _linear_margin(weights - h * v_weights, bias - h * v_bias, x, y, norm)
    np.testing.assert_allclose(result.speed, (plus - minus) / (2 * h), rtol=2e-3)
    step = result.boundary - x
    size = np.abs(step).max(1) if norm == "linf" else np.sqrt(np.sum(step**2, 1))
    np.testing.assert_allclose(size, margin, rtol=1e-4)


def test_forward_mode_equals_per_point_backward_passes():
    """grad_theta phi(x^_i) . v, one backward pass per point, gives the same speeds.

    A smooth network (SiLU, no max-pooling) and DyART's soft margin: at a
    kink (ReLU, max-pooling, the hard margin's maximum) the gradient at x^
    depends on the side rounding puts it, compiled or not.
    """
    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="silu"),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="silu"),
            # Logits apart enough for a positive soft margin.
            keras.layers.Dense(
                10, kernel_initializer=keras.initializers.RandomNormal(0, 2)
            ),
        ]
    )
    (x, _), _ = kr.datasets.load_digits()
    y = to_numpy(net(x[:200])).argmax(1)
    positive = to_numpy(kr.losses.soft_margin(net(x[:200]), y, 5.0)) > 0
    x, y = x[:200][positive][:12], y[positive][:12]
    direction = _random_direction(net)
    result = kr.analysis.margin_speeds(
        net, x, y, update_direction=direction, temperature=5.0
    )
    assert result.found.sum() >= 8
    variables = net.trainable_variables
    values = [v.value for v in variables]
    for i in np.flatnonzero(result.found):
        point = keras.ops.convert_to_tensor(result.boundary[i : i + 1])

        def margin(current, point=point, label=y[i : i + 1]):
            with keras.StatelessScope(state_mapping=list(zip(variables, current))):
                logits = net(point, training=False)
            return keras.ops.sum(kr.losses.soft_margin(logits, label, 5.0))

        gradients = kr.backend.weight_gradient(margin, values)
        rate = sum(np.sum(to_numpy(g) * d) for g, d in zip(gradients, direction))
        input_gradient = to_numpy(
            kr.backend.input_gradient(
                lambda z, label=y[i : i + 1]: keras.ops.sum(
                    kr.losses.soft_margin(net(z, training=False), label, 5.0)
                ),
                point,
            )
        )
        expected = rate / np.abs(input_gradient).sum()
        np.testing.assert_allclose(result.speed[i], expected, rtol=1e-3, atol=1e-6)


def test_weights_are_arguments_of_the_compiled_function():
    """After the weights change, the same compiled function sees the new ones."""
    model, x, y = _binary_linear()
    direction = _random_direction(model)
    function = kr.analysis.MarginSpeedFunction(model, batch_size=4)
    first = function(x, y, direction)
    weights, bias = model.get_weights()
    model.set_weights([2.0 * weights, 2.0 * bias])  # the same boundary
    second = function(x, y, direction)
    np.testing.assert_allclose(second.margin, first.margin, rtol=1e-4)
    # The speed of a doubled logit map under the same v halves.
    np.testing.assert_allclose(second.speed, first.speed / 2, rtol=2e-3, atol=1e-6)
    # Padding the last batch (8 points, batch 4 + a remainder of 0; 6: 4 + 2).
    partial = function(x[:6], y[:6], direction)
    np.testing.assert_allclose(partial.margin, second.margin[:6], rtol=1e-5)


def test_default_direction_is_the_training_gradient_descent_direction():
    model, x, y = _binary_linear()
    direction = kr.analysis.training_direction(model, x, y)
    variables = model.trainable_variables
    values = [v.value for v in variables]

    def loss(current):
        with keras.StatelessScope(state_mapping=list(zip(variables, current))):
            logits = model(x, training=True)
        return keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        )

    expected = kr.backend.weight_gradient(loss, values)
    for d, g in zip(direction, expected):
        np.testing.assert_allclose(to_numpy(d), -to_numpy(g), rtol=1e-5, atol=1e-7)
    default = kr.analysis.margin_speeds(model, x, y)
    explicit = kr.analysis.margin_speeds(model, x, y, update_direction=direction)
    np.testing.assert_allclose(default.speed, explicit.speed, rtol=1e-5)


def test_robust_model_direction_descends_its_own_objective():
    model, x, y = _binary_linear()
    robust = kr.models.TRADES(model, epsilon=0.05, steps=3, seed=0)
    robust.compile(optimizer="sgd")
    direction = kr.analysis.training_direction(robust, x, y)
    x_adv = robust.generate_adversarial(x, y, training=True)
    before = float(to_numpy(robust.compute_robust_loss(x, x_adv, y)[0]))
    weights = model.get_weights()
    model.set_weights([w + 1e-2 * to_numpy(d) for w, d in zip(weights, direction)])
    after = float(to_numpy(robust.compute_robust_loss(x, x_adv, y)[0]))
    assert after < before


def test_conflicting_fraction_and_summary():
    result = kr.analysis.MarginSpeeds(
        margin=[0.01, 0.02, 0.5, np.nan],
        speed=[-1.0, 2.0, -3.0, np.nan],
        correct=[True, True, True, False],
        found=[True, True, True, False],
        norm="linf",
    )
    assert result.vulnerable(0.1).tolist() == [True, True, False, False]
    assert result.conflicting_fraction(0.1) == 0.5
    assert np.isnan(result.conflicting_fraction(0.001))
    summary = result.summary(0.1)
    assert summary["vulnerable"] == 2 and summary["correct"] == 3
    assert summary["mean_speed"] == pytest.approx(-2 / 3)


def test_bad_input_is_refused_before_any_computation():
    model, x, y = _binary_linear()
    direction = _random_direction(model)
    with pytest.raises(ValueError, match="2 trainable weights"):
        kr.analysis.margin_speeds(model, x, y, update_direction=direction[:1])
    with pytest.raises(ValueError, match=r"update_direction\[1\]"):
        kr.analysis.margin_speeds(
            model, x, y, update_direction=[direction[0], np.zeros(3, "float32")]
        )
    with pytest.raises(TypeError, match="list of arrays"):
        kr.analysis.margin_speeds(model, x, y, update_direction=direction[0])
    with pytest.raises(ValueError, match="shaped"):
        kr.analysis.margin_speeds(model, x[:, :3], y, update_direction=direction)
    with pytest.raises(ValueError, match="labels"):
        kr.analysis.margin_speeds(model, x, y[:3], update_direction=direction)
    with pytest.raises(ValueError, match="norm"):
        kr.analysis.margin_speeds(model, x, y, update_direction=direction, norm="l1")
