"""Shared `beta` and `label_smoothing` hyperparameters of the TRADES family."""

from keras_robust.losses import label_smoothing as smoothing_lib
from keras_robust.models.robust_model import RobustModel
from keras_robust.utils import validation


class BetaRobustModel(RobustModel):
    """A `RobustModel` whose objective weighs a robustness term by `beta`.

    `label_smoothing=s` (TRADES, MART, WEAT) replaces the labels of the
    objective's cross-entropy terms by (1 - s) onehot(y) + s / K, as the
    state-of-the-art recipes train TRADES with s = 0.1 (DM-Improves-AT
    `gowal21uncovering/utils/trades.py`, line 42, `SmoothCrossEntropyLoss`:
    (1 - s) NLL + s mean_k(-log p_k), the same loss). The KL terms, MART's
    class masks and WEAT's weights do not depend on it; the logged metrics
    use the true labels.
    """

    def __init__(self, classifier=None, beta=6.0, label_smoothing=0.0, **kwargs):
        beta = validation.positive_number(beta, "beta", allow_zero=True)
        label_smoothing = smoothing_lib.check_label_smoothing(label_smoothing)
        super().__init__(classifier, **kwargs)
        self.beta = beta
        self.label_smoothing = label_smoothing

    def objective_labels(self, y, logits):
        """The labels the objective's cross-entropy terms train on."""
        if not self.label_smoothing:
            return y
        return smoothing_lib.smoothed_targets(y, logits.shape[-1], self.label_smoothing)

    def get_config(self):
        config = super().get_config()
        config["beta"] = self.beta
        config["label_smoothing"] = self.label_smoothing
        return config
