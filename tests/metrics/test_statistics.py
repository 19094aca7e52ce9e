"""Streaming FeatureStatistics against np.mean / np.cov of the concatenation."""

import keras
import numpy as np
import pytest

from keras_robust import metrics


def _batches(x, sizes):
    start = 0
    for size in sizes:
        yield x[start : start + size]
        start += size
    assert start == len(x)


def test_streaming_matches_numpy_with_uneven_batches():
    rng = np.random.default_rng(0)
    # A large common offset: a naive sum(x x^T)/n - m m^T would lose digits.
    x = rng.normal(size=(400, 12)) * rng.uniform(0.1, 3.0, size=12) + 1e4
    stats = metrics.FeatureStatistics()
    for batch in _batches(x, [1, 7, 100, 2, 90, 200]):
        stats.update(batch)
    assert stats.count == 400 and stats.dim == 12
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(
        stats.covariance, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9
    )


def test_single_batch_and_float32_tensor_inputs():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 5)).astype("float32")
    stats = metrics.FeatureStatistics.from_features(keras.ops.convert_to_tensor(x))
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(stats.mean, x64.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.covariance, np.cov(x64, rowvar=False), rtol=1e-10)


def test_merge_equals_concatenation_and_empty_batches_are_ignored():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(30, 4)), rng.normal(3.0, 2.0, size=(45, 4))
    merged = metrics.FeatureStatistics().update(a).update(np.zeros((0, 4)))
    merged.merge(metrics.FeatureStatistics.from_features(b))
    both = np.concatenate([a, b])
    assert merged.count == 75
    np.testing.assert_allclose(merged.mean, both.mean(0), rtol=1e-12)
    np.testing.assert_allclose(
        merged.covariance, np.cov(both, rowvar=False), rtol=1e-10
    )


def test_save_and_load_round_trip(tmp_path):
    x = np.random.default_rng(3).normal(size=(20, 3))
    stats = metrics.FeatureStatistics.from_features(x)
    stats.save(tmp_path / "stats.npz")
    loaded = metrics.FeatureStatistics.load(tmp_path / "stats.npz")
    assert loaded.count == 20 and loaded.dim == 3
    np.testing.assert_array_equal(loaded.mean, stats.mean)
    np.testing.assert_array_equal(loaded.covariance, stats.covariance)
    np.savez(tmp_path / "other.npz", mu=np.zeros(3))
    with pytest.raises(ValueError, match="not a FeatureStatistics file"):
        metrics.FeatureStatistics.load(tmp_path / "other.npz")


def test_errors_name_the_argument():
    stats = metrics.FeatureStatistics().update(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="`features` has feature dimension 5"):
        stats.update(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"`features` must have shape \(num_samples"):
        stats.update(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="`features` contains NaN"):
        stats.update(np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match="`dim`"):
        metrics.FeatureStatistics(dim=0)
    with pytest.raises(TypeError, match="`other`"):
        stats.merge(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="no samples"):
        _ = metrics.FeatureStatistics().mean
    with pytest.raises(ValueError, match="at least 2 samples"):
        _ = metrics.FeatureStatistics().update(np.zeros((1, 4))).covariance
