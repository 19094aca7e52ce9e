"""Sample-quality metrics for generated images: FID, KID and Inception Score.

All metrics run host-side in float64 numpy/scipy on features from a
pluggable extractor (a Keras model or any callable `images -> features`;
by default Keras' ImageNet InceptionV3). See `frechet` (FID), `kid` (KID),
`inception_score_metric` (IS), `statistics` (streaming mean and covariance) and
`extraction` (batched feature extraction).
"""

from keras_robust.metrics.extraction import extract_features
from keras_robust.metrics.extraction import feature_statistics
from keras_robust.metrics.frechet import frechet_distance
from keras_robust.metrics.frechet import frechet_distance_from_statistics
from keras_robust.metrics.inception import InceptionV3Extractor
from keras_robust.metrics.inception import WeightsUnavailableError
from keras_robust.metrics.inception import inception_preprocess
from keras_robust.metrics.inception_score_metric import inception_score
from keras_robust.metrics.kid import kernel_inception_distance
from keras_robust.metrics.result import MeanStd
from keras_robust.metrics.statistics import FeatureStatistics

__all__ = [
    "FeatureStatistics",
    "InceptionV3Extractor",
    "MeanStd",
    "WeightsUnavailableError",
    "extract_features",
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "inception_preprocess",
    "inception_score",
    "kernel_inception_distance",
]
