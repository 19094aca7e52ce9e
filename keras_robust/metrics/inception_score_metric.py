"""Inception Score: how confident and how diverse a classifier finds samples.

With p(y|x) the class probabilities of a sample and p(y) = E_x p(y|x) their
mean over a split of the samples,

    IS = exp( E_x KL( p(y|x) || p(y) ) ),
    KL(p || q) = sum_k p_k log(p_k / q_k)   (0 log 0 = 0).

It ranges from 1 (every sample gets the same prediction) to the number of
classes K (confident predictions spread evenly over all classes). The
samples are cut into `splits` contiguous parts of sizes differing by at most
one (part s holds rows s*n//splits to (s+1)*n//splits, as in OpenAI's
reference code), the score is computed per part, and the mean and standard
deviation over parts are reported. Each part's p(y) is its own marginal, so
the score depends on the split size: compare scores with the same n and
`splits`.

Reference: Salimans et al., "Improved techniques for training GANs"
(NeurIPS 2016). The original uses a 1008-class TensorFlow Inception graph;
Keras' InceptionV3 has 1000 classes, so its numbers are close to but not the
same as published ones.
"""

import warnings

import numpy as np
from scipy import special

from keras_robust.metrics import extraction
from keras_robust.metrics import result
from keras_robust.utils import validation


def _probabilities(values, from_logits, name):
    values = np.asarray(values, dtype=np.float64)
    if values.shape[1] < 2:
        raise ValueError(
            f"`{name}` must have at least 2 classes per row; got shape {values.shape}."
        )
    sums = values.sum(axis=1)
    looks_like_probabilities = np.all(values >= 0) and np.allclose(sums, 1.0, atol=1e-3)
    if from_logits:
        if looks_like_probabilities:
            warnings.warn(
                f"`{name}` looks like probabilities (non-negative rows summing to "
                "1) but `from_logits=True`: a softmax is applied on top of them. "
                "Pass `from_logits=False` if these are probabilities.",
                stacklevel=3,
            )
        return special.softmax(values, axis=1)
    if not looks_like_probabilities:
        raise ValueError(
            f"`{name}` must hold class probabilities (non-negative rows summing to "
            f"1 within 1e-3); got values in [{values.min():.4g}, {values.max():.4g}] "
            f"and row sums in [{sums.min():.4g}, {sums.max():.4g}]. Pass "
            "`from_logits=True` for logits."
        )
    return values / sums[:, None]


def split_scores(probabilities, splits):
    """exp(mean_x KL(p(y|x) || p(y))) for each of `splits` contiguous parts.

    Args:
        probabilities: (n, K) float64 rows summing to 1.
        splits: number of parts, 1 <= splits <= n.

    Returns:
        (splits,) numpy array of scores.
    """
    n = probabilities.shape[0]
    scores = np.empty(splits)
    for s in range(splits):
        part = probabilities[s * n // splits : (s + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        kl = special.rel_entr(part, marginal).sum(axis=1)
        scores[s] = np.exp(kl.mean())
    return scores


def inception_score(
    samples,
    splits=10,
    classifier=None,
    from_logits=None,
    batch_size=50,
    verbose="auto",
):
    """Inception Score, the mean and std over `splits` parts of the samples.

    IS = exp(E_x KL(p(y|x) || p(y))), computed per split (see the module
    docstring).

    Args:
        samples: (n, K) class probabilities (or logits with
            `from_logits=True`), or (n, h, w, c) images in [0, 1] to classify
            with `classifier`, or an iterable of batches of either.
        splits: number of parts, 1 <= splits <= n. The reference value is 10
            parts of 5,000 samples.
        classifier: for images, a Keras model or callable
            `images -> (batch, K)`; None for ImageNet InceptionV3 logits
            (1000 classes). Any classifier works (e.g. a digits classifier,
            K = 10), but the scores are comparable only with the same one.
        from_logits: whether the class scores are logits (a softmax is
            applied) or probabilities. None (default) means True when
            `classifier` produced them from images (keras_robust classifiers
            and the default InceptionV3 return logits) and False when
            `samples` are given directly as (n, K) scores.
        batch_size: images per classifier call.
        verbose: 0, 1, 2 or "auto".

    Returns:
        `MeanStd(mean, std)`, both in [1, K]; higher is better.

    Example:
    >>> probs = np.eye(10)[np.arange(1000) % 10]   # confident and balanced
    >>> kr.metrics.inception_score(probs, splits=10)  # MeanStd(mean=10.0, std=0.0)
    """
    splits = validation.positive_integer(splits, "splits")
    if from_logits not in (None, True, False):
        raise TypeError(
            f"`from_logits` must be True, False or None; got {from_logits!r}."
        )
    classifier = extraction.resolve_extractor(classifier, "classifier", "logits")
    parts, extracted = [], False
    for scores, from_images in extraction.feature_batches(
        samples,
        classifier,
        batch_size,
        verbose,
        name="samples",
        extractor_name="classifier",
        output="logits",
    ):
        parts.append(scores)
        extracted = extracted or from_images
    scores = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
    if from_logits is None:
        from_logits = extracted
    probabilities = _probabilities(scores, from_logits, "samples")
    if splits > probabilities.shape[0]:
        raise ValueError(
            f"`splits`={splits} exceeds the number of samples "
            f"({probabilities.shape[0]}): every split needs at least one sample."
        )
    values = split_scores(probabilities, splits)
    return result.MeanStd(float(values.mean()), float(values.std()))
