"""The private Keras pieces `kr.callbacks` relies on still behave as we read them.

Each test exercises one function of `keras_robust/callbacks/keras_internals.py`
on the installed Keras (the floor run, `make test-floor`, checks the oldest
supported one): a Keras release that moves one fails here.
"""

import os

import keras
import numpy as np

from keras_robust.callbacks import keras_internals


def built_optimizer(use_ema):
    variables = [keras.Variable(np.ones((2, 3))), keras.Variable(np.zeros(3))]
    optimizer = keras.optimizers.SGD(0.5, use_ema=use_ema)
    optimizer.build(variables)
    return optimizer, variables


def test_ema_pairs_are_each_trainable_variable_with_its_average():
    optimizer, variables = built_optimizer(use_ema=True)
    pairs = keras_internals.ema_pairs(optimizer)
    assert [variable for variable, _ in pairs] == variables
    assert [tuple(average.shape) for _, average in pairs] == [(2, 3), (3,)]
    assert keras_internals.keeps_ema(optimizer)


def test_an_optimizer_without_ema_has_no_pairs():
    optimizer, _ = built_optimizer(use_ema=False)
    assert keras_internals.ema_pairs(optimizer) == []
    assert not keras_internals.keeps_ema(optimizer)


def test_set_ema_update_replaces_the_step_apply_runs():
    optimizer, variables = built_optimizer(use_ema=True)
    calls = []

    def update(opt, trainable_variables):
        calls.append((opt, list(trainable_variables)))
        for _, average in keras_internals.ema_pairs(opt):
            average.assign(average + 7.0)

    keras_internals.set_ema_update(optimizer, update)
    optimizer.apply([keras.ops.ones((2, 3)), keras.ops.ones(3)], variables)
    assert len(calls) == 1 and calls[0][0] is optimizer
    assert calls[0][1] == variables
    for _, average in keras_internals.ema_pairs(optimizer):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(average), 7.0)


def test_backup_weights_path_is_the_file_keras_backup_writes(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    backup = keras.callbacks.BackupAndRestore(str(tmp_path))
    backup.set_model(model)
    path = keras_internals.backup_weights_path(backup)
    assert not os.path.exists(path)
    backup.on_epoch_end(0)
    assert os.path.isfile(path)


def test_forget_restored_epoch_lets_the_next_fit_start_at_zero(tmp_path):
    x, y = np.zeros((4, 2)), np.zeros((4, 1))
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    # A backup left after epoch 1 of 3: Keras resumes at epoch 2 ...
    backup = keras.callbacks.BackupAndRestore(str(tmp_path), delete_checkpoint=False)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[backup])
    resumed = model.fit(
        x,
        y,
        epochs=3,
        verbose=0,
        callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path))],
    )
    assert len(resumed.history["loss"]) == 1
    # ... and leaves the epoch on the model, where the next fit would read it.
    assert model._initial_epoch == 2
    keras_internals.forget_restored_epoch(model)
    assert len(model.fit(x, y, epochs=3, verbose=0).history["loss"]) == 3
