"""keras_robust: adversarially robust image classifiers for Keras 3.

import keras, keras_robust as kr
model = kr.models.TRADES(classifier, epsilon=8/255, beta=6.0)
model.compile(optimizer="sgd", metrics=["accuracy"])
model.fit(x, y, epochs=10)
"""

from keras_robust import analysis
from keras_robust import architectures
from keras_robust import attacks
from keras_robust import backend
from keras_robust import callbacks
from keras_robust import datasets
from keras_robust import energy
from keras_robust import evaluation
from keras_robust import generation
from keras_robust import layers
from keras_robust import losses
from keras_robust import metrics
from keras_robust import models
from keras_robust import schedules
from keras_robust import zoo

__version__ = "0.1.0"

__all__ = [
    "analysis",
    "architectures",
    "attacks",
    "backend",
    "callbacks",
    "datasets",
    "energy",
    "evaluation",
    "generation",
    "layers",
    "losses",
    "metrics",
    "models",
    "schedules",
    "zoo",
]
