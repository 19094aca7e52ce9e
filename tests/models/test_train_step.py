"""One `fit` step of each method equals an update computed by hand in numpy.

The classifier is linear, f(x) = x W + b, so the attack's input gradient is
analytic, and the objective's weight gradient is taken by central finite
differences in float64 from a numpy transcription of the reference loss.
"""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import linear_classifier
from tests.helpers import to_numpy
from tests.oracles import np_ce
from tests.oracles import np_kl
from tests.oracles import np_mart
from tests.oracles import np_softmax
from tests.oracles import np_trades
from tests.oracles import np_weat_weights

EPSILON, STEP, STEPS, LEARNING_RATE, BETA = 0.1, 0.04, 3, 0.5, 6.0


def np_pgd_ce(weights, bias, x, y):
    """Deterministic L-inf CE-PGD on the linear model (no random start)."""
    x_adv = x.copy()
    one_hot = np.eye(weights.shape[1])[y]
    for _ in range(STEPS):
        gradient = (np_softmax(x_adv @ weights + bias) - one_hot) @ weights.T
        x_adv = x_adv + STEP * np.sign(gradient)
        x_adv = np.clip(np.clip(x_adv, x - EPSILON, x + EPSILON), 0.0, 1.0)
    return x_adv


def objectives(sample_weight, frozen_weat_weights=None):
    weights_or_one = 1.0 if sample_weight is None else sample_weight

    def at(y, zn, za):
        return np.mean(weights_or_one * np_ce(y, za))

    def trades(y, zn, za):
        if sample_weight is None:
            return np_trades(y, zn, za, BETA)
        return np.mean(sample_weight * (np_ce(y, zn) + BETA * np_kl(zn, za)))

    def mart(y, zn, za):
        return np_mart(y, zn, za, BETA)

    def weat(y, zn, za):
        # WEAT's weights are stop-gradiented: frozen at the step's start.
        return np.mean(frozen_weat_weights * (np_ce(y, za) + BETA * np_kl(zn, za)))

    return {"AT": at, "TRADES": trades, "MART": mart, "WEAT": weat}


def numeric_gradient(loss, parameters, h=1e-6):
    gradients = []
    for parameter in parameters:
        gradient = np.zeros_like(parameter)
        for index in np.ndindex(parameter.shape):
            original = parameter[index]
            parameter[index] = original + h
            up = loss()
            parameter[index] = original - h
            down = loss()
            parameter[index] = original
            gradient[index] = (up - down) / (2 * h)
        gradients.append(gradient)
    return gradients


@pytest.mark.parametrize(
    "method, weighted",
    [
        ("AT", False),
        ("TRADES", False),
        ("TRADES", True),
        ("MART", False),
        ("WEAT", False),
    ],
)
def test_one_step_matches_hand_computed_update(method, weighted):
    rng = np.random.default_rng(3)
    weights = rng.normal(size=(4, 3))
    bias = rng.normal(size=3) * 0.1
    x = rng.uniform(0.05, 0.95, size=(8, 4)).astype("float32")
    y = rng.integers(0, 3, size=8)
    sample_weight = rng.uniform(0.5, 1.5, size=8) if weighted else None

    x_adv = np_pgd_ce(weights, bias, x.astype("float64"), y)
    frozen = np_weat_weights(x @ weights + bias)
    objective = objectives(sample_weight, frozen)[method]
    parameters = [weights.copy(), bias.copy()]

    def loss():
        w, b = parameters
        return objective(y, x @ w + b, x_adv @ w + b)

    grad_w, grad_b = numeric_gradient(loss, parameters)
    expected_w = weights - LEARNING_RATE * grad_w
    expected_b = bias - LEARNING_RATE * grad_b

    classifier = linear_classifier(weights, bias)
    attack = kr.attacks.PGD(EPSILON, step_size=STEP, steps=STEPS, random_start="none")
    model = getattr(kr.models, method)(classifier, attack=attack)
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE))
    history = model.fit(
        x,
        y,
        sample_weight=None
        if sample_weight is None
        else sample_weight.astype("float32"),
        batch_size=8,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    new_w, new_b = classifier.get_weights()
    np.testing.assert_allclose(new_w, expected_w, atol=2e-5)
    np.testing.assert_allclose(new_b, expected_b, atol=2e-5)
    np.testing.assert_allclose(history.history["loss"][0], loss(), rtol=1e-5)


def test_regularization_losses_are_added():
    rng = np.random.default_rng(4)
    x = rng.uniform(0.1, 0.9, size=(8, 4)).astype("float32")
    y = rng.integers(0, 3, size=8)
    inputs = keras.Input((4,))
    layer = keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(0.5))
    classifier = keras.Model(inputs, layer(inputs))
    weights = classifier.get_weights()
    attack = kr.attacks.PGD(EPSILON, step_size=STEP, steps=STEPS, random_start="none")
    model = kr.models.TRADES(classifier, attack=attack)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    w, b = (p.astype("float64") for p in weights)
    x_adv = np_pgd_ce(w, b, x.astype("float64"), y)
    expected = np_trades(y, x @ w + b, x_adv @ w + b, BETA) + 0.5 * np.sum(w**2)
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)


