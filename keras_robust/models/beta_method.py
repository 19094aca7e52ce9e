"""Shared `beta` hyperparameter of the TRADES family."""

from keras_robust.models.robust_model import RobustModel
from keras_robust.utils import validation


class BetaRobustModel(RobustModel):
    """A `RobustModel` whose objective weighs a robustness term by `beta`."""

    def __init__(self, classifier=None, beta=6.0, **kwargs):
        beta = validation.positive_number(beta, "beta", allow_zero=True)
        super().__init__(classifier, **kwargs)
        self.beta = beta

    def get_config(self):
        config = super().get_config()
        config["beta"] = self.beta
        return config
