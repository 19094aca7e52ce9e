"""FID against an independent scipy computation of the formula."""

import numpy as np
import pytest
from scipy import linalg

from keras_robust import metrics


def _reference_fid(a, b):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)), written with scipy."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s1 @ s2)
    assert np.abs(root.imag).max() < 1e-6 * np.abs(root.real).max()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * root.real))


def _gaussian(rng, n, d, shift, scale):
    mixing = rng.normal(size=(d, d)) * scale / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mixing + shift


@pytest.mark.parametrize("d", [16, 64])
def test_matches_scipy_sqrtm_formula(d):
    rng = np.random.default_rng(d)
    a = _gaussian(rng, 500, d, 0.0, 1.0)
    b = _gaussian(rng, 500, d, rng.normal(0.3, 0.2, size=d), 1.7)
    expected = _reference_fid(a, b)
    assert expected > 1.0
    np.testing.assert_allclose(metrics.frechet_distance(a, b), expected, rtol=1e-4)
    np.testing.assert_allclose(metrics.frechet_distance(b, a), expected, rtol=1e-4)


def test_a_set_against_itself_is_zero():
    rng = np.random.default_rng(0)
    a = _gaussian(rng, 300, 32, 5.0, 3.0)
    scale = np.trace(np.cov(a, rowvar=False))
    assert abs(metrics.frechet_distance(a, a)) < 1e-6 * scale


def test_closed_form_for_diagonal_gaussians():
    # Commuting covariances: Tr(...) = sum (sqrt(a_i) - sqrt(b_i))^2.
    var1, var2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    expected = 5.0 + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    value = metrics.frechet_distance_from_statistics(
        mu1, np.diag(var1), mu2, np.diag(var2)
    )
    assert value == pytest.approx(expected, rel=1e-12)


def test_singular_covariances_fewer_samples_than_dimensions():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(10, 40)), rng.normal(size=(12, 40)) + 0.5
    value = metrics.frechet_distance(a, b)
    assert np.isfinite(value) and value > 0
    assert metrics.frechet_distance(a, a) < 1e-8 * np.trace(np.cov(a, rowvar=False))


def test_statistics_and_arrays_give_the_same_value():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(80, 6)), rng.normal(1.0, 2.0, size=(90, 6))
    stats_a = metrics.FeatureStatistics.from_features(a)
    direct = metrics.frechet_distance(a, b)
    assert metrics.frechet_distance(stats_a, b) == pytest.approx(direct, rel=1e-12)
    from_moments = metrics.frechet_distance_from_statistics(
        a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    )
    assert from_moments == pytest.approx(direct, rel=1e-10)


def test_errors_name_the_argument():
    a = np.zeros((5, 3))
    with pytest.raises(ValueError, match="`real` and `fake` must have the same"):
        metrics.frechet_distance(a, np.zeros((5, 4)))
    with pytest.raises(ValueError, match="`real` must be features"):
        metrics.frechet_distance(np.zeros((5, 3, 2)), a)
    with pytest.raises(ValueError, match="`fake` has 1 sample"):
        metrics.frechet_distance(a, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="`real` is empty"):
        metrics.frechet_distance(np.zeros((0, 3)), a)
    with pytest.raises(ValueError, match="`fake` contains NaN"):
        metrics.frechet_distance(a, np.full((5, 3), np.inf))
    with pytest.raises(ValueError, match="`mu1` and `mu2`"):
        metrics.frechet_distance_from_statistics(
            np.zeros(2), np.eye(2), np.zeros(3), np.eye(3)
        )
    with pytest.raises(ValueError, match="`sigma2` must be a \\(2, 2\\)"):
        metrics.frechet_distance_from_statistics(
            np.zeros(2), np.eye(2), np.zeros(2), np.eye(3)
        )
    with pytest.raises(ValueError, match="`mu1` must be a \\(d,\\) mean"):
        metrics.frechet_distance_from_statistics(
            np.zeros((2, 1)), np.eye(2), np.zeros(2), np.eye(2)
        )
    with pytest.raises(TypeError, match="`feature_extractor` must be"):
        metrics.frechet_distance(a, a, feature_extractor="inception")
