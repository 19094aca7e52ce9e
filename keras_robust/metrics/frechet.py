"""Frechet distance between Gaussian fits of two feature sets (FID).

With means mu_1, mu_2 and covariances S_1, S_2 of the features of two image
sets, the Frechet (2-Wasserstein) distance between N(mu_1, S_1) and
N(mu_2, S_2) is

    d^2 = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2}).

With InceptionV3 pool features this is the FID of Heusel et al. (2017).

Matrix square root. S_1 S_2 is not symmetric, and `scipy.linalg.sqrtm` of
it can return complex values or fail when the covariances are singular
(fewer samples than dimensions), which is why pytorch-fid adds eps * I and
drops imaginary parts. We use the symmetric form instead: with
A = S_1^{1/2} (from `eigh`, negative rounding eigenvalues clipped to 0),
S_1 S_2 = A (A S_2 A) A^{-1} is similar to the symmetric PSD matrix
A S_2 A, so

    Tr (S_1 S_2)^{1/2} = sum_i sqrt(lambda_i(A S_2 A)),

computed with `eigvalsh`. Every step is real and symmetric, needs no eps
offset, and stays defined for singular covariances.

Reference: Heusel et al., "GANs trained by a two time-scale update rule
converge to a local Nash equilibrium" (NeurIPS 2017); Dowson and Landau,
"The Frechet distance between multivariate normal distributions" (1982).
"""

import numpy as np

from keras_robust.metrics import extraction
from keras_robust.metrics import statistics


def _float64(value, name):
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"`{name}` must be a numeric array, got {type(value).__name__}."
        ) from None


def _vector(value, name):
    array = _float64(value, name)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"`{name}` must be a (d,) mean vector; got shape {array.shape}."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` contains NaN or Inf values.")
    return array


def _covariance(value, name, dim):
    array = _float64(value, name)
    if array.shape != (dim, dim):
        raise ValueError(
            f"`{name}` must be a ({dim}, {dim}) covariance matching its mean; got "
            f"shape {array.shape}."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` contains NaN or Inf values.")
    return (array + array.T) / 2


def _psd_sqrt(matrix):
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    roots = np.sqrt(np.clip(eigenvalues, 0.0, None))
    return (eigenvectors * roots) @ eigenvectors.T


def trace_sqrt_product(sigma1, sigma2):
    """Tr (S_1 S_2)^{1/2} for symmetric PSD S_1, S_2, as sum sqrt eig(A S_2 A).

    A = S_1^{1/2}; A S_2 A is symmetric PSD and similar to S_1 S_2.

    Args:
        sigma1, sigma2: (d, d) symmetric positive semi-definite matrices.

    Returns:
        float.
    """
    root = _psd_sqrt(np.asarray(sigma1, dtype=np.float64))
    middle = root @ np.asarray(sigma2, dtype=np.float64) @ root
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))


def frechet_distance_from_statistics(mu1, sigma1, mu2, sigma2):
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2}),
    with the trace of the square root from the symmetric form (see the module
    docstring). Covariances are symmetrised; a result below 0 from rounding
    is returned as 0.

    Args:
        mu1, mu2: (d,) means.
        sigma1, sigma2: (d, d) covariances.

    Returns:
        The squared Frechet distance (what "FID" reports), a float.

    Example:
    >>> kr.metrics.frechet_distance_from_statistics(
    ...     np.zeros(2), np.eye(2), np.ones(2), np.eye(2))   # 2.0
    """
    mu1 = _vector(mu1, "mu1")
    mu2 = _vector(mu2, "mu2")
    if mu1.shape != mu2.shape:
        raise ValueError(
            f"`mu1` and `mu2` must have the same dimension; got {mu1.shape[0]} and "
            f"{mu2.shape[0]}."
        )
    sigma1 = _covariance(sigma1, "sigma1", mu1.shape[0])
    sigma2 = _covariance(sigma2, "sigma2", mu2.shape[0])
    diff = mu1 - mu2
    value = (
        diff @ diff
        + np.trace(sigma1)
        + np.trace(sigma2)
        - 2.0 * trace_sqrt_product(sigma1, sigma2)
    )
    return max(float(value), 0.0)


def _statistics(data, name, feature_extractor, batch_size, verbose):
    if isinstance(data, statistics.FeatureStatistics):
        stats = data
    else:
        stats = statistics.FeatureStatistics()
        for features, _ in extraction.feature_batches(
            data, feature_extractor, batch_size, verbose, name=name
        ):
            stats.update(features)
    if stats.count < 2:
        raise ValueError(
            f"`{name}` has {stats.count} sample(s); the covariance needs at least 2."
        )
    return stats


def frechet_distance(real, fake, feature_extractor=None, batch_size=50, verbose="auto"):
    """Frechet distance between the feature distributions of two sets (FID).

    FID = ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^{1/2}),

    where (mu, S) are the mean and unbiased covariance of each set's
    features. Each of `real` and `fake` may be a `FeatureStatistics`
    (precomputed, e.g. loaded with `FeatureStatistics.load`), an (n, d)
    feature array, (n, h, w, c) images in [0, 1], or an iterable of image
    batches such as a `tf.data.Dataset`. Images are streamed through the
    extractor and only their running statistics are kept.

    Args:
        real: the reference set.
        fake: the generated set.
        feature_extractor: Keras model or callable `images -> (batch, d)`;
            None for InceptionV3 pool features (2048-d, ImageNet weights).
        batch_size: images per extractor call.
        verbose: 0, 1, 2 or "auto" (a progress bar for several batches).

    Returns:
        The FID, a float >= 0. Lower is better.

    Example:
    >>> kr.metrics.frechet_distance(x_test, x_generated,
    ...                             feature_extractor=encoder, batch_size=256)
    """
    feature_extractor = extraction.resolve_extractor(feature_extractor)
    real = _statistics(real, "real", feature_extractor, batch_size, verbose)
    fake = _statistics(fake, "fake", feature_extractor, batch_size, verbose)
    if real.dim != fake.dim:
        raise ValueError(
            f"`real` and `fake` must have the same feature dimension; got "
            f"{real.dim} and {fake.dim}."
        )
    return frechet_distance_from_statistics(
        real.mean, real.covariance, fake.mean, fake.covariance
    )
