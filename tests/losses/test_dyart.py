"""DyART soft margin, margin weights and loss against numpy transcriptions."""

import numpy as np
import pytest
from scipy.special import logsumexp

import keras_robust as kr
from keras_robust.attacks.boundary import margin_and_gradient
from tests.helpers import linear_classifier
from tests.helpers import to_numpy
from tests.oracles import np_ce

RNG = np.random.default_rng(11)


def np_soft_margin(logits, y, t):
    others = np.where(np.eye(logits.shape[1])[y] > 0, -np.inf, t * logits)
    return logits[np.arange(len(y)), y] - logsumexp(others, axis=1) / t


def np_hard_margin(logits, y):
    others = np.where(np.eye(logits.shape[1])[y] > 0, -np.inf, logits)
    return logits[np.arange(len(y)), y] - others.max(1)


def np_weights(radius, grad_l1, alpha, r0):
    return np.where(radius < r0, np.exp(-alpha * radius), 0.0) / grad_l1


@pytest.mark.parametrize("classes", [2, 3, 10, 100])
@pytest.mark.parametrize("temperature", [0.5, 5.0, 50.0])
def test_soft_margin_is_a_lower_bound_of_the_hard_margin(classes, temperature):
    y = RNG.integers(0, classes, size=256)
    logits = (RNG.normal(size=(256, classes)) * 3).astype("float32")
    logits[:8] = 0.0  # ties: the bound log(K - 1)/t is attained
    soft = to_numpy(kr.losses.soft_margin(logits, y, temperature))
    hard = np_hard_margin(logits.astype("float64"), y)
    gap = np.log(classes - 1) / temperature
    assert np.all(soft <= hard + 1e-5)
    assert np.all(soft >= hard - gap - 1e-5)
    np.testing.assert_allclose(soft[:8], -gap, atol=1e-5)
    np.testing.assert_allclose(
        soft, np_soft_margin(logits.astype("float64"), y, temperature), atol=1e-4
    )


def test_soft_margin_limits_and_label_formats():
    y = RNG.integers(0, 5, size=32)
    logits = (RNG.normal(size=(32, 5)) * 2).astype("float32")
    hard = to_numpy(kr.losses.soft_margin(logits, y, None))
    np.testing.assert_allclose(hard, np_hard_margin(logits, y), atol=1e-6)
    np.testing.assert_allclose(
        to_numpy(kr.losses.soft_margin(logits, y, 1e4)), hard, atol=1e-3
    )
    one_hot = np.eye(5, dtype="float32")[y]
    np.testing.assert_allclose(
        to_numpy(kr.losses.soft_margin(logits, one_hot)),
        to_numpy(kr.losses.soft_margin(logits, y)),
        atol=1e-6,
    )
    # Positive soft margin means correctly classified.
    positive = to_numpy(kr.losses.soft_margin(logits, y)) > 0
    assert np.all(logits[positive].argmax(1) == y[positive])
    # Extreme logits stay finite.
    assert np.all(np.isfinite(to_numpy(kr.losses.soft_margin(logits * 1e4, y, 5.0))))


def test_margin_weights_match_the_implicit_function_formula():
    """w = h'(R) / ||grad_x phi(x^)||_1 on a linear model (closed-form grad)."""
    classes, dim, t, alpha, r0 = 4, 12, 5.0, 3.0, 0.3
    weights = RNG.normal(size=(dim, classes))
    model = linear_classifier(weights, np.zeros(classes))
    x_hat = RNG.uniform(size=(16, dim)).astype("float32")
    y = RNG.integers(0, classes, size=16)
    radius = np.linspace(0.0, 0.5, 16).astype("float32")

    # Closed form: grad phi = W_y - sum_{j != y} softmax_j(t f_{-y}) W_j.
    logits = x_hat.astype("float64") @ weights
    others = np.where(np.eye(classes)[y] > 0, -np.inf, t * logits)
    soft = np.exp(others - logsumexp(others, axis=1, keepdims=True))
    grad = weights[:, y].T - soft @ weights.T
    expected = np_weights(radius, np.abs(grad).sum(1), alpha, r0)

    _, gradient = margin_and_gradient(
        lambda z: kr.losses.soft_margin(model(z), y, t), x_hat
    )
    grad_l1 = np.abs(to_numpy(gradient)).sum(1)
    np.testing.assert_allclose(grad_l1, np.abs(grad).sum(1), rtol=1e-5)
    got = to_numpy(kr.losses.dyart_margin_weights(radius, grad_l1, alpha, r0))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert np.all(got[radius >= r0] == 0.0)
    assert np.all(got[radius < r0] > 0.0)


