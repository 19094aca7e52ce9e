"""Inception Score against direct formulas."""

import keras
import numpy as np
import pytest
from scipy import special

from keras_robust import metrics


def _reference_scores(p, splits):
    n, scores = len(p), []
    for s in range(splits):
        part = p[s * n // splits : (s + 1) * n // splits]
        marginal = part.mean(0)
        kl = np.sum(part * (np.log(part) - np.log(marginal)), axis=1)
        scores.append(np.exp(kl.mean()))
    return np.mean(scores), np.std(scores)


@pytest.mark.parametrize("splits", [1, 10])
def test_confident_balanced_predictions_score_the_number_of_classes(splits):
    probabilities = np.eye(7)[np.arange(700) % 7]
    mean, std = metrics.inception_score(probabilities, splits=splits)
    assert mean == pytest.approx(7.0, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_identical_predictions_score_one():
    probabilities = np.tile([[0.1, 0.6, 0.3]], (50, 1))
    assert metrics.inception_score(probabilities, splits=5).mean == pytest.approx(1.0)


def test_random_predictions_match_numpy_with_uneven_splits():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.full(10, 0.3), size=103) + 1e-12
    probabilities /= probabilities.sum(1, keepdims=True)
    expected = _reference_scores(probabilities, 4)
    result = metrics.inception_score(probabilities, splits=4)
    np.testing.assert_allclose(result, expected, rtol=1e-10)
    logits = np.log(probabilities) + 3.0
    from_logits = metrics.inception_score(logits, splits=4, from_logits=True)
    np.testing.assert_allclose(from_logits, expected, rtol=1e-8)


def test_images_through_a_classifier_returning_logits():
    inputs = keras.Input((6, 6, 1))
    logits = keras.layers.Dense(5)(keras.layers.Flatten()(inputs))
    classifier = keras.Model(inputs, logits)
    images = np.random.default_rng(1).uniform(size=(40, 6, 6, 1)).astype("float32")
    result = metrics.inception_score(
        images, splits=2, classifier=classifier, batch_size=16, verbose=0
    )
    probabilities = special.softmax(
        np.asarray(classifier.predict(images, verbose=0), np.float64), axis=1
    )
    np.testing.assert_allclose(result, _reference_scores(probabilities, 2), rtol=1e-5)


def test_errors_and_warnings_name_the_argument():
    p = np.full((10, 4), 0.25)
    with pytest.raises(ValueError, match="`splits` must be an integer >= 1"):
        metrics.inception_score(p, splits=0)
    with pytest.raises(TypeError, match="`splits`"):
        metrics.inception_score(p, splits=2.0)
    with pytest.raises(ValueError, match=r"`splits`=11 exceeds the number of samples"):
        metrics.inception_score(p, splits=11)
    with pytest.raises(ValueError, match="`samples` must hold class probabilities.*"):
        metrics.inception_score(p * 2, splits=2)
    with pytest.raises(ValueError, match="at least 2 classes"):
        metrics.inception_score(np.ones((10, 1)), splits=2)
    with pytest.raises(ValueError, match="`samples` must be features"):
        metrics.inception_score(np.ones((10, 4, 1)), splits=2)
    with pytest.raises(TypeError, match="`from_logits`"):
        metrics.inception_score(p, splits=2, from_logits="yes")
    with pytest.raises(TypeError, match="`classifier` must be"):
        metrics.inception_score(p, splits=2, classifier=3)
    with pytest.warns(UserWarning, match="looks like probabilities"):
        metrics.inception_score(p, splits=2, from_logits=True)
