"""EnergyPhaseLogger: logs, CSV, plot, phase-3 actions, clear errors."""

import csv

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import tiny_cnn

PNG_MAGIC = b"\x89PNG"


@pytest.fixture
def small(digits):
    (x, y), (xt, yt) = digits
    return x[:128], y[:128], xt[:64], yt[:64]


def test_logs_csv_and_plot_from_a_real_fit(tmp_path, small):
    x, y, xt, yt = small
    model = kr.models.WEAT(tiny_cnn(), epsilon=0.2, step_size=0.05, steps=3, seed=0)
    model.compile(optimizer="adam")
    logger = kr.callbacks.EnergyPhaseLogger(
        log_dir=tmp_path, validation_data=(xt, yt), verbose=0
    )
    csv_path = tmp_path / "history.csv"
    history = model.fit(
        x,
        y,
        batch_size=32,
        epochs=3,
        verbose=0,
        callbacks=[logger, keras.callbacks.CSVLogger(str(csv_path))],
    )
    logs = history.history
    for key in ("energy_gap", "energy_phase", "val_energy_gap", "weat_weight"):
        assert len(logs[key]) == 3, key
    np.testing.assert_allclose(
        logs["energy_gap"],
        np.array(logs["energy_natural"]) - np.array(logs["energy_adversarial"]),
        rtol=1e-6,
    )
    assert all(phase in (1, 2, 3) for phase in logs["energy_phase"])
    with open(tmp_path / "energy_phases.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    assert float(rows[-1]["energy_gap"]) == pytest.approx(logs["energy_gap"][-1])
    with open(csv_path) as handle:
        assert "energy_gap" in handle.readline()
    assert (tmp_path / "energy_phases.png").read_bytes()[:4] == PNG_MAGIC


def test_plain_keras_model_gets_a_clear_error(small):
    x, y, _, _ = small
    net = tiny_cnn()
    net.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    with pytest.raises(ValueError, match="energy_natural"):
        net.fit(
            x,
            y,
            epochs=1,
            verbose=0,
            callbacks=[kr.callbacks.EnergyPhaseLogger(verbose=0)],
        )


def synthetic_logs():
    """A curve with a plateau then a collapse, as epoch logs."""
    gaps = np.concatenate(
        [np.linspace(0, -0.2, 8), np.full(20, -0.2), np.linspace(-0.2, -0.8, 10)]
    )
    accuracy = np.concatenate([np.linspace(0.2, 0.5, 28), np.linspace(0.5, 0.4, 10)])
    return [
        {
            "energy_natural": -5.0 + gap,
            "energy_adversarial": -5.0,
            "val_adv_accuracy": acc,
        }
        for gap, acc in zip(gaps, accuracy)
    ]


class FakeModel:
    """Stands in for a model: weights are just the epoch they were set at."""

    def __init__(self):
        self.stop_training = False
        self.epoch = 0

    def get_weights(self):
        return [self.epoch]

    def set_weights(self, weights):
        self.epoch = weights[0]


@pytest.mark.parametrize("action", ["warn", "stop", "restore_best"])
def test_phase_three_warns_once_and_acts(action):
    logger = kr.callbacks.EnergyPhaseLogger(on_phase3=action, verbose=0)
    model = FakeModel()
    logger.set_model(model)
    logger.on_train_begin()
    with pytest.warns(UserWarning, match="phase 3") as caught:
        for epoch, logs in enumerate(synthetic_logs()):
            model.epoch = epoch
            logger.on_epoch_end(epoch, dict(logs))
            if model.stop_training:
                break
    assert len([w for w in caught if "phase 3" in str(w.message)]) == 1
    assert logger.phase3_epoch is not None and logger.phase3_epoch >= 28
    assert model.stop_training == (action != "warn")
    logger.on_train_end()
    if action == "restore_best":
        assert model.epoch == 27  # the epoch with the best val_adv_accuracy


def test_short_histories_and_empty_plot(tmp_path):
    logger = kr.callbacks.EnergyPhaseLogger(log_dir=tmp_path, verbose=0)
    logger.set_model(FakeModel())
    logger.on_train_begin()
    logger.on_train_end()  # no epoch: nothing written, no crash
    assert not (tmp_path / "energy_phases.png").exists()
    logger.on_epoch_end(0, synthetic_logs()[0])
    logger.on_train_end()
    assert (tmp_path / "energy_phases.png").read_bytes()[:4] == PNG_MAGIC
    assert kr.callbacks.plot_energy_phases([]) is not None


def test_bad_arguments():
    with pytest.raises(ValueError, match="on_phase3"):
        kr.callbacks.EnergyPhaseLogger(on_phase3="panic")
    with pytest.raises(TypeError, match="rule"):
        kr.callbacks.EnergyPhaseLogger(rule=3)
    with pytest.raises(TypeError, match="attack"):
        kr.callbacks.EnergyPhaseLogger(attack="pgd")
    logger = kr.callbacks.EnergyPhaseLogger(rule={"window": 3})
    assert logger.rule.window == 3


def test_plotting_without_matplotlib_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        kr.callbacks.plot_energy_phases([])


def test_missing_matplotlib_at_train_end_only_warns(tmp_path, monkeypatch):
    import sys

    logger = kr.callbacks.EnergyPhaseLogger(log_dir=tmp_path, verbose=0)
    logger.set_model(FakeModel())
    logger.on_train_begin()
    logger.on_epoch_end(0, synthetic_logs()[0])
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.warns(UserWarning, match="pip install matplotlib"):
        logger.on_train_end()
    assert (tmp_path / "energy_phases.csv").exists()
