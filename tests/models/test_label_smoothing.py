"""`label_smoothing=` on TRADES, MART and WEAT equals the recipes' formula.

DM-Improves-AT's `SmoothCrossEntropyLoss` is (1 - s) NLL + s mean_k(-log p_k),
so the smoothed loss minus the plain one is s (mean_k(-log p_k) + log p_y)
on the cross-entropy's logits (TRADES: f(x); MART and WEAT-adv: f(x*);
WEAT weighs it by its per-sample weights). Both runs take one step with
learning rate 0 and a deterministic attack, so x* is the same.
"""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import linear_classifier
from tests.oracles import np_softmax

S = 0.1


def smoothing_delta(logits, y):
    log_p = np.log(np_softmax(logits))
    return S * (np.mean(-log_p, axis=-1) + log_p[np.arange(len(y)), y])


def np_pgd(w, b, x, y, steps=2, step=0.04, epsilon=0.1):
    x_adv = x.copy()
    one_hot = np.eye(w.shape[1])[y]
    for _ in range(steps):
        gradient = (np_softmax(x_adv @ w + b) - one_hot) @ w.T
        x_adv = np.clip(
            np.clip(x_adv + step * np.sign(gradient), x - epsilon, x + epsilon), 0, 1
        )
    return x_adv


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(5)
    w, b = rng.normal(size=(4, 3)), rng.normal(size=3) * 0.1
    x = rng.uniform(0.05, 0.95, size=(8, 4))
    return w, b, x, rng.integers(0, 3, size=8)


def logged_loss(method, w, b, x, y, label_smoothing):
    attack = kr.attacks.PGD(0.1, step_size=0.04, steps=2, random_start="none")
    model = getattr(kr.models, method)(
        linear_classifier(w, b), attack=attack, label_smoothing=label_smoothing
    )
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    history = model.fit(
        x.astype("float32"), y, batch_size=8, epochs=1, shuffle=False, verbose=0
    )
    return history.history["loss"][0], model


@pytest.mark.parametrize("method", ["TRADES", "MART", "WEAT"])
def test_smoothed_loss_equals_the_formula(problem, method):
    w, b, x, y = problem
    plain, _ = logged_loss(method, w, b, x, y, 0.0)
    smoothed, model = logged_loss(method, w, b, x, y, S)
    natural, adversarial = x @ w + b, np_pgd(w, b, x, y) @ w + b
    if method == "TRADES":
        delta = np.mean(smoothing_delta(natural, y))
    elif method == "MART":
        delta = np.mean(smoothing_delta(adversarial, y))
    else:
        # WEAT-adv: its weights are 1 / softplus(|E(x)|) of the natural logits.
        energy = -np.log(np.sum(np.exp(natural), axis=-1))
        weights = 1.0 / np.log1p(np.exp(np.abs(energy)))
        delta = np.mean(weights * smoothing_delta(adversarial, y))
    assert abs(delta) > 1e-3
    np.testing.assert_allclose(smoothed - plain, delta, rtol=1e-4, atol=1e-6)
    # Metrics use the true labels; the config keeps the setting.
    assert model.get_config()["label_smoothing"] == S
    assert type(model).from_config(model.get_config()).label_smoothing == S


def test_default_is_off_and_bad_values_are_named(problem):
    w, b, _, _ = problem
    net = linear_classifier(w, b)
    assert kr.models.TRADES(net).label_smoothing == 0.0
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="label_smoothing"):
            kr.models.MART(net, label_smoothing=bad)
