"""Batches with NaN/Inf values are never trained on (or evaluated on).

The reference of each test is a twin model that never saw the bad batch: a
run over [b0, bad, b1] with `on_nonfinite_batch="skip"` must end bit-identical
to a run over [b0, b1] (weights, BatchNorm statistics, optimizer slots, seed
state, logged metrics), with `skipped_batches` = 1. The bad batch reaches the
compiled step through a `PyDataset`, whose first batch is all the up-front
data check of `fit` sees.
"""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import Batches
from tests.helpers import to_numpy

METHODS = ("AT", "TRADES", "MART", "WEAT", "SCORE", "FastAT", "DyART")
BATCH = 8


def _fit(model, batches, **kwargs):
    # Keras shuffles the batch order of a PyDataset unless told not to.
    return model.fit(Batches(batches), shuffle=False, verbose=0, **kwargs)


def _model(method, policy="raise"):
    keras.utils.set_random_seed(1)
    net = kr.architectures.SmallCNN(10, (8, 8, 1), filters=(4,), dense_units=0)
    kwargs = {"search_steps": 2} if method == "DyART" else {}
    if method not in ("FastAT", "DyART"):
        kwargs["steps"] = 2
    model = getattr(kr.models, method)(
        net, epsilon=0.1, seed=3, on_nonfinite_batch=policy, **kwargs
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9), metrics=["accuracy"]
    )
    return model


def _batches(digits, count):
    (x, y), _ = digits
    return [
        (x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH])
        for i in range(count)
    ]


def _poisoned(batch, where):
    """A copy of `batch` with a NaN or Inf in x, y (one-hot) or sample_weight."""
    x, y, *weights = (np.array(part) for part in batch)
    if where == "x_nan":
        x[3, 2, 5, 0] = np.nan
    elif where == "x_inf":
        x[0, 0, 0, 0] = -np.inf
    elif where == "y_nan":
        y[1, 0] = np.nan
    else:
        weights[0][5] = np.nan
    return x, y, *weights


def _state(model):
    """Every variable of the model and its optimizer (seed state included)."""
    variables = model.variables + model.optimizer.variables
    return [to_numpy(v) for v in variables]


def _assert_same_state(model, reference):
    for got, expected in zip(_state(model), _state(reference), strict=True):
        np.testing.assert_array_equal(got, expected)


def _restore(model, state):
    for variable, value in zip(model.variables + model.optimizer.variables, state):
        variable.assign(value)


@pytest.mark.parametrize("method", METHODS)
def test_a_skipped_batch_leaves_no_trace(digits, method):
    b0, b1, b2 = _batches(digits, 3)
    model = _model(method, "skip")
    _fit(model, [b0])  # builds the optimizer, compiles the step
    start = _state(model)
    history = _fit(model, [b0, _poisoned(b1, "x_nan"), b2])
    poisoned_end = _state(model)
    # The reference: the same start, the bad batch left out (same compiled step).
    _restore(model, start)
    expected = _fit(model, [b0, b2])

    for got, want in zip(poisoned_end, _state(model), strict=True):
        np.testing.assert_array_equal(got, want)
    assert history.history.pop("skipped_batches") == [1.0]
    assert expected.history.pop("skipped_batches") == [0.0]
    assert history.history == expected.history
    assert all(np.all(np.isfinite(v)) for v in poisoned_end)


def test_inf_pixels_nan_soft_labels_and_nan_weights_are_skipped(digits):
    # One-hot labels and sample weights throughout, one bad batch of each kind.
    b0, b1, b2 = (
        (x, np.eye(10, dtype="float32")[y], np.ones(len(x), "float32"))
        for x, y in _batches(digits, 3)
    )
    bad = [_poisoned(b1, where) for where in ("x_inf", "y_nan", "sample_weight_nan")]
    model = _model("TRADES", "skip")
    _fit(model, [b0])
    start = _state(model)
    history = _fit(model, [b0, *bad, b2])
    poisoned_end = _state(model)
    _restore(model, start)
    _fit(model, [b0, b2])
    for got, want in zip(poisoned_end, _state(model), strict=True):
        np.testing.assert_array_equal(got, want)
    assert history.history["skipped_batches"] == [3.0]


def test_raise_stops_fit_after_the_bad_batch_with_the_model_untouched(digits):
    b0, b1, b2 = _batches(digits, 3)
    model = _model("AT")
    with pytest.raises(ValueError, match=r"training batch 1 of epoch 1 .*NaN or Inf"):
        _fit(model, [b0, _poisoned(b1, "x_nan"), b2])
    reference = _model("AT")
    _fit(reference, [b0])
    _assert_same_state(model, reference)


def test_raise_is_the_default_and_names_the_way_out(digits):
    b0, b1 = _batches(digits, 2)
    model = _model("AT")
    assert model.on_nonfinite_batch == "raise"
    with pytest.raises(ValueError, match="on_nonfinite_batch='skip'"):
        _fit(model, [b0, _poisoned(b1, "x_inf")])


def test_validation_and_evaluate_skip_or_raise(digits):
    b0, b1, b2 = _batches(digits, 3)
    bad = Batches([b0, _poisoned(b1, "x_nan"), b2])
    skipping = _model("TRADES", "skip")
    logs = skipping.evaluate(bad, verbose=0, return_dict=True)
    twin = _model("TRADES", "skip")  # the same seed state for the eval attack
    clean = twin.evaluate(Batches([b0, b2]), verbose=0, return_dict=True)
    assert logs.pop("skipped_batches") == 1.0
    assert clean.pop("skipped_batches") == 0.0
    assert logs == clean

    history = _fit(skipping, [b0, b2], validation_data=bad)
    assert history.history["val_skipped_batches"] == [1.0]

    raising = _model("TRADES")
    with pytest.raises(ValueError, match="evaluation .*batch 1"):
        raising.evaluate(bad, verbose=0)
    # Keras finished the loop: on JAX the model state was written back.
    assert np.all(np.isfinite(to_numpy(raising.predict(b0[0], verbose=0))))
    with pytest.raises(ValueError, match="evaluation .*batch 1"):
        _fit(raising, [b0], validation_data=bad)


def test_arrays_are_checked_before_training_unless_skipping(digits):
    (x, y), _ = digits
    x = np.array(x[:32])
    x[20, 1, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"`x \(fit\)` contains NaN"):
        _model("AT").fit(x, y[:32], batch_size=BATCH, verbose=0)
    history = _model("AT", "skip").fit(
        x, y[:32], batch_size=BATCH, shuffle=False, verbose=0
    )
    assert history.history["skipped_batches"] == [1.0]


def test_the_policy_is_validated_and_serialized():
    with pytest.raises(ValueError, match="`on_nonfinite_batch` must be one of"):
        _model("AT", "ignore")
    model = _model("MART", "skip")
    restored = kr.models.MART.from_config(model.get_config())
    assert restored.on_nonfinite_batch == "skip"


def test_callbacks_passed_positionally_are_kept(digits):
    b0, b1 = _batches(digits, 2)
    seen = []
    log = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e))
    model = _model("DyART")
    # fit(x, y, batch_size, epochs, verbose, callbacks)
    model.fit(Batches([b0, b1]), None, None, 2, 0, [log], shuffle=False)
    assert seen == [0, 1]
    assert float(to_numpy(model.current_epoch)) == 1.0  # DyART's own callback ran
