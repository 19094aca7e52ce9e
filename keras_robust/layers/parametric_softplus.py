"""Parametric softplus (1/alpha) log(1 + exp(alpha x))."""

import keras
from keras import ops

from keras_robust.utils import validation


@keras.saving.register_keras_serializable(package="keras_robust")
class ParametricSoftplus(keras.layers.Layer):
    """f(x) = (1/alpha) log(1 + exp(alpha x)), a smooth ReLU of sharpness alpha.

    f'(x) = sigmoid(alpha x). Computed as softplus(alpha x) / alpha, which is
    stable for large |alpha x| (no overflow of exp). alpha = 10 is the SAT
    paper's choice; alpha -> infinity recovers ReLU, alpha = 1 is softplus.

    Args:
        alpha: sharpness, > 0, default 10.
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        inputs: a tensor of any shape.

    Returns:
        A tensor of the same shape.

    Example:
    >>> kr.layers.ParametricSoftplus(alpha=10.0)(keras.ops.array([0.0]))  # log(2)/10

    Reference: Xie et al., "Smooth Adversarial Training", 2020.
    """

    def __init__(self, alpha=10.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = validation.positive_number(alpha, "alpha")

    def call(self, inputs):
        return ops.softplus(self.alpha * inputs) / self.alpha

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["alpha"] = self.alpha
        return config
