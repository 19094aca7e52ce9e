"""Validation inside `fit` behaves as in a plain `keras.Model` (issue 22, item 7).

`fit` hands its `CallbackList` to `evaluate`; replacing it by a plain list
made Keras build a second list with its own progress bar, so
`fit(verbose=0, validation_data=...)` printed a bar per validation run.
"""

import keras
import numpy as np
import pytest

import keras_robust as kr


class TestHooks(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_test_begin(self, logs=None):
        self.calls.append("begin")

    def on_test_end(self, logs=None):
        self.calls.append("end")


def _model():
    classifier = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    model = kr.models.TRADES(classifier, epsilon=0.1, step_size=0.05, steps=1)
    model.eval_attack = kr.attacks.PGD(0.1, step_size=0.05, steps=1)
    model.compile(optimizer="sgd")
    return model


@pytest.fixture(scope="module")
def data(digits):
    (x, y), _ = digits
    return x[:32], y[:32]


def test_fit_verbose_0_with_validation_prints_nothing(data, capsys):
    x, y = data
    model = _model()
    hooks = TestHooks()
    capsys.readouterr()
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        verbose=0,
        validation_data=(x, y),
        callbacks=[hooks],
    )
    assert capsys.readouterr().out == ""
    assert hooks.calls == ["begin", "end", "begin", "end"]
    assert len(history.history["val_loss"]) == 2


def test_evaluate_with_a_callback_list_still_guards_nonfinite_batches(data):
    x, y = data
    model = _model()
    bad = np.array(x, copy=True)
    bad[3, 0, 0, 0] = np.nan
    hooks = TestHooks()
    callbacks = keras.callbacks.CallbackList([hooks], model=model)
    # Keras lets such a list (no callback with a batch hook) run batch hooks
    # in a thread pool: the guard must still stop at once, at the right
    # batch. Appended to it, it ran late in a thread: it named a later batch,
    # and on JAX the loop met buffers a step had donated ("Array has been
    # deleted").
    with pytest.raises(ValueError, match="evaluation .or validation. batch 0 "):
        model.evaluate(bad, y, batch_size=4, verbose=0, callbacks=callbacks)
    assert callbacks.callbacks == [hooks]  # the guard was for that call only
    assert hooks.calls == ["begin", "end"]
