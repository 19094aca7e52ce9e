"""SCORE objective and distances against a direct numpy transcription."""

import math

import numpy as np
import pytest
from keras import ops

import keras_robust as kr
from tests.helpers import to_numpy
from tests.oracles import np_distance
from tests.oracles import np_score
from tests.oracles import np_softmax

RNG = np.random.default_rng(11)
B, K = 16, 7
LP_DISTANCES = ["l1", "l2", "l4", "linf", 1.5]
DISTANCES = list(kr.losses.SCORE_DISTANCES) + LP_DISTANCES


@pytest.fixture
def batch():
    y = RNG.integers(0, K, size=B)
    natural = RNG.normal(size=(B, K)) * 2
    adversarial = natural + RNG.normal(size=(B, K)) * 1.5
    return y, natural.astype("float32"), adversarial.astype("float32")


def gradients(y, zn, za, **kwargs):
    """Gradients of score_loss with respect to both logits."""
    zn, za = ops.convert_to_tensor(zn), ops.convert_to_tensor(za)
    natural = kr.backend.input_gradient(
        lambda z: kr.losses.score_loss(y, z, za, **kwargs), zn
    )
    adversarial = kr.backend.input_gradient(
        lambda z: kr.losses.score_loss(y, zn, z, **kwargs), za
    )
    return to_numpy(natural), to_numpy(adversarial)


# ---- values ------------------------------------------------------------------


OPTIONS = [
    {},
    {"label_smoothing": 0.1},
    {"clip_value": 0.05, "beta": 4.0},
    {"label_smoothing": 0.2, "clip_value": 0.02, "beta": 0.5},
]


@pytest.mark.parametrize("distance", DISTANCES)
def test_score_loss_matches_numpy(batch, distance):
    y, zn, za = batch
    for options in OPTIONS:
        value = kr.losses.score_loss(y, zn, za, distance=distance, **options)
        expected = np_score(y, zn, za, distance=distance, **options)
        np.testing.assert_allclose(to_numpy(value), expected, rtol=2e-5)


@pytest.mark.parametrize("distance", ["se", "kl", "sqrt_js", "l2"])
def test_sample_weight_is_sum_over_batch_size(batch, distance):
    y, zn, za = batch
    weights = RNG.uniform(0, 2, size=B).astype("float32")
    value = kr.losses.score_loss(
        y, zn, za, distance=distance, clip_value=0.01, sample_weight=weights
    )
    expected = np_score(y, zn, za, distance=distance, clip_value=0.01, w=weights)
    np.testing.assert_allclose(to_numpy(value), expected, rtol=2e-5)


def test_defaults_are_squared_error_beta_3(batch):
    y, zn, za = batch
    np.testing.assert_allclose(
        to_numpy(kr.losses.score_loss(y, zn, za)),
        np_score(y, zn, za, beta=3.0, distance="se"),
        rtol=2e-5,
    )


@pytest.mark.parametrize("distance", ["se", "js", "reverse_sqrt_kl", "l4"])
def test_one_hot_and_integer_labels_agree(batch, distance):
    y, zn, za = batch
    kwargs = {"distance": distance, "label_smoothing": 0.1}
    integer = to_numpy(kr.losses.score_loss(y, zn, za, **kwargs))
    one_hot = np.eye(K, dtype="float32")[y]
    np.testing.assert_allclose(
        to_numpy(kr.losses.score_loss(one_hot, zn, za, **kwargs)), integer, rtol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(kr.losses.score_loss(y.reshape(-1, 1), zn, za, **kwargs)),
        integer,
        rtol=1e-6,
    )


def test_label_smoothing_target_of_the_reference():
    # beta = 0 and uniform predictions: the loss is ||1/K - y~||^2 with
    # y~ = 1 - s on the true class and s / (K - 1) elsewhere.
    s, classes = 0.3, 4
    zeros = np.zeros((1, classes), "float32")
    value = to_numpy(
        kr.losses.score_loss([2], zeros, zeros, beta=0.0, label_smoothing=s)
    )
    target = np.full(classes, s / (classes - 1))
    target[2] = 1 - s
    np.testing.assert_allclose(value, ((0.25 - target) ** 2).sum(), rtol=1e-6)


def test_soft_labels_are_smoothed_linearly(batch):
    y, zn, za = batch
    soft = RNG.dirichlet(np.ones(K), size=B).astype("float32")
    s = 0.1
    smoothed = (1 - K * s / (K - 1)) * soft + s / (K - 1)
    expected = ((np_softmax(zn.astype("float64")) - smoothed) ** 2).sum(-1).mean()
    value = kr.losses.score_loss(soft, zn, za, beta=0.0, label_smoothing=s)
    np.testing.assert_allclose(to_numpy(value), expected, rtol=1e-5)


def test_clip_value_removes_small_distances(batch):
    y, zn, _ = batch
    near = zn + 1e-3
    clipped = kr.losses.score_loss(y, zn, near, beta=5.0, clip_value=0.01)
    natural_only = kr.losses.score_loss(y, zn, near, beta=0.0)
    np.testing.assert_allclose(to_numpy(clipped), to_numpy(natural_only), rtol=1e-6)


def test_score_loss_compiles(batch):
    y, zn, za = batch

    def loss(a, b):
        return kr.losses.score_loss(
            y, a, b, distance="sqrt_js", clip_value=0.01, label_smoothing=0.1
        )

    compiled = kr.backend.compile_function(loss, jit_compile=True)
    np.testing.assert_allclose(
        to_numpy(compiled(ops.convert_to_tensor(zn), ops.convert_to_tensor(za))),
        to_numpy(loss(zn, za)),
        rtol=1e-5,
    )


