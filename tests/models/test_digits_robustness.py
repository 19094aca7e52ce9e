"""AT, TRADES and WEAT on real data: `digits`, L-inf epsilon 0.2, 30 epochs.

Measured with this exact setup (SmallCNN 32-64-128, Adam 2e-3, batch 64,
PGD-10 training attack, PGD-50 evaluation), clean / robust test accuracy:

    backend      standard       AT             TRADES
    tensorflow   0.97 / 0.01    0.98 / 0.54    0.96 / 0.56
    jax          0.98 / 0.01    0.94 / 0.52    0.94 / 0.53

The assertions keep wide headroom below those numbers. The same runs check
the energy finding that holds at this scale: the TRADES family keeps the
natural and adversarial energies aligned, PGD-AT does not.
"""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import to_numpy

EPSILON = 0.2
EPOCHS = 30
_TRAINED = {}


def train(method, digits):
    """Trains once per test session; returns (classifier, history dict)."""
    if method in _TRAINED:
        return _TRAINED[method]
    (x, y), _ = digits
    keras.utils.set_random_seed(0)
    net = kr.architectures.SmallCNN(10, (8, 8, 1))
    if method == "standard":
        model = net
        model.compile(
            optimizer=keras.optimizers.Adam(2e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            steps_per_execution=11,
        )
    else:
        model = getattr(kr.models, method)(
            net, epsilon=EPSILON, step_size=EPSILON / 4, steps=10, seed=0
        )
        model.compile(optimizer=keras.optimizers.Adam(2e-3), steps_per_execution=11)
    history = model.fit(x, y, batch_size=64, epochs=EPOCHS, verbose=0)
    _TRAINED[method] = (net, history.history)
    return _TRAINED[method]


def accuracies(net, digits):
    _, (x_test, y_test) = digits
    attack = kr.attacks.PGD(EPSILON, step_size=0.02, steps=50, seed=0)
    x_adv = attack(net, x_test, y_test)
    clean = np.mean(to_numpy(net(x_test)).argmax(1) == y_test)
    robust = np.mean(to_numpy(net(x_adv)).argmax(1) == y_test)
    return clean, robust


@pytest.mark.slow
@pytest.mark.parametrize("method", ["AT", "TRADES", "WEAT"])
def test_adversarial_training_beats_standard_training(digits, method):
    standard_clean, standard_robust = accuracies(train("standard", digits)[0], digits)
    clean, robust = accuracies(train(method, digits)[0], digits)
    print(
        f"\n{method}: clean {clean:.3f} robust {robust:.3f} | "
        f"standard: clean {standard_clean:.3f} robust {standard_robust:.3f}"
    )
    assert standard_clean > 0.9
    assert clean > 0.9
    assert robust > standard_robust + 0.3


@pytest.mark.slow
def test_trades_family_keeps_energies_aligned(digits):
    """|E(x) - E(x*)| at the last epoch: TRADES/WEAT far below PGD-AT."""
    gaps = {}
    for method in ("AT", "TRADES", "WEAT"):
        history = train(method, digits)[1]
        gaps[method] = history["energy_natural"][-1] - history["energy_adversarial"][-1]
    print(f"\nfinal training energy gaps: {gaps}")
    assert abs(gaps["TRADES"]) < 0.2 * abs(gaps["AT"])
    assert abs(gaps["WEAT"]) < 0.2 * abs(gaps["AT"])
    assert abs(gaps["AT"]) > 0.5
