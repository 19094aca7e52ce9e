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


@pytest.fixture(autouse=True)
def _no_persistent_jax_cache():
    # On JAX, this module's evaluate, run with its step loaded from the
    # persistent compilation cache (tests/conftest.py) that the other test
    # here wrote, failed 2 times in 3 with "Buffer has been deleted or
    # donated" for argument 0 (2026-12-02; a compile of its own never did).
    # Not explained yet: this module compiles its steps itself meanwhile.
    if keras.backend.backend() != "jax":
        yield
        return
    import jax

    previous = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    yield
    jax.config.update("jax_enable_compilation_cache", previous)


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
    with pytest.raises(ValueError, match="NaN or Inf"):
        model.evaluate(bad, y, batch_size=16, verbose=0, callbacks=callbacks)
    assert callbacks.callbacks == [hooks]  # the guard was for that call only
    assert hooks.calls == ["begin", "end"]
