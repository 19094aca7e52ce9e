"""`WeightEMA`: Keras' optimizer EMA with the robust-training recipes' warm-up.

Keras optimizers keep an exponential moving average of the trainable weights
(`use_ema=True`, in the optimizer's variables, so it is saved, restored by
`BackupAndRestore` and updated inside the compiled step) and
`keras.callbacks.SwapEMAWeights` evaluates with it. What the recipes that
top RobustBench use and Keras lacks is the decay schedule (DeepMind's
adversarial-robustness code; DM-Improves-AT `gowal21uncovering/utils/
watrain.py`, `ema_update`, lines 244-258, called after every optimizer step
at lines 131-133 with `warmup_steps = 0.025 * epochs * steps_per_epoch`,
line 51):

    t = optimizer steps done (after this one),  d = t - warmup_steps
    decay_t = 0                                   if t < warmup_steps
            = min(decay, (1 + d) / (10 + d))      otherwise (dynamic decay)
    ema_t = decay_t * ema_{t-1} + (1 - decay_t) * w_t,    ema_0 = w_0

(Keras' own rule is a fixed `ema_momentum` with `ema_1 = w_1`.) BatchNorm
moving statistics are not averaged: the EMA model uses the raw model's, as
the reference copies them (`update_bn`, lines 261-272), and so does Keras'
swap, which exchanges the trainable variables only.
"""

import contextlib

import keras
from keras import ops

from keras_robust.callbacks import keras_internals
from keras_robust.utils import validation

# Set on a model while `ema_weights` has the averages swapped in.
_SWAPPED = "_keras_robust_ema_swapped"


def _optimizer_of(model):
    optimizer = getattr(model, "optimizer", None)
    return getattr(optimizer, "inner_optimizer", optimizer)


def has_ema(model):
    """Whether the model's optimizer keeps a weight EMA (`use_ema=True`)."""
    return keras_internals.keeps_ema(_optimizer_of(model))


def _swap(optimizer):
    for variable, average in keras_internals.ema_pairs(optimizer):
        current = ops.convert_to_numpy(variable.value)
        variable.assign(average.value)
        average.assign(current)


@contextlib.contextmanager
def ema_weights(model):
    """Runs the block with the EMA weights in `model` (if it has an EMA).

    The trainable weights are exchanged with the optimizer's averages and
    exchanged back on exit; BatchNorm moving statistics stay the raw
    model's (the recipes' rule). Without `use_ema`, or when the averages are
    already in the model, the block runs on the weights as they are.

    Example:
    >>> with kr.callbacks.weight_ema.ema_weights(model):
    ...     report = kr.evaluation.evaluate_robustness(model, x, y, epsilon=8/255)
    """
    if not has_ema(model) or getattr(model, _SWAPPED, False):
        yield
        return
    optimizer = _optimizer_of(model)
    _swap(optimizer)
    setattr(model, _SWAPPED, True)
    try:
        yield
    finally:
        _swap(optimizer)
        setattr(model, _SWAPPED, False)


def ema_decay(step, decay=0.995, warmup_steps=0, dynamic_decay=True):
    """The decay applied at optimizer step `step` (1 for the first update).

    `0` before `warmup_steps` (the average follows the weights), then
    `min(decay, (1 + d) / (10 + d))` with `d = step - warmup_steps`, or the
    constant `decay` when `dynamic_decay=False`. Works on numbers and tensors.
    """
    delta = ops.cast(step, "float32") - float(warmup_steps)
    rate = ops.convert_to_tensor(decay, "float32")
    if dynamic_decay:
        rate = ops.minimum(rate, (1.0 + delta) / (10.0 + delta))
    return ops.where(delta >= 0.0, rate, ops.zeros_like(rate))


