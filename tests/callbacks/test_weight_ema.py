"""`kr.callbacks.WeightEMA` and Keras' optimizer EMA with every method.

The raw weights are recorded after every step, and the average Keras keeps
in the optimizer must equal the closed-form recursion of DM-Improves-AT's
`ema_update` computed from them in numpy.
"""

import keras
import numpy as np
import pytest

import keras_robust as kr
from keras_robust.callbacks import weight_ema
from tests.helpers import FIT_JIT_COMPILE

METHODS = ["AT", "TRADES", "MART", "WEAT", "SCORE", "FastAT", "DyART"]
STEPS, BATCH = 6, 8


def classifier():
    return keras.Sequential(
        [
            keras.Input((4, 4, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(6),
            keras.layers.BatchNormalization(momentum=0.5),
            keras.layers.Activation("silu"),
            keras.layers.Dense(3),
        ]
    )


def make_model(method, jit_compile="auto"):
    kwargs = {"epsilon": 0.1}
    if method not in ("FastAT", "DyART"):
        kwargs.update(step_size=0.05, steps=1)
    if method == "DyART":
        kwargs.update(search_steps=2)
    model = getattr(kr.models, method)(classifier(), seed=0, **kwargs)
    optimizer = keras.optimizers.SGD(0.5, momentum=0.9, nesterov=True, use_ema=True)
    model.compile(optimizer=optimizer, jit_compile=jit_compile)
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.random((STEPS * BATCH, 4, 4, 1)).astype("float32")
    return x, rng.integers(0, 3, len(x)).astype("int32")


class Recorder(keras.callbacks.Callback):
    """Raw trainable weights before training and after every step."""

    def on_train_begin(self, logs=None):
        self.weights = [self._trainable()]

    def on_train_batch_end(self, batch, logs=None):
        self.weights.append(self._trainable())

    def _trainable(self):
        return [keras.ops.convert_to_numpy(v) for v in self.model.trainable_variables]


def closed_form(weights, decay, warmup, dynamic=True):
    average = [w.copy() for w in weights[0]]
    for step, current in enumerate(weights[1:], start=1):
        delta = step - warmup
        rate = min(decay, (1 + delta) / (10 + delta)) if dynamic else decay
        rate = rate if step >= warmup else 0.0
        average = [rate * a + (1 - rate) * w for a, w in zip(average, current)]
    return average


def averages(model):
    optimizer = model.optimizer
    return [
        keras.ops.convert_to_numpy(v) for v in optimizer._model_variables_moving_average
    ]


def test_decay_schedule_is_the_references():
    steps = np.arange(1, 2000)
    expected = [min(0.995, (1 + n) / (10 + n)) for n in steps - 3]
    expected = [e if n >= 3 else 0.0 for e, n in zip(expected, steps)]
    got = keras.ops.convert_to_numpy(weight_ema.ema_decay(steps, 0.995, 3))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert float(weight_ema.ema_decay(10**6, 0.995, 0)) == pytest.approx(0.995)


@pytest.mark.parametrize("method", METHODS)
def test_ema_equals_closed_form_with_every_method(data, method):
    # XLA for TRADES (the update runs in the compiled step); the default,
    # cheaper to compile, for the others.
    model = make_model(method, FIT_JIT_COMPILE if method == "TRADES" else "auto")
    recorder = Recorder()
    ema = kr.callbacks.WeightEMA(decay=0.3, warmup_steps=2)
    x, y = data
    model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[recorder, ema],
    )
    assert len(recorder.weights) == STEPS + 1
    expected = closed_form(recorder.weights, 0.3, 2)
    for got, want in zip(averages(model), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The average is not the weights.
    assert (
        max(np.abs(a - w).max() for a, w in zip(expected, recorder.weights[-1])) > 1e-3
    )
    # Keras writes the average into the model when fit ends.
    for got, want in zip(model.trainable_variables, expected):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(got), want, rtol=1e-5, atol=1e-6
        )


def test_keras_rule_without_the_callback_is_a_fixed_momentum(data):
    # Documents what WeightEMA changes: Keras' own EMA, ema_1 = w_1 and a
    # constant momentum afterwards.
    model = make_model("TRADES")
    model.optimizer.ema_momentum = 0.5
    recorder = Recorder()
    x, y = data
    model.fit(
        x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[recorder]
    )
    expected = [w.copy() for w in recorder.weights[1]]
    for current in recorder.weights[2:]:
        expected = [0.5 * a + 0.5 * w for a, w in zip(expected, current)]
    for got, want in zip(averages(model), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_validation_and_callbacks_see_the_ema_model_with_raw_batchnorm(data):
    model = make_model("TRADES")
    x, y = data
    seen = {}

    class Probe(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            seen["test"] = [
                keras.ops.convert_to_numpy(v) for v in self.model.trainable_variables
            ]

        def on_epoch_end(self, epoch, logs=None):
            seen["raw"] = [
                keras.ops.convert_to_numpy(v) for v in self.model.trainable_variables
            ]
            seen["average"] = averages(self.model)
            bn = self.model.classifier.layers[2]
            seen["moving_mean"] = keras.ops.convert_to_numpy(bn.moving_mean)
            with weight_ema.ema_weights(self.model):
                seen["swapped"] = [
                    keras.ops.convert_to_numpy(v)
                    for v in self.model.trainable_variables
                ]
                seen["swapped_mean"] = keras.ops.convert_to_numpy(bn.moving_mean)
                with weight_ema.ema_weights(self.model):  # nested: no second swap
                    seen["nested"] = keras.ops.convert_to_numpy(
                        self.model.trainable_variables[0]
                    )
            seen["after"] = [
                keras.ops.convert_to_numpy(v) for v in self.model.trainable_variables
            ]

    # The Probe runs after WeightEMA's on_test_end has swapped back.
    model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=1,
        shuffle=False,
        verbose=0,
        validation_data=(x[:8], y[:8]),
        callbacks=[kr.callbacks.WeightEMA(0.9), Probe()],
    )
    for test, swapped, average, raw, after in zip(
        seen["test"], seen["swapped"], seen["average"], seen["raw"], seen["after"]
    ):
        np.testing.assert_allclose(test, average, rtol=1e-6)  # validation: EMA
        np.testing.assert_allclose(swapped, average, rtol=1e-6)
        np.testing.assert_allclose(after, raw, rtol=1e-6)  # swapped back
    np.testing.assert_allclose(seen["nested"], seen["average"][0], rtol=1e-6)
    # BatchNorm moving statistics of the EMA model are the raw model's.
    np.testing.assert_array_equal(seen["swapped_mean"], seen["moving_mean"])
    assert np.any(seen["moving_mean"] != 0)


def test_robust_validation_evaluates_and_keeps_the_ema_weights(data):
    model = make_model("AT")
    x, y = data
    validation = kr.callbacks.RobustValidation(
        (x[:16], y[:16]), restore_best_weights=False, verbose=0
    )
    model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[kr.callbacks.WeightEMA(0.9), validation],
    )
    # After fit the model holds the EMA weights (and the raw BatchNorm
    # statistics): exactly what RobustValidation kept at the epoch's end.
    for kept, final in zip(validation.best_weights, model.get_weights()):
        np.testing.assert_allclose(kept, final, rtol=1e-6)


def test_saved_model_holds_ema_and_backup_resumes_it(data, tmp_path):
    x, y = data
    straight = make_model("TRADES")
    straight.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[kr.callbacks.WeightEMA(0.9, warmup_steps=1)],
    )
    backup = tmp_path / "backup"

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    keras.utils.set_random_seed(0)
    keras.backend.clear_session()
    first = make_model("TRADES")
    first.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[
            kr.callbacks.WeightEMA(0.9, warmup_steps=1),
            kr.callbacks.BackupAndRestore(backup, delete_checkpoint=False),
            StopAfterFirstEpoch(),
        ],
    )
    keras.utils.set_random_seed(0)
    keras.backend.clear_session()
    resumed = make_model("TRADES")
    resumed.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[
            kr.callbacks.WeightEMA(0.9, warmup_steps=1),
            kr.callbacks.BackupAndRestore(backup),
        ],
    )
    assert int(keras.ops.convert_to_numpy(resumed.optimizer.iterations)) == 2 * STEPS
    for a, b in zip(averages(straight), averages(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    path = tmp_path / "ema.keras"
    straight.save(path)
    loaded = keras.saving.load_model(path)
    for got, want in zip(loaded.trainable_variables, averages(straight)):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got), want, rtol=1e-6)
    for got, want in zip(averages(loaded), averages(straight)):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="decay"):
        kr.callbacks.WeightEMA(decay=1.0)
    with pytest.raises(ValueError, match="warmup_steps"):
        kr.callbacks.WeightEMA(warmup_steps=-1)
    model = kr.models.TRADES(classifier(), epsilon=0.1, step_size=0.05, steps=1)
    model.compile(optimizer="sgd")
    x = np.zeros((8, 4, 4, 1), "float32")
    with pytest.raises(ValueError, match="use_ema=True"):
        model.fit(
            x, np.zeros(8, "int32"), verbose=0, callbacks=[kr.callbacks.WeightEMA()]
        )
