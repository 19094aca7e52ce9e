"""Streaming first and second moments of features, for the Frechet distance.

`FeatureStatistics` keeps the count n, the mean and the centred scatter
matrix M = sum_i (x_i - mean)(x_i - mean)^T in float64. A batch B with count
n_B, mean m_B and centred scatter M_B is merged with Chan et al.'s update

    delta = m_B - m
    m'    = m + delta * n_B / (n + n_B)
    M'    = M + M_B + delta delta^T * n n_B / (n + n_B)

which stays accurate when the features have a large mean (no catastrophic
cancellation as in sum(x x^T) / n - m m^T). The unbiased covariance is
M / (n - 1). Memory is one batch of features plus one d x d matrix, whatever
the number of samples.

Reference: Chan, Golub and LeVeque, "Updating formulae and a pairwise
algorithm for computing sample variances" (1979).
"""

import os

import keras
import numpy as np


def as_feature_matrix(features, name="features"):
    """A concrete (n, d) float64 numpy array of finite features.

    Args:
        features: array-like or backend tensor of shape (n, d).
        name: argument name used in error messages.

    Returns:
        The features as a float64 numpy array.
    """
    try:
        array = np.asarray(keras.ops.convert_to_numpy(features))
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"`{name}` must be a numeric array of shape (num_samples, "
            f"feature_dim); could not convert a {type(features).__name__}: {error}"
        ) from error
    if array.ndim != 2:
        raise ValueError(
            f"`{name}` must have shape (num_samples, feature_dim); got shape "
            f"{array.shape}."
        )
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(f"`{name}` must be numeric, got dtype {array.dtype}.")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` contains NaN or Inf values.")
    return array


class FeatureStatistics:
    """Streaming mean and covariance of feature vectors (float64).

    Feed batches with `update`; read `mean` and `covariance` at any time. The
    result equals `np.mean(x, 0)` and `np.cov(x, rowvar=False)` of the
    concatenated batches up to float64 rounding, whatever the batch sizes.

    mean       = (1 / n) sum_i x_i
    covariance = (1 / (n - 1)) sum_i (x_i - mean)(x_i - mean)^T

    Batches are merged with Chan et al.'s pairwise update of the mean and the
    centred scatter matrix (see the module docstring), so no raw second
    moment sum(x x^T) is ever formed.

    Args:
        dim: optional feature dimension d. When given, every batch must have
            d columns; when None, the first batch fixes it.

    Example:
    >>> stats = kr.metrics.FeatureStatistics()
    >>> for batch in batches:            # (batch, d) features
    ...     stats.update(batch)
    >>> stats.count, stats.mean.shape, stats.covariance.shape
    """

    def __init__(self, dim=None):
        if dim is not None and (
            isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1
        ):
            raise ValueError(f"`dim` must be an integer >= 1 or None, got {dim!r}.")
        self.count = 0
        self._dim = None if dim is None else int(dim)
        self._mean = None
        self._scatter = None

    @property
    def dim(self):
        """The feature dimension d, or None before the first batch."""
        return self._dim

    @classmethod
    def from_features(cls, features):
        """Statistics of a single (n, d) array of features."""
        return cls().update(features)

    def update(self, features):
        """Adds a batch of features.

        Args:
            features: (batch, d) array or tensor. An empty batch is ignored.

        Returns:
            self, so calls can be chained.
        """
        x = as_feature_matrix(features, "features")
        self._check_dim(x.shape[1], "features")
        if x.shape[0] == 0:
            return self
        batch_mean = x.mean(axis=0)
        centred = x - batch_mean
        self._merge(x.shape[0], batch_mean, centred.T @ centred)
        return self

    def merge(self, other):
        """Adds the samples summarised by another `FeatureStatistics`.

        Useful to combine statistics computed on shards in parallel.

        Args:
            other: a `FeatureStatistics` with the same `dim`.

        Returns:
            self.
        """
        if not isinstance(other, FeatureStatistics):
            raise TypeError(
                f"`other` must be a FeatureStatistics, got {type(other).__name__}."
            )
        if other.count == 0:
            return self
        self._check_dim(other.dim, "other")
        self._merge(other.count, other._mean, other._scatter)
        return self

    @property
    def mean(self):
        """(d,) float64 mean of the features seen so far."""
        if self.count < 1:
            raise ValueError("FeatureStatistics has no samples yet: call `update`.")
        return self._mean.copy()

    @property
    def covariance(self):
        """(d, d) float64 unbiased covariance, scatter / (count - 1)."""
        if self.count < 2:
            raise ValueError(
                "The covariance needs at least 2 samples; FeatureStatistics has "
                f"{self.count}."
            )
        return self._scatter / (self.count - 1)

    def save(self, path):
        """Writes count, mean and scatter to a `.npz` file.

        Reference statistics of a real data set can be computed once and
        reloaded with `FeatureStatistics.load` (and still be merged further).
        """
        if self.count < 1:
            raise ValueError("FeatureStatistics has no samples yet: nothing to save.")
        np.savez(
            os.fspath(path),
            count=np.int64(self.count),
            mean=self._mean,
            scatter=self._scatter,
        )

    @classmethod
    def load(cls, path):
        """Reads statistics written by `save`."""
        with np.load(os.fspath(path)) as data:
            missing = {"count", "mean", "scatter"} - set(data.files)
            if missing:
                raise ValueError(
                    f"{os.fspath(path)!r} is not a FeatureStatistics file: it lacks "
                    f"{sorted(missing)}."
                )
            stats = cls(dim=data["mean"].shape[0])
            stats._merge(int(data["count"]), data["mean"], data["scatter"])
        return stats

    def __repr__(self):
        return f"FeatureStatistics(count={self.count}, dim={self.dim})"

    def _check_dim(self, dim, name):
        if self._dim is None:
            self._dim = int(dim)
        elif dim != self._dim:
            raise ValueError(
                f"`{name}` has feature dimension {dim}, but this FeatureStatistics "
                f"holds features of dimension {self._dim}."
            )

    def _merge(self, count, mean, scatter):
        mean = np.asarray(mean, dtype=np.float64)
        scatter = np.asarray(scatter, dtype=np.float64)
        if self.count == 0:
            self.count = int(count)
            self._mean = mean.copy()
            self._scatter = scatter.copy()
            return
        total = self.count + count
        delta = mean - self._mean
        self._mean = self._mean + delta * (count / total)
        self._scatter = (
            self._scatter
            + scatter
            + np.outer(delta, delta) * (self.count * count / total)
        )
        self.count = total