class WeightEMA(keras.callbacks.SwapEMAWeights):
    """Weight EMA with the warm-up of the state-of-the-art robust recipes.

    Needs an optimizer built with `use_ema=True` (its `ema_momentum` is then
    unused): the average lives in the optimizer's variables, is updated in
    the compiled training step on every backend, saved with the model and
    restored by `kr.callbacks.BackupAndRestore`. This callback

    - sets the decay schedule `min(decay, (1 + d) / (10 + d))`, d the
      optimizer steps past `warmup_steps`, the average following the weights
      during warm-up (DM-Improves-AT `watrain.py`, `ema_update`);
    - starts the average at the weights before the first step (the
      reference's `copy.deepcopy(model)`), not at the first update;
    - evaluates with the EMA weights: validation during `fit`, `evaluate`,
      `predict` (as `keras.callbacks.SwapEMAWeights`), and
      `kr.callbacks.RobustValidation` / `EnergyPhaseLogger`, which use the
      EMA weights whenever the optimizer has one.

    The EMA model's BatchNorm moving statistics are the raw model's (the
    reference copies them every epoch). When `fit` ends, Keras writes the
    averages into the model (`finalize_variable_values`): the trained model,
    and what `model.save` writes, is the EMA model.

    Args:
        decay: the largest decay (`tau` of the reference), in [0, 1).
        warmup_steps: optimizer steps during which the average equals the
            weights; the reference uses 2.5% of all training steps.
        dynamic_decay: ramp the decay up as `(1 + d) / (10 + d)`; False
            uses `decay` from the first step after warm-up.

    Example:
    >>> optimizer = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True, use_ema=True)
    >>> model.compile(optimizer=optimizer)
    >>> model.fit(train, epochs=400, validation_data=val,
    ...           callbacks=[kr.callbacks.WeightEMA(0.995, warmup_steps=980)])
    """

    def __init__(self, decay=0.995, warmup_steps=0, dynamic_decay=True):
        super().__init__(swap_on_epoch=False)
        decay = validation.positive_number(decay, "decay", allow_zero=True)
        if decay >= 1.0:
            raise ValueError(f"`decay` must lie in [0, 1), got {decay!r}.")
        self.decay = decay
        self.warmup_steps = validation.positive_number(
            warmup_steps, "warmup_steps", allow_zero=True
        )
        if not isinstance(dynamic_decay, bool):
            raise TypeError(
                f"`dynamic_decay` must be True or False, got {dynamic_decay!r}."
            )
        self.dynamic_decay = dynamic_decay

    def set_model(self, model):
        super().set_model(model)
        optimizer = _optimizer_of(model)
        if not getattr(optimizer, "use_ema", False):
            raise ValueError(
                "WeightEMA keeps its average in the optimizer: compile the model "
                "with an optimizer built with `use_ema=True`, e.g. "
                "`keras.optimizers.SGD(0.1, momentum=0.9, use_ema=True)`."
            )
        rule = (self.decay, self.warmup_steps, self.dynamic_decay)
        if getattr(optimizer, "_keras_robust_ema_rule", None) != rule:
            # The rule is read when the step is traced: set it first, and
            # drop a step compiled with another rule.
            optimizer._keras_robust_ema_rule = rule
            keras_internals.set_ema_update(optimizer, _update_moving_average)
            model.train_function = None

    def on_train_begin(self, logs=None):
        optimizer = _optimizer_of(self.model)
        if not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        if int(ops.convert_to_numpy(optimizer.iterations)) == 0:
            # ema_0 = w_0 (Keras' averages start at zero).
            for variable, average in keras_internals.ema_pairs(optimizer):
                # A copy: JAX donates both buffers to the step.
                average.assign(ops.convert_to_numpy(variable.value))

    def get_config(self):
        return {
            "decay": self.decay,
            "warmup_steps": self.warmup_steps,
            "dynamic_decay": self.dynamic_decay,
        }


def _update_moving_average(optimizer, trainable_variables):
    """The optimizer's EMA step with the recipe's rule (`set_ema_update`).

    Called by every backend's optimizer inside the step, before `iterations`
    is incremented: this is update `iterations + 1`.
    """
    decay, warmup_steps, dynamic_decay = optimizer._keras_robust_ema_rule
    rate = ema_decay(optimizer.iterations + 1, decay, warmup_steps, dynamic_decay)
    for variable, (_, average) in zip(
        trainable_variables, keras_internals.ema_pairs(optimizer), strict=True
    ):
        if average is None:
            continue
        momentum = ops.cast(rate, variable.dtype)
        average.assign(momentum * average + (1.0 - momentum) * variable)
