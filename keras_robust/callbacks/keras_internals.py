"""Every private piece of Keras that `kr.callbacks` relies on, one function each.

Keras has no public hook for these. Each function says what it reads or
replaces and the Keras versions it was checked against: 3.11.0 (the floor
in pyproject.toml, tested by `make test-floor`) and 3.15.1. When a Keras
release moves one of them, the function's tests fail here, not a call site
somewhere else. (The TensorFlow step's private uses live, the same way, in
`keras_robust/backend/tensorflow.py`.)
"""

import types


def ema_pairs(optimizer):
    """[(trainable variable, its EMA)] of an optimizer built with `use_ema`.

    `Optimizer._trainable_variables` and `_model_variables_moving_average`
    (keras/src/optimizers/base_optimizer.py, Keras 3.11.0 to 3.15.1): the
    averages are built with the optimizer, one per trainable variable, in
    the same order. [] when the optimizer keeps no averages.
    """
    averages = getattr(optimizer, "_model_variables_moving_average", None)
    if not averages:
        return []
    return list(zip(optimizer._trainable_variables, averages, strict=True))


def keeps_ema(optimizer):
    """Whether `optimizer` was built with `use_ema=True` (its averages exist
    once it is built; see `ema_pairs`)."""
    return bool(getattr(optimizer, "use_ema", False)) and hasattr(
        optimizer, "_model_variables_moving_average"
    )


def set_ema_update(optimizer, update):
    """Makes `update(optimizer, trainable_variables)` the optimizer's EMA step.

    Replaces `Optimizer._update_model_variables_moving_average` on this
    optimizer only; every backend's `apply` calls it inside the training
    step before incrementing `iterations` (base_optimizer.py, Keras 3.11.0
    to 3.15.1). A step already traced keeps the rule it was traced with.
    """
    optimizer._update_model_variables_moving_average = types.MethodType(
        update, optimizer
    )


def backup_weights_path(callback):
    """The weights file of a `keras.callbacks.BackupAndRestore`.

    `BackupAndRestore._weights_path` (keras/src/callbacks/backup_and_restore.py,
    Keras 3.11.0 to 3.15.1), written by its `_save_model`, which
    `kr.callbacks.BackupAndRestore` extends.
    """
    return callback._weights_path


def forget_restored_epoch(model):
    """Clears the epoch a `BackupAndRestore` restore left on `model`.

    Keras' `BackupAndRestore.on_train_begin` resumes by setting
    `model._initial_epoch`, which the trainers read right after
    `on_train_begin` (`self._initial_epoch or initial_epoch`,
    keras/src/backend/*/trainer.py, Keras 3.11.0 to 3.15.1) and never reset:
    any later `fit` of the same model, with or without a backup, would start
    at that epoch and silently train fewer epochs. Called once the trainer
    has read it (at the first epoch, or at the end of a `fit` that had none
    left), so the restored epoch reaches this `fit` only.
    """
    if getattr(model, "_initial_epoch", None) is not None:
        model._initial_epoch = None
