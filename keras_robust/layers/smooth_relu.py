"""SmoothReLU: ReLU with a learnable smooth knee (Smooth Adversarial Training)."""

import keras
from keras import ops

from keras_robust.utils import validation


@keras.saving.register_keras_serializable(package="keras_robust")
class SmoothReLU(keras.layers.Layer):
    """f(x) = x - (1/a) log(1 + a x) for x >= 0, else 0, with a = b^2.

    A C^1 version of ReLU: f'(x) = a x / (1 + a x) rises smoothly from 0 at
    x = 0 towards 1, instead of jumping. `b` is one learnable scalar per layer
    (per activation site), initialised to `initial_b` = 20 (a = 400), as in
    the SAT paper; larger a is closer to ReLU. f(x) -> x - log(a x)/a for
    large x, so the output lags ReLU by at most log(1 + a x)/a.

    Args:
        initial_b: initial value of b (a = b^2 > 0), default 20.
        trainable_b: whether b is learned, default True.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a tensor of any shape.

    Returns:
        A tensor of the same shape.

    Example:
    >>> layer = kr.layers.SmoothReLU()
    >>> layer(keras.ops.array([-1.0, 0.0, 0.01, 1.0]))   # [0, 0, ~0.0045, ~0.985]

    Reference: Xie et al., "Smooth Adversarial Training", 2020.
    """

    def __init__(self, initial_b=20.0, trainable_b=True, **kwargs):
        super().__init__(**kwargs)
        self.initial_b = validation.positive_number(initial_b, "initial_b")
        self.trainable_b = bool(trainable_b)

    def build(self, input_shape):
        self.b = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.initial_b),
            trainable=self.trainable_b,
            name="b",
        )

    def call(self, inputs):
        a = ops.square(ops.cast(self.b, inputs.dtype))
        # max(x, 0) keeps log1p's argument >= 1 where x < 0 (no NaN in either
        # branch) and gives the exact zero output and gradient there.
        positive = ops.relu(inputs)
        return positive - ops.log1p(a * positive) / a

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"initial_b": self.initial_b, "trainable_b": self.trainable_b})
        return config
