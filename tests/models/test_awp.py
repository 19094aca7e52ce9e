"""`kr.models.AWP`: one step equals the hand-computed AWP update.

The classifier is linear, f(x) = x W + b, the attack deterministic (no
random start), so x* and the weight gradients are computed in numpy: the
ascent direction on W (the only kernel), the perturbation
v = gamma ||W|| g / ||g||, the gradient at (W + v, b), and the SGD update of
the UNPERTURBED (W, b) (csdongxian/AWP `utils_awp.py`).
"""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import FIT_JIT_COMPILE
from tests.helpers import linear_classifier
from tests.models.test_train_step import numeric_gradient
from tests.oracles import np_ce
from tests.oracles import np_kl
from tests.oracles import np_softmax

EPSILON, STEP, STEPS, LEARNING_RATE, BETA, GAMMA = 0.1, 0.04, 3, 0.5, 6.0, 0.2


def np_pgd(weights, bias, x, y):
    """Deterministic L-inf CE-PGD on the linear model."""
    x_adv = x.copy()
    one_hot = np.eye(weights.shape[1])[y]
    for _ in range(STEPS):
        gradient = (np_softmax(x_adv @ weights + bias) - one_hot) @ weights.T
        x_adv = x_adv + STEP * np.sign(gradient)
        x_adv = np.clip(np.clip(x_adv, x - EPSILON, x + EPSILON), 0.0, 1.0)
    return x_adv


def objective(method, w, b, x, x_adv, y):
    natural, adversarial = x @ w + b, x_adv @ w + b
    if method == "AT":
        return np.mean(np_ce(y, adversarial))
    return np.mean(np_ce(y, natural) + BETA * np_kl(natural, adversarial))


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(3)
    weights = rng.normal(size=(4, 3))
    bias = rng.normal(size=3) * 0.1
    x = rng.uniform(0.05, 0.95, size=(8, 4))
    y = rng.integers(0, 3, size=8)
    return weights, bias, x, y


def make(method, weights, bias, awp, jit_compile="auto"):
    classifier = linear_classifier(weights, bias)
    # CE-PGD for both: without a random start, TRADES' KL has a zero
    # input gradient at x* = x.
    attack = kr.attacks.PGD(EPSILON, step_size=STEP, steps=STEPS, random_start="none")
    model = getattr(kr.models, method)(classifier, attack=attack, awp=awp)
    model.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE), jit_compile=jit_compile
    )
    return model, classifier


@pytest.mark.parametrize("method", ["AT", "TRADES"])
def test_one_step_equals_hand_computation(problem, method):
    weights, bias, x, y = problem
    x_adv = np_pgd(weights, bias, x, y)

    def gradient_at(w, b):
        parameters = [w.copy(), b.copy()]
        return numeric_gradient(
            lambda: objective(method, *parameters, x, x_adv, y), parameters
        )

    ascent_w, _ = gradient_at(weights, bias)
    perturbation = GAMMA * np.linalg.norm(weights) * ascent_w / np.linalg.norm(ascent_w)
    grad_w, grad_b = gradient_at(weights + perturbation, bias)  # bias not perturbed
    expected_w = weights - LEARNING_RATE * grad_w
    expected_b = bias - LEARNING_RATE * grad_b
    assert (
        np.abs(
            expected_w - (weights - LEARNING_RATE * gradient_at(weights, bias)[0])
        ).max()
        > 1e-3
    )

    jit = FIT_JIT_COMPILE if method == "TRADES" else "auto"
    model, classifier = make(method, weights, bias, kr.models.AWP(gamma=GAMMA), jit)
    history = model.fit(
        x.astype("float32"), y, batch_size=8, epochs=1, shuffle=False, verbose=0
    )
    new_w, new_b = classifier.get_weights()
    np.testing.assert_allclose(new_w, expected_w, atol=3e-5)
    np.testing.assert_allclose(new_b, expected_b, atol=3e-5)
    # The logged loss is the objective at the perturbed weights.
    np.testing.assert_allclose(
        history.history["loss"][0],
        objective(method, weights + perturbation, bias, x, x_adv, y),
        rtol=1e-4,
    )


def test_warmup_epochs_train_as_the_plain_method(problem):
    weights, bias, x, y = problem
    x = x.astype("float32")
    plain, plain_net = make("TRADES", weights, bias, None)
    warm, warm_net = make(
        "TRADES", weights, bias, kr.models.AWP(GAMMA, warmup_epochs=1)
    )
    late, late_net = make(
        "TRADES", weights, bias, kr.models.AWP(GAMMA, warmup_epochs=1)
    )
    for model in (plain, warm):
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for got, want in zip(warm_net.get_weights(), plain_net.get_weights()):
        np.testing.assert_allclose(got, want, atol=1e-6)
    # From epoch `warmup_epochs` on, the perturbation is applied.
    late.fit(x, y, batch_size=4, epochs=2, initial_epoch=1, shuffle=False, verbose=0)
    assert float(keras.ops.convert_to_numpy(late.awp_epoch)) == 1.0
    assert np.abs(late_net.get_weights()[0] - plain_net.get_weights()[0]).max() > 1e-4


def test_ascent_leaves_batchnorm_statistics_alone(problem):
    # gamma 0: the ascent runs but perturbs nothing, so weights and moving
    # statistics must equal the plain method's.
    _, _, x, y = problem
    x = x.astype("float32")

    def net():
        keras.utils.set_random_seed(1)
        return keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(5),
                keras.layers.BatchNormalization(momentum=0.5),
                keras.layers.Dense(3),
            ]
        )

    results = []
    for awp in (None, kr.models.AWP(gamma=0.0)):
        classifier = net()
        model = kr.models.TRADES(
            classifier, epsilon=0.1, step_size=0.05, steps=2, seed=0, awp=awp
        )
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        results.append(classifier.get_weights())
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_config_round_trip_and_saving(problem, tmp_path):
    weights, bias, x, y = problem
    model, _ = make("AT", weights, bias, kr.models.AWP(gamma=0.01, warmup_epochs=3))
    model.fit(x.astype("float32"), y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "awp.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.awp, kr.models.AWP)
    assert loaded.awp.get_config() == {"gamma": 0.01, "warmup_epochs": 3}


def test_bad_arguments(problem):
    weights, bias, _, _ = problem
    with pytest.raises(ValueError, match="gamma"):
        kr.models.AWP(gamma=-0.1)
    with pytest.raises((TypeError, ValueError), match="warmup_epochs"):
        kr.models.AWP(warmup_epochs=-1)
    with pytest.raises(TypeError, match="awp"):
        kr.models.TRADES(linear_classifier(weights, bias), awp=0.005)
    with pytest.raises(ValueError, match="`awp` is not available for DyART"):
        kr.models.DyART(linear_classifier(weights, bias), awp=kr.models.AWP())
