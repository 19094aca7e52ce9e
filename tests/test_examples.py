"""The examples' smoke paths run end to end (in a subprocess, as users run them).

On TensorFlow only: an example is a script over library calls that the rest
of the suite tests on every backend (its `--backend` flag only sets
KERAS_BACKEND), and a smoke run is mostly compilation, 1.5-4 minutes per
example on JAX on 2 cores. `KERAS_ROBUST_SLOW_TESTS=1` runs them on any
backend.
"""

import os
import subprocess
import sys

import keras
import pytest

from tests.conftest import BACKEND

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow" and os.environ.get("KERAS_ROBUST_SLOW_TESTS") != "1",
    reason="example smoke runs: TensorFlow only, unless KERAS_ROBUST_SLOW_TESTS=1",
)


@pytest.mark.slow
def test_cifar10_weat_smoke_writes_every_output(tmp_path):
    out = tmp_path / "weat"
    completed = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "examples", "cifar10_weat.py"),
            "--smoke",
            "--backend",
            keras.backend.backend(),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"backend {keras.backend.backend()}" in completed.stdout
    for name in (
        "model.keras",
        "history.csv",
        "report.json",
        "energy_phases.png",
        "samples.png",
    ):
        assert (out / name).stat().st_size > 0, name


@pytest.mark.slow
def test_cifar10_sota_smoke_trains_and_evaluates(tmp_path):
    out = tmp_path / "sota"
    completed = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "examples", "cifar10_sota.py"),
            "--smoke",
            "--backend",
            keras.backend.backend(),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"backend {keras.backend.backend()}" in completed.stdout
    for name in ("model.keras", "history.csv", "report.json", "generated_smoke.npz"):
        assert (out / name).stat().st_size > 0, name
    loaded = keras.saving.load_model(out / "model.keras")
    assert loaded.label_smoothing == 0.1 and loaded.beta == 5.0
