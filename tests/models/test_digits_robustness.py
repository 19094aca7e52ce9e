"""AT, TRADES and WEAT on real data: `digits`, L-inf epsilon 0.2.

Measured with this exact setup (SmallCNN 32-64-128, Adam 2e-3, batch 64,
15 epochs of PGD-5 training, the standard network 30 epochs of plain
cross-entropy; PGD-50 evaluation), clean / robust test accuracy, and the
final training energy gap E(x) - E(x*):

    backend      standard       AT                   TRADES               WEAT
    tensorflow   0.99 / 0.04    0.96 / 0.48 (-1.63)  0.97 / 0.54 (-0.05)  0.94 / 0.54 (-0.01)
    jax          0.98 / 0.01    0.95 / 0.43 (-1.32)  0.97 / 0.54 (-0.05)  0.96 / 0.50 (-0.01)

AT with SiLU: 0.97 / 0.46 (TensorFlow), 0.96 / 0.46 (JAX). (30 epochs of
PGD-10 gave AT 0.54 / 0.52 and TRADES 0.56 / 0.53 robust, at four times
the cost.) The assertions keep headroom below those numbers. The same runs
check the energy finding that holds at this scale: the TRADES family keeps
the natural and adversarial energies aligned, PGD-AT does not.
"""

import keras
import pytest

from tests.digits_training import clean_and_robust_accuracy
from tests.digits_training import train_on_digits


@pytest.mark.slow
@pytest.mark.parametrize("method", ["AT", "TRADES", "WEAT"])
def test_adversarial_training_beats_standard_training(digits, method):
    standard_clean, standard_robust = clean_and_robust_accuracy(
        train_on_digits("standard", digits)[0], digits
    )
    clean, robust = clean_and_robust_accuracy(
        train_on_digits(method, digits)[0], digits
    )
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
        history = train_on_digits(method, digits)[1]
        gaps[method] = history["energy_natural"][-1] - history["energy_adversarial"][-1]
    print(f"\nfinal training energy gaps: {gaps}")
    assert abs(gaps["TRADES"]) < 0.2 * abs(gaps["AT"])
    assert abs(gaps["WEAT"]) < 0.2 * abs(gaps["AT"])
    assert abs(gaps["AT"]) > 0.5


@pytest.mark.slow
def test_smooth_activation_trains_as_robust_as_relu(digits):
    """SAT on digits: the same network and PGD-AT budget with SiLU instead of ReLU.

    The paper's ImageNet gain (+8.8 points) does not carry over to this tiny
    8x8 problem: benchmarks/sat_digits.py measured, over 3 seeds on
    TensorFlow, PGD-50 accuracy 0.527 ± 0.014 (ReLU) and 0.512 ± 0.021
    (SiLU). What holds robustly is that the smooth network trains as well:
    far above standard training and within a few points of ReLU.
    """
    standard_robust = clean_and_robust_accuracy(
        train_on_digits("standard", digits)[0], digits
    )[1]
    relu_clean, relu_robust = clean_and_robust_accuracy(
        train_on_digits("AT", digits)[0], digits
    )
    silu_net = train_on_digits("AT", digits, activation="silu")[0]
    sites = [
        keras.activations.serialize(layer.activation)
        for layer in silu_net.layers
        if isinstance(layer, keras.layers.Activation)
    ]
    assert sites == ["silu"] * 3
    silu_clean, silu_robust = clean_and_robust_accuracy(silu_net, digits)
    print(
        f"\nAT relu: {relu_clean:.3f} / {relu_robust:.3f}, "
        f"AT silu: {silu_clean:.3f} / {silu_robust:.3f}, "
        f"standard robust {standard_robust:.3f}"
    )
    assert silu_clean > 0.9
    assert silu_robust > standard_robust + 0.3
    assert silu_robust > relu_robust - 0.1
