"""WEAT weights and loss against a numpy transcription of `WEAT_loss.py`."""

import numpy as np
import pytest
from scipy.special import logsumexp

import keras_robust as kr
from tests.helpers import to_numpy
from tests.oracles import np_weat

RNG = np.random.default_rng(5)


def test_weight_values():
    # 1/softplus(5) = 1/5.00672 = 0.19973 (the brief's "0.2007" is a typo).
    energies = np.array([0.0, -5.0, -15.0, 5.0], "float32")
    weights = to_numpy(kr.losses.weat_weights(energies))
    np.testing.assert_allclose(
        weights, [1 / np.log(2), 0.19973, 0.066667, 0.19973], rtol=1e-4
    )
    assert weights[0] == pytest.approx(1.4427, abs=1e-4)


@pytest.mark.parametrize("variant", ["adv", "nat"])
@pytest.mark.parametrize("normalize", [False, True])
def test_weat_loss_matches_reference(variant, normalize):
    y = RNG.integers(0, 10, size=32)
    zn = (RNG.normal(size=(32, 10)) * 4).astype("float32")
    za = (zn + RNG.normal(size=(32, 10)) * 2).astype("float32")
    value = kr.losses.weat_loss(
        y, zn, za, beta=6.0, variant=variant, normalize_weights=normalize
    )
    np.testing.assert_allclose(
        to_numpy(value), np_weat(y, zn, za, 6.0, variant, normalize), rtol=1e-5
    )


def test_weat_nat_with_unit_weights_is_trades():
    # Logits whose marginal energy is 0 give w = 1/ln 2 for every sample.
    y = RNG.integers(0, 4, size=8)
    zn = (RNG.normal(size=(8, 4))).astype("float32")
    zn = zn - logsumexp(zn, axis=-1, keepdims=True)  # E(x) = 0
    za = (zn + RNG.normal(size=(8, 4))).astype("float32")
    weat = to_numpy(kr.losses.weat_loss(y, zn, za, variant="nat"))
    trades = to_numpy(kr.losses.trades_loss(y, zn, za))
    np.testing.assert_allclose(weat, trades / np.log(2), rtol=1e-5)


def test_weat_loss_bad_variant():
    with pytest.raises(ValueError, match="variant"):
        kr.losses.weat_loss([0], [[0.0, 1.0]], [[0.0, 1.0]], variant="both")


def test_weat_loss_finite_for_extreme_logits():
    y = np.array([0, 1])
    zn = np.array([[1e4, -1e4, 0.0], [-1e4, 0.0, 1e4]], "float32")
    assert np.isfinite(to_numpy(kr.losses.weat_loss(y, zn, -zn)))
