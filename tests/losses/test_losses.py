"""Every objective against a direct numpy transcription of the reference code."""

import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import to_numpy
from tests.oracles import np_ce
from tests.oracles import np_kl
from tests.oracles import np_mart
from tests.oracles import np_trades

RNG = np.random.default_rng(0)
B, K = 16, 7


@pytest.fixture
def batch():
    y = RNG.integers(0, K, size=B)
    natural = RNG.normal(size=(B, K)) * 3
    adversarial = natural + RNG.normal(size=(B, K)) * 2
    return y, natural.astype("float32"), adversarial.astype("float32")


@pytest.mark.parametrize("beta", [0.0, 1.0, 6.0])
def test_trades_loss_matches_reference(batch, beta):
    y, zn, za = batch
    value = kr.losses.trades_loss(y, zn, za, beta=beta)
    np.testing.assert_allclose(to_numpy(value), np_trades(y, zn, za, beta), rtol=1e-5)


@pytest.mark.parametrize("beta", [0.0, 5.0, 6.0])
def test_mart_loss_matches_reference(batch, beta):
    y, zn, za = batch
    value = kr.losses.mart_loss(y, zn, za, beta=beta)
    np.testing.assert_allclose(to_numpy(value), np_mart(y, zn, za, beta), rtol=1e-5)


def test_adversarial_cross_entropy_matches_reference(batch):
    y, _, za = batch
    value = kr.losses.adversarial_cross_entropy_loss(y, za)
    np.testing.assert_allclose(to_numpy(value), np_ce(y, za).mean(), rtol=1e-5)


@pytest.mark.parametrize("loss_fn", [kr.losses.trades_loss, kr.losses.mart_loss])
def test_one_hot_labels_equal_integer_labels(batch, loss_fn):
    y, zn, za = batch
    one_hot = np.eye(K, dtype="float32")[y]
    np.testing.assert_allclose(
        to_numpy(loss_fn(one_hot, zn, za)), to_numpy(loss_fn(y, zn, za)), rtol=1e-6
    )
    column = y.reshape(-1, 1)
    np.testing.assert_allclose(
        to_numpy(loss_fn(column, zn, za)), to_numpy(loss_fn(y, zn, za)), rtol=1e-6
    )


def test_sample_weight_is_sum_over_batch_size(batch):
    y, zn, za = batch
    weights = RNG.uniform(0, 2, size=B).astype("float32")
    per_sample = np_ce(y, zn) + 6.0 * np_kl(zn, za)
    value = kr.losses.trades_loss(y, zn, za, beta=6.0, sample_weight=weights)
    np.testing.assert_allclose(
        to_numpy(value), (weights * per_sample).sum() / B, rtol=1e-5
    )


@pytest.mark.parametrize(
    "loss_fn",
    [kr.losses.trades_loss, kr.losses.mart_loss],
)
def test_losses_finite_for_extreme_logits(loss_fn):
    y = np.array([0, 1, 2, 3])
    zn = np.array(
        [[1e4, -1e4, 0, 0], [-1e4, 1e4, 0, 0], [0, 0, 1e4, -1e4], [0, 0, 0, 0]],
        dtype="float32",
    )
    za = -zn
    assert np.isfinite(to_numpy(loss_fn(y, zn, za)))


def test_kl_divergence_is_zero_for_equal_logits(batch):
    _, zn, _ = batch
    np.testing.assert_allclose(to_numpy(kr.losses.kl_divergence(zn, zn)), 0, atol=1e-6)
    np.testing.assert_allclose(
        to_numpy(kr.losses.kl_divergence(zn, zn + 3.0)), 0, atol=1e-5
    )
