"""Keras' own BackupAndRestore resumes a keras_robust model exactly (item 8).

The seed states of the model (the attack's random starts) are saved with its
weights, so a TRADES run SIGKILLed mid-epoch and resumed with
`keras.callbacks.BackupAndRestore` ends where the uninterrupted run ends.
Where Keras' callback cannot be exact (the global RNG that shuffles arrays
on JAX and PyTorch), `fit` warns once and names kr.callbacks.BackupAndRestore.
"""

import signal
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.conftest import BACKEND
from tests.helpers import quick_compile_environment
from tests.helpers import run_module
from tests.test_resume import _load

ROOT = Path(__file__).resolve().parents[1]
WORKER = "tests.keras_backup_worker"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("keras_backup")
    # Both processes alike: less XLA optimisation, one JAX compilation cache.
    env = quick_compile_environment(
        jax_cache_dir=out / "jax_cache", KERAS_BACKEND=BACKEND, PYTHONPATH=str(ROOT)
    )

    def run(*args):
        return run_module(WORKER, *args, env=env)

    first = run("interrupt", out)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    second = run("resume", out)
    assert second.returncode == 0, second.stderr[-3000:]
    return out


def test_sigkilled_trades_resumes_exactly_with_keras_backup(runs):
    reference, _ = _load(runs / "reference")
    resumed, _ = _load(runs / "resumed")
    assert reference.keys() == resumed.keys()
    assert any(key.startswith("seed/") for key in reference)
    for key in reference:
        np.testing.assert_array_equal(resumed[key], reference[key], err_msg=key)


def _tiny_trades():
    classifier = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    model = kr.models.TRADES(classifier, epsilon=0.1, steps=1)
    model.compile(optimizer="sgd")
    return model


def test_weights_file_carries_the_seed_states(tmp_path):
    model = _tiny_trades()
    model.build((None, 8, 8, 1))
    model.seed_generator.state.assign(np.array([11, 5], "uint32"))
    model.save_weights(tmp_path / "w.weights.h5")
    other = _tiny_trades()
    other.build((None, 8, 8, 1))
    other.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(other.seed_generator.state), [11, 5]
    )


def test_keras_backup_warns_once_where_it_cannot_be_exact(digits, tmp_path):
    (x, y), _ = digits
    x, y = x[:16], y[:16]
    model = _tiny_trades()
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "keras"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[backup])
    messages = [str(w.message) for w in caught if "BackupAndRestore" in str(w.message)]
    assert len(messages) == (0 if BACKEND == "tensorflow" else 1)
    assert all("kr.callbacks.BackupAndRestore" in m for m in messages)
    ours = kr.callbacks.BackupAndRestore(tmp_path / "ours")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _tiny_trades().fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[ours])
    assert not [
        w for w in caught if "keras.callbacks.BackupAndRestore" in str(w.message)
    ]
