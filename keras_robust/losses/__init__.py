"""Training objectives as pure functions of labels and logits.

Every objective is a batch mean of per-sample terms, with the reductions of
the authors' reference code. With `sample_weight`, the batch mean becomes
sum_i w_i l_i / B (Keras' "sum_over_batch_size"). Labels are integers of
shape (batch,) or one-hot/soft labels of shape (batch, classes). Logits are
cast to float32.
"""

from keras_robust.losses.common import adversarial_cross_entropy_loss
from keras_robust.losses.common import cross_entropy
from keras_robust.losses.common import kl_divergence
from keras_robust.losses.common import weighted_mean
from keras_robust.losses.consistency import consistency_loss
from keras_robust.losses.dyart import dyart_loss
from keras_robust.losses.dyart import dyart_margin_weights
from keras_robust.losses.dyart import soft_margin
from keras_robust.losses.mart import mart_loss
from keras_robust.losses.score import SCORE_DISTANCES
from keras_robust.losses.score import probability_distance
from keras_robust.losses.score import score_loss
from keras_robust.losses.trades import trades_loss
from keras_robust.losses.weat import WEAT_VARIANTS
from keras_robust.losses.weat import weat_loss
from keras_robust.losses.weat import weat_weights

__all__ = [
    "SCORE_DISTANCES",
    "WEAT_VARIANTS",
    "adversarial_cross_entropy_loss",
    "consistency_loss",
    "cross_entropy",
    "dyart_loss",
    "dyart_margin_weights",
    "kl_divergence",
    "mart_loss",
    "probability_distance",
    "score_loss",
    "soft_margin",
    "trades_loss",
    "weat_loss",
    "weat_weights",
    "weighted_mean",
]
