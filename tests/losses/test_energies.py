"""Energies against their definitions, and the TRADES decomposition identity."""

import numpy as np
from scipy.special import logsumexp

import keras_robust as kr
from tests.helpers import to_numpy
from tests.oracles import np_kl

RNG = np.random.default_rng(1)


def test_marginal_energy_is_negative_logsumexp():
    logits = RNG.normal(size=(32, 10)).astype("float32") * 4
    np.testing.assert_allclose(
        to_numpy(kr.energy.marginal_energy(logits)),
        -logsumexp(logits, axis=-1),
        rtol=1e-5,
    )


def test_joint_energy_is_negative_label_logit():
    logits = RNG.normal(size=(32, 10)).astype("float32")
    y = RNG.integers(0, 10, size=32)
    expected = -logits[np.arange(32), y]
    np.testing.assert_allclose(to_numpy(kr.energy.joint_energy(logits, y)), expected)
    one_hot = np.eye(10, dtype="float32")[y]
    np.testing.assert_allclose(
        to_numpy(kr.energy.joint_energy(logits, one_hot)), expected
    )


def test_cross_entropy_is_joint_minus_marginal_energy():
    logits = RNG.normal(size=(32, 10)).astype("float32") * 3
    y = RNG.integers(0, 10, size=32)
    difference = kr.energy.joint_energy(logits, y) - kr.energy.marginal_energy(logits)
    np.testing.assert_allclose(
        to_numpy(difference), to_numpy(kr.losses.cross_entropy(y, logits)), rtol=1e-5
    )


def test_trades_decomposition_sums_to_kl():
    natural = RNG.normal(size=(64, 10)).astype("float32") * 3
    adversarial = (natural + RNG.normal(size=(64, 10)) * 2).astype("float32")
    conditional, marginal = kr.energy.trades_decomposition(natural, adversarial)
    conditional, marginal = to_numpy(conditional), to_numpy(marginal)
    np.testing.assert_allclose(
        conditional + marginal, np_kl(natural, adversarial), rtol=1e-4, atol=1e-5
    )
    # A difference of two float32 logsumexps of size up to ~16: its absolute
    # resolution is ~16 * 1.2e-7 = 2e-6, whatever its own size.
    np.testing.assert_allclose(
        marginal,
        logsumexp(adversarial, axis=-1) - logsumexp(natural, axis=-1),
        rtol=1e-5,
        atol=2e-6,
    )
    # Shifting all adversarial logits by c changes E(x*) by -c, not the KL.
    shifted_conditional, shifted_marginal = kr.energy.trades_decomposition(
        natural, adversarial + 2.0
    )
    np.testing.assert_allclose(
        to_numpy(shifted_marginal), marginal + 2.0, rtol=1e-5, atol=2e-6
    )
    np.testing.assert_allclose(
        to_numpy(shifted_conditional), conditional - 2.0, rtol=1e-4, atol=1e-5
    )
