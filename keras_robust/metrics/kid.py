"""Kernel Inception Distance: an unbiased MMD^2 between feature sets (KID).

With the cubic polynomial kernel on d-dimensional features

    k(x, y) = (x . y / d + 1)^3,

and subsets X = {x_1..x_m} (real) and Y = {y_1..y_m} (generated), the
unbiased estimate of the squared maximum mean discrepancy is

    MMD^2_u = 1/(m(m-1)) sum_{i != j} k(x_i, x_j)
            + 1/(m(m-1)) sum_{i != j} k(y_i, y_j)
            - 2/m^2      sum_{i, j}   k(x_i, y_j).

KID is its mean over `num_subsets` random subsets of size m drawn without
replacement from each set (independently per subset), reported with the
standard deviation over subsets, as in Binkowski et al.'s reference code.
Unlike FID, its expectation does not depend on the number of samples; the
subset size only changes the spread. It can be slightly negative when the
two distributions are the same.

Reference: Binkowski et al., "Demystifying MMD GANs" (ICLR 2018).
"""

import numpy as np

from keras_robust.metrics import extraction
from keras_robust.metrics import result
from keras_robust.metrics import statistics
from keras_robust.utils import validation


def polynomial_kernel(x, y):
    """k(x, y) = (x . y / d + 1)^3 for all pairs of rows: (n, d), (m, d) -> (n, m)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x, y):
    """The unbiased MMD^2 estimate with the cubic kernel for two equal-size sets.

    Args:
        x, y: (m, d) float arrays, m >= 2.

    Returns:
        float.
    """
    m = x.shape[0]
    k_xx = polynomial_kernel(x, x)
    k_yy = polynomial_kernel(y, y)
    k_xy = polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def _features(data, name, feature_extractor, batch_size, verbose):
    if isinstance(data, statistics.FeatureStatistics):
        raise TypeError(
            f"`{name}` is a FeatureStatistics, but KID needs the features "
            "themselves (it compares samples, not moments): pass the (n, d) "
            "features or the images."
        )
    parts = [
        f
        for f, _ in extraction.feature_batches(
            data, feature_extractor, batch_size, verbose, name=name
        )
    ]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


def kernel_inception_distance(
    real,
    fake,
    subset_size=1000,
    num_subsets=100,
    seed=0,
    feature_extractor=None,
    batch_size=50,
    verbose="auto",
):
    """KID: unbiased polynomial-kernel MMD^2, averaged over random subsets.

    KID = mean over subsets s of MMD^2_u(X_s, Y_s) with
    k(x, y) = (x . y / d + 1)^3 (see the module docstring); X_s and Y_s are
    `subset_size` samples drawn without replacement from `real` and `fake`.

    `subset_size` must not exceed the size of either set: a ValueError says
    the largest allowed value (we do not clamp silently, since the subset
    size sets the reported standard deviation). Features are held in memory
    (n x d float32); images are extracted in batches first.

    Args:
        real: (n, d) features, (n, h, w, c) images in [0, 1], or an iterable
            of batches of either.
        fake: the same for the generated set (its size may differ).
        subset_size: samples per subset and per set, >= 2. The reference
            value is 1000.
        num_subsets: number of random subsets, >= 1. The reference value
            is 100.
        seed: integer seed of the subset draws (None: not reproducible).
        feature_extractor: Keras model or callable `images -> (batch, d)`;
            None for InceptionV3 pool features.
        batch_size: images per extractor call.
        verbose: 0, 1, 2 or "auto".

    Returns:
        `MeanStd(mean, std)`: KID and its standard deviation over subsets.
        Lower is better; about 0 for the same distribution.

    Example:
    >>> kid, kid_std = kr.metrics.kernel_inception_distance(
    ...     features_real, features_fake, subset_size=500)
    """
    subset_size = validation.positive_integer(subset_size, "subset_size")
    if subset_size < 2:
        raise ValueError(f"`subset_size` must be an integer >= 2, got {subset_size}.")
    num_subsets = validation.positive_integer(num_subsets, "num_subsets")
    if seed is not None:
        seed = validation.non_negative_integer(seed, "seed")
    feature_extractor = extraction.resolve_extractor(feature_extractor)
    x = _features(real, "real", feature_extractor, batch_size, verbose)
    y = _features(fake, "fake", feature_extractor, batch_size, verbose)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"`real` and `fake` must have the same feature dimension; got "
            f"{x.shape[1]} and {y.shape[1]}."
        )
    largest = min(x.shape[0], y.shape[0])
    if subset_size > largest:
        raise ValueError(
            f"`subset_size`={subset_size} exceeds the number of samples (real: "
            f"{x.shape[0]}, fake: {y.shape[0]}); subsets are drawn without "
            f"replacement. Pass `subset_size={largest}` or fewer, or more samples."
        )
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for s in range(num_subsets):
        rows_x = rng.choice(x.shape[0], subset_size, replace=False)
        rows_y = rng.choice(y.shape[0], subset_size, replace=False)
        values[s] = mmd2_unbiased(
            x[rows_x].astype(np.float64), y[rows_y].astype(np.float64)
        )
    return result.MeanStd(float(values.mean()), float(values.std()))