# ---- the distances on their own ---------------------------------------------


@pytest.mark.parametrize("distance", DISTANCES)
def test_probability_distance_matches_numpy(distance):
    p = RNG.dirichlet(np.ones(K), size=B)
    q = RNG.dirichlet(np.ones(K), size=B)
    value = kr.losses.probability_distance(
        p.astype("float32"), q.astype("float32"), distance
    )
    assert to_numpy(value).shape == (B,)
    np.testing.assert_allclose(
        to_numpy(value), np_distance(p, q, distance), rtol=1e-4, atol=1e-6
    )


def test_distance_directions_and_identities(batch):
    _, zn, za = batch
    p, q = np_softmax(zn), np_softmax(za)

    def d(a, b, name):
        return to_numpy(kr.losses.probability_distance(a, b, name))

    # "kl" is KL(p || q) with p the first (natural) argument: TRADES' direction.
    np.testing.assert_allclose(
        d(p, q, "kl"), to_numpy(kr.losses.kl_divergence(zn, za)), rtol=1e-4
    )
    np.testing.assert_allclose(d(p, q, "reverse_sqrt_kl"), d(q, p, "sqrt_kl"))
    np.testing.assert_allclose(d(p, q, "js"), d(q, p, "js"), rtol=1e-5)
    assert np.all(d(p, q, "js") <= math.log(2) + 1e-6)
    np.testing.assert_allclose(d(p, q, "se"), d(p, q, "l2") ** 2, rtol=1e-5)
    np.testing.assert_allclose(d(p, q, "l2"), d(p, q, 2.0), rtol=1e-6)
    for name in DISTANCES:
        np.testing.assert_allclose(d(p, p, name), 0.0, atol=1e-6)


def test_probability_distance_finite_with_zero_probabilities():
    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], "float32")
    q = np.array([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]], "float32")
    for name in DISTANCES:
        assert np.all(np.isfinite(to_numpy(kr.losses.probability_distance(p, q, name))))


def test_distance_names():
    names = [("L2", "l2"), (2, "l2"), (2.0, "l2"), ("l2.0", "l2"), (1.5, "l1.5")]
    names += [(math.inf, "linf"), ("LINF", "linf"), (" JS ", "js"), ("l10", "l10")]
    for distance, name in names:
        assert kr.losses.score.canonical_distance(distance) == name


# ---- stability ---------------------------------------------------------------


@pytest.mark.parametrize("distance", DISTANCES)
def test_extreme_logits_give_finite_values_and_gradients(distance):
    y = np.array([0, 1, 2, 3])
    zn = np.array(
        [[1e4, -1e4, 0, 0], [-1e4, 1e4, 0, 0], [0, 0, 1e4, -1e4], [0, 0, 0, 0]],
        "float32",
    )
    for za in (-zn, zn, zn[::-1].copy()):
        kwargs = {"distance": distance, "label_smoothing": 0.1}
        assert np.isfinite(to_numpy(kr.losses.score_loss(y, zn, za, **kwargs)))
        for gradient in gradients(y, zn, za, **kwargs):
            assert np.all(np.isfinite(gradient))


@pytest.mark.parametrize("distance", DISTANCES)
def test_gradient_at_identical_predictions_is_the_natural_term(batch, distance):
    # D(p, p) = 0 is a minimum: the robust term adds no gradient, and the
    # square roots (infinite derivative at 0) must not turn it into NaN.
    y, zn, _ = batch
    natural, adversarial = gradients(y, zn, zn, distance=distance, beta=3.0)
    natural_only, _ = gradients(y, zn, zn, distance=distance, beta=0.0)
    assert np.all(np.isfinite(natural)) and np.all(np.isfinite(adversarial))
    np.testing.assert_allclose(natural, natural_only, atol=1e-5)
    np.testing.assert_allclose(adversarial, 0.0, atol=1e-5)


def test_gradient_flows_through_both_predictions(batch):
    y, zn, za = batch
    natural, adversarial = gradients(y, zn, za, beta=3.0)
    natural_only, _ = gradients(y, zn, za, beta=0.0)
    assert np.abs(adversarial).max() > 1e-3
    assert np.abs(natural - natural_only).max() > 1e-3


# ---- bad arguments -----------------------------------------------------------


BAD_ARGUMENTS = [
    ({"distance": "cosine"}, "distance.*'se'.*'js'.*'reverse_sqrt_kl'"),
    ({"distance": "l0.5"}, "distance"),
    ({"distance": 0.5}, "distance"),
    ({"distance": "l"}, "distance"),
    ({"distance": None}, "distance"),
    ({"beta": -1.0}, "beta"),
    ({"clip_value": -0.1}, "clip_value"),
    ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"label_smoothing": -0.1}, "label_smoothing"),
]


def test_bad_arguments(batch):
    y, zn, za = batch
    for kwargs, match in BAD_ARGUMENTS:
        with pytest.raises(ValueError, match=match):
            kr.losses.score_loss(y, zn, za, **kwargs)


def test_probability_distance_bad_name():
    with pytest.raises(ValueError, match="distance"):
        kr.losses.probability_distance([[1.0, 0.0]], [[0.0, 1.0]], "hellinger")
