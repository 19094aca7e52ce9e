"""KID against the unbiased MMD^2 estimator written out with loops."""

import numpy as np
import pytest

from keras_robust import metrics


def _kernel(u, v):
    return (np.dot(u, v) / len(u) + 1.0) ** 3


def _reference_mmd2(x, y):
    m = len(x)
    xx = sum(_kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(_kernel(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(_kernel(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def test_one_full_subset_matches_the_direct_formula():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 5)), rng.normal(0.4, 1.2, size=(30, 5))
    mean, std = metrics.kernel_inception_distance(x, y, subset_size=30, num_subsets=1)
    assert mean == pytest.approx(_reference_mmd2(x, y), rel=1e-10)
    assert std == 0.0


def test_same_distribution_is_near_zero_and_a_shift_is_clearly_positive():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(600, 16))
    same = rng.normal(size=(500, 16))
    shifted = rng.normal(size=(500, 16)) + 0.5
    kid_same = metrics.kernel_inception_distance(real, same, 200, 20)
    kid_shift = metrics.kernel_inception_distance(real, shifted, 200, 20)
    assert abs(kid_same.mean) < 3 * kid_same.std + 1e-3
    assert kid_shift.mean > 10 * max(abs(kid_same.mean), kid_same.std)
    assert kid_shift.mean > 0.05


def test_seed_makes_the_subsets_reproducible():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(80, 4)), rng.normal(size=(70, 4))
    first = metrics.kernel_inception_distance(x, y, 20, 5, seed=3)
    assert first == metrics.kernel_inception_distance(x, y, 20, 5, seed=3)
    assert first != metrics.kernel_inception_distance(x, y, 20, 5, seed=4)
    assert first.std > 0


def test_errors_name_the_argument():
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match=r"`subset_size`=11 exceeds.*subset_size=10"):
        metrics.kernel_inception_distance(x, np.zeros((12, 3)), subset_size=11)
    with pytest.raises(ValueError, match="`subset_size` must be an integer >= 2"):
        metrics.kernel_inception_distance(x, x, subset_size=1)
    with pytest.raises(ValueError, match="`num_subsets`"):
        metrics.kernel_inception_distance(x, x, subset_size=5, num_subsets=0)
    with pytest.raises(TypeError, match="`seed`"):
        metrics.kernel_inception_distance(x, x, subset_size=5, seed=1.5)
    with pytest.raises(ValueError, match="same feature dimension"):
        metrics.kernel_inception_distance(x, np.zeros((10, 4)), subset_size=5)
    with pytest.raises(TypeError, match="`real` is a FeatureStatistics"):
        metrics.kernel_inception_distance(
            metrics.FeatureStatistics.from_features(x), x, subset_size=5
        )
