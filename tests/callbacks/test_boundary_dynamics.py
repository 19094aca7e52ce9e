"""`kr.callbacks.BoundaryDynamics` during a real `fit`."""

import csv

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import tiny_cnn


def _model():
    model = kr.models.AT(tiny_cnn(), epsilon=0.1, steps=2, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def test_logs_csv_and_plot_from_a_real_fit(digits, tmp_path):
    pytest.importorskip("matplotlib")
    (x, y), (xt, yt) = digits
    dynamics = kr.callbacks.BoundaryDynamics(
        xt[:40],
        yt[:40],
        every=2,
        search_steps=5,
        direction_batch_size=16,
        log_dir=tmp_path,
    )
    history = (
        _model()
        .fit(x[:256], y[:256], batch_size=64, epochs=4, callbacks=[dynamics], verbose=0)
        .history
    )
    assert sorted(dynamics.results) == [1, 3]
    assert dynamics.threshold == pytest.approx(0.1)  # the model's epsilon
    key = "boundary_conflicting_fraction"
    # Logged at the measured epochs only; what History holds is each result's.
    assert len(history[key]) == 2
    for value, epoch in zip(history[key], (1, 3)):
        expected = dynamics.results[epoch].conflicting_fraction(0.1)
        assert value == pytest.approx(expected, nan_ok=True)
        assert np.isnan(value) or 0.0 <= value <= 1.0
    assert dynamics.history["epoch"] == [1, 3]
    with open(tmp_path / "boundary_dynamics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 40
    assert {int(r["epoch"]) for r in rows} == {1, 3}
    found = [r for r in rows if r["margin"]]
    assert found and all(float(r["margin"]) >= 0 for r in found)
    assert (tmp_path / "boundary_dynamics.png").stat().st_size > 0


def test_bad_probe_is_refused_before_the_first_epoch(digits):
    (x, y), (xt, yt) = digits
    with pytest.raises(ValueError, match="every"):
        kr.callbacks.BoundaryDynamics(xt[:8], yt[:8], every=0)
    with pytest.raises(ValueError):
        kr.callbacks.BoundaryDynamics(xt[:8], yt[:4])
    epochs_run = []
    counter = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: epochs_run.append(epoch)
    )
    wrong_shape = kr.callbacks.BoundaryDynamics(xt[:8].reshape(8, 64), yt[:8])
    with pytest.raises(ValueError, match="x_probe"):
        _model().fit(
            x[:64], y[:64], epochs=1, callbacks=[wrong_shape, counter], verbose=0
        )
    assert epochs_run == []
