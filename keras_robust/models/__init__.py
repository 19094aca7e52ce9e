"""Adversarial training methods, each a `keras.Model` trained with `fit`."""

from keras_robust.models.at import AT
from keras_robust.models.awp import AWP
from keras_robust.models.dyart import DyART
from keras_robust.models.fast_at import FastAT
from keras_robust.models.mart import MART
from keras_robust.models.robust_model import RobustModel
from keras_robust.models.score import SCORE
from keras_robust.models.trades import TRADES
from keras_robust.models.weat import WEAT

__all__ = [
    "AT",
    "AWP",
    "DyART",
    "FastAT",
    "MART",
    "RobustModel",
    "SCORE",
    "TRADES",
    "WEAT",
]