def test_margin_weights_edge_cases():
    got = to_numpy(
        kr.losses.dyart_margin_weights(
            np.array([0.0, 0.1, 0.1], "float32"),
            np.array([2.0, 0.0, 4.0], "float32"),
            alpha=0.0,
            r0=0.1,
        )
    )
    # alpha = 0: h' is the indicator; zero gradient: weight 0; R = r0: 0.
    np.testing.assert_array_equal(got, [0.5, 0.0, 0.0])


def np_dyart(y, zn, zb, w, lam, t, sample_weight=None):
    per_sample = np_ce(y, zn) - lam * w * np_soft_margin(zb, y, t)
    if sample_weight is not None:
        per_sample = per_sample * sample_weight
    return per_sample.sum() / len(y)  # the FULL batch size


def test_dyart_loss_matches_reference():
    y = RNG.integers(0, 10, size=32)
    zn = (RNG.normal(size=(32, 10)) * 3).astype("float32")
    zb = (zn + RNG.normal(size=(32, 10))).astype("float32")
    w = RNG.uniform(0.0, 0.05, size=32).astype("float32")
    w[::3] = 0.0  # samples without a kept boundary point
    value = kr.losses.dyart_loss(y, zn, zb, w, lam=1000.0, temperature=5.0)
    np.testing.assert_allclose(
        to_numpy(value), np_dyart(y, zn, zb, w, 1000.0, 5.0), rtol=1e-5
    )
    sample_weight = RNG.uniform(0.5, 1.5, size=32).astype("float32")
    weighted = kr.losses.dyart_loss(
        y, zn, zb, w, lam=10.0, temperature=2.0, sample_weight=sample_weight
    )
    np.testing.assert_allclose(
        to_numpy(weighted), np_dyart(y, zn, zb, w, 10.0, 2.0, sample_weight), rtol=1e-5
    )
    # Nothing kept: the loss is the clean cross-entropy, whatever f(x^) is.
    nothing = kr.losses.dyart_loss(y, zn, zb * np.inf, np.zeros(32, "float32"))
    np.testing.assert_allclose(to_numpy(nothing), np_ce(y, zn).mean(), rtol=1e-6)


def test_dyart_loss_gradient_flows_through_phi_only():
    y = RNG.integers(0, 5, size=8)
    zn = RNG.normal(size=(8, 5)).astype("float32")
    zb = RNG.normal(size=(8, 5)).astype("float32")
    w = RNG.uniform(0.0, 1.0, size=8).astype("float32")
    lam, t = 3.0, 5.0

    d_weights = kr.backend.input_gradient(
        lambda v: kr.losses.dyart_loss(y, zn, zb, v, lam=lam, temperature=t), w
    )
    np.testing.assert_array_equal(to_numpy(d_weights), 0.0)
    d_boundary = to_numpy(
        kr.backend.input_gradient(
            lambda z: kr.losses.dyart_loss(y, zn, z, w, lam=lam, temperature=t), zb
        )
    )
    # d/dz [-lam w phi(z) / B]: dphi/dz = e_y - softmax(t z_{-y}).
    others = np.where(np.eye(5)[y] > 0, -np.inf, t * zb.astype("float64"))
    soft = np.exp(others - logsumexp(others, axis=1, keepdims=True))
    expected = -lam * w[:, None] * (np.eye(5)[y] - soft) / len(y)
    np.testing.assert_allclose(d_boundary, expected, atol=1e-6)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: kr.losses.soft_margin(np.zeros((2, 3)), [0, 1], 0.0), "temperature"),
        (lambda: kr.losses.soft_margin(np.zeros((2, 3)), [0, 1], -1.0), "temperature"),
        (lambda: kr.losses.dyart_margin_weights([0.1], [1.0], r0=0.0), "r0"),
        (lambda: kr.losses.dyart_margin_weights([0.1], [1.0], alpha=-1.0), "alpha"),
        (
            lambda: kr.losses.dyart_loss(
                [0], np.zeros((1, 3)), np.zeros((1, 3)), [0.0], lam=-1.0
            ),
            "lam",
        ),
        (
            lambda: kr.losses.dyart_loss(
                [0], np.zeros((1, 3)), np.zeros((1, 3)), [0.0], temperature=0.0
            ),
            "temperature",
        ),
    ],
)
def test_bad_arguments_raise_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
