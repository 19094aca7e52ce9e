"""`kr.losses.consistency_loss` and `consistency_weight` on the methods.

The formula is the reference's `_jensen_shannon_div` (alinlab/
consistency-adversarial `training/__init__.py`), transcribed in float64.
"""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import linear_classifier
from tests.oracles import np_softmax
from tests.oracles import np_trades


def np_js(z1, z2, temperature):
    p, q = np_softmax(z1 / temperature), np_softmax(z2 / temperature)
    log_m = np.log(np.maximum(0.5 * (p + q), 1e-8))

    def kl(a):
        return np.sum(
            np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0) - a * log_m, -1
        )

    return np.mean(0.5 * (kl(p) + kl(q)))


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_equals_the_formula(temperature):
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(2, 6, 5)) * 3
    got = float(kr.losses.consistency_loss(z1, z2, temperature))
    np.testing.assert_allclose(got, np_js(z1, z2, temperature), rtol=1e-5)
    assert float(kr.losses.consistency_loss(z2, z1, temperature)) == pytest.approx(
        got, rel=1e-5
    )
    assert float(kr.losses.consistency_loss(z1, z1, temperature)) == pytest.approx(
        0.0, abs=1e-6
    )
    # JS is at most log 2.
    assert got <= np.log(2) + 1e-6


def test_saturated_predictions_stay_finite():
    z1 = np.array([[1e4, 0.0, 0.0]], "float32")
    z2 = np.array([[0.0, 1e4, 0.0]], "float32")
    got = float(kr.losses.consistency_loss(z1, z2, 0.5))
    assert got == pytest.approx(np.log(2), rel=1e-5)


def test_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        kr.losses.consistency_loss(np.zeros((2, 3)), np.zeros((2, 3)), 0.0)


EPSILON, STEP, STEPS, BETA, LAM, T = 0.1, 0.04, 2, 6.0, 2.0, 0.5


def np_pgd(w, b, x, y):
    x_adv = x.copy()
    one_hot = np.eye(w.shape[1])[y]
    for _ in range(STEPS):
        gradient = (np_softmax(x_adv @ w + b) - one_hot) @ w.T
        x_adv = np.clip(
            np.clip(x_adv + STEP * np.sign(gradient), x - EPSILON, x + EPSILON), 0, 1
        )
    return x_adv


def test_trades_loss_with_consistency_equals_the_formula():
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(4, 3)), rng.normal(size=3) * 0.1
    x = rng.uniform(0.05, 0.95, size=(4, 4))
    x = np.concatenate(
        [x, np.clip(x + rng.normal(size=x.shape) * 0.05, 0, 1)]
    )  # two views
    y = np.tile(rng.integers(0, 3, size=4), 2)
    attack = kr.attacks.PGD(EPSILON, step_size=STEP, steps=STEPS, random_start="none")
    model = kr.models.TRADES(
        linear_classifier(w, b),
        attack=attack,
        eval_attack=attack,
        consistency_weight=LAM,
        consistency_temperature=T,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    history = model.fit(
        x.astype("float32"), y, batch_size=8, epochs=1, shuffle=False, verbose=0
    )
    x_adv = np_pgd(w, b, x, y)
    adversarial = x_adv @ w + b
    expected = np_trades(y, x @ w + b, adversarial, BETA) + LAM * np_js(
        adversarial[:4], adversarial[4:], T
    )
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)
    # Evaluation data is not paired: evaluate reports the method's loss only.
    evaluated = model.evaluate(
        x.astype("float32"), y, batch_size=8, verbose=0, return_dict=True
    )
    np.testing.assert_allclose(
        evaluated["loss"], np_trades(y, x @ w + b, adversarial, BETA), rtol=1e-5
    )


@pytest.mark.parametrize("method", ["AT", "MART"])
def test_consistency_changes_the_update(method):
    rng = np.random.default_rng(2)
    w, b = rng.normal(size=(4, 3)), rng.normal(size=3) * 0.1
    x = rng.uniform(0.05, 0.95, size=(8, 4)).astype("float32")
    y = np.tile(rng.integers(0, 3, size=4), 2)
    results = []
    for weight in (0.0, 1.0):
        net = linear_classifier(w, b)
        model = getattr(kr.models, method)(
            net, epsilon=0.1, step_size=0.05, steps=1, seed=0, consistency_weight=weight
        )
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        results.append(net.get_weights()[0])
    assert np.abs(results[0] - results[1]).max() > 1e-4


def test_config_and_bad_arguments():
    net = linear_classifier(np.zeros((4, 3)), np.zeros(3))
    model = kr.models.WEAT(net, consistency_weight=1.5, consistency_temperature=0.25)
    config = model.get_config()
    assert (
        config["consistency_weight"] == 1.5
        and config["consistency_temperature"] == 0.25
    )
    clone = kr.models.WEAT.from_config(config)
    assert clone.consistency_weight == 1.5 and clone.consistency_temperature == 0.25
    with pytest.raises(ValueError, match="consistency_weight"):
        kr.models.TRADES(net, consistency_weight=-1.0)
    with pytest.raises(ValueError, match="consistency_temperature"):
        kr.models.TRADES(net, consistency_weight=1.0, consistency_temperature=0.0)
    with pytest.raises(
        ValueError, match="`consistency_weight` is not available for DyART"
    ):
        kr.models.DyART(net, consistency_weight=1.0)