@pytest.mark.parametrize("method", ["AT", "TRADES"])
def test_activity_regularizer_enters_the_objective_and_its_gradient(method):
    # An `add_loss` term (here a layer's activity regularizer) belongs to the
    # objective on every backend, in `fit` and in `evaluate`, as in a plain
    # keras.Model. Keras clears a layer's losses at each outermost call, so
    # the term is the one of the classifier's last forward pass: f(x*).
    rng = np.random.default_rng(5)
    weights = rng.normal(size=(4, 3))
    bias = rng.normal(size=3) * 0.1
    x = rng.uniform(0.1, 0.9, size=(8, 4)).astype("float32")
    y = rng.integers(0, 3, size=8)
    strength = 0.3
    inputs = keras.Input((4,))
    layer = keras.layers.Dense(3, activity_regularizer=keras.regularizers.L2(strength))
    classifier = keras.Model(inputs, layer(inputs))
    layer.set_weights([weights.astype("float32"), bias.astype("float32")])
    attack = kr.attacks.PGD(EPSILON, step_size=STEP, steps=STEPS, random_start="none")
    model = getattr(kr.models, method)(classifier, attack=attack, eval_attack=attack)
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE))

    x_adv = np_pgd_ce(weights, bias, x.astype("float64"), y)
    objective = objectives(None)[method]
    parameters = [weights.copy(), bias.copy()]
    # What a plain keras.Model adds for this batch: strength * sum(z^2),
    # divided by the batch size since Keras 3.12.
    classifier(x_adv.astype("float32"))
    plain_term = float(to_numpy(keras.ops.sum(classifier.losses)))
    scale = plain_term / (strength * np.sum((x_adv @ weights + bias) ** 2))
    assert np.isclose(scale, 1.0, rtol=1e-4) or np.isclose(scale, 1 / len(x), rtol=1e-4)

    def loss():
        w, b = parameters
        logits_adv = x_adv @ w + b
        activity = scale * strength * np.sum(logits_adv**2)
        return objective(y, x @ w + b, logits_adv) + activity

    expected_loss = loss()
    evaluated = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    np.testing.assert_allclose(evaluated["loss"], expected_loss, rtol=1e-5)

    grad_w, grad_b = numeric_gradient(loss, parameters)
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"][0], expected_loss, rtol=1e-5)
    new_w, new_b = classifier.get_weights()
    np.testing.assert_allclose(new_w, weights - LEARNING_RATE * grad_w, atol=2e-5)
    np.testing.assert_allclose(new_b, bias - LEARNING_RATE * grad_b, atol=2e-5)
