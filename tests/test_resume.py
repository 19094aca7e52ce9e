"""Resumption: a run SIGKILLed mid-epoch and restarted ends as if never stopped.

`tests/resume_worker.py` trains every method in two real processes: the first
runs each method uninterrupted (the reference) and again up to a stop in the
middle of epoch 1, the last method by SIGKILL; the second, a fresh process,
resumes every method from its backup. Weights, optimizer variables, seed
states and history must match the reference bit for bit (CPU kernels are
deterministic for a given thread count, the same in both processes; nothing
here needs `enable_op_determinism` or `torch.use_deterministic_algorithms`).
"""

import json
import signal
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests import resume_worker as worker
from tests.conftest import BACKEND
from tests.helpers import quick_compile_environment
from tests.helpers import run_module

ROOT = Path(__file__).resolve().parents[1]
KILLED = "WEAT"


def _run_worker(*args, env):
    return run_module("tests.resume_worker", *args, env=env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume")
    # The resumed process loads the steps the first one compiled from a
    # persistent cache (JAX), both processes alike.
    env = quick_compile_environment(
        jax_cache_dir=out / "jax_cache", KERAS_BACKEND=BACKEND, PYTHONPATH=str(ROOT)
    )
    first = _run_worker("interrupt", out, KILLED, env=env)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    for method in worker.METHODS:
        stopped = json.loads((out / method / "stopped").read_text())
        assert stopped == {"epoch": worker.KILL_EPOCH, "batch": worker.KILL_BATCH}
        backup = out / method / "backup"
        assert (backup / "latest.weights.h5").exists(), method
        assert (backup / "robust_state.json").exists(), method
    second = _run_worker("resume", out, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    return out


def test_worker_covers_every_method():
    # AWP is an option of the methods (awp=), not a method of its own.
    assert set(worker.METHODS) == set(kr.models.__all__) - {"RobustModel", "AWP"}
    assert KILLED in worker.METHODS


def _load(prefix):
    with np.load(f"{prefix}.npz") as arrays:
        state = {key: arrays[key] for key in arrays.files}
    return state, json.loads(Path(f"{prefix}.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(worker.METHODS))
def test_killed_and_resumed_run_ends_as_an_uninterrupted_one(runs, method):
    reference, reference_record = _load(runs / method / "reference")
    resumed, resumed_record = _load(runs / method / "resumed")

    # The restarted process trained only the epochs left.
    assert reference_record["epochs_run"] == [0, 1, 2]
    assert resumed_record["epochs_run"] == [worker.KILL_EPOCH, 2]
    assert not (runs / method / "backup").exists()  # deleted once fit completes

    assert sorted(resumed) == sorted(reference)
    groups = {key.split("/")[0] for key in reference}
    assert groups == {"weight", "optimizer", "seed"}
    assert any("iteration" in key for key in reference)
    for key in reference:
        np.testing.assert_array_equal(resumed[key], reference[key], err_msg=key)

    assert resumed_record["history_epochs"] == [0, 1, 2]
    history, expected = resumed_record["history"], reference_record["history"]
    assert sorted(history) == sorted(expected)
    assert {"loss", "accuracy", "adv_accuracy"} <= set(expected)
    for key in expected:
        np.testing.assert_array_equal(history[key], expected[key], err_msg=key)


def _assert_same_run(prefix, reference_prefix):
    state, record = _load(prefix)
    reference, reference_record = _load(reference_prefix)
    assert sorted(state) == sorted(reference)
    for key in reference:
        np.testing.assert_array_equal(state[key], reference[key], err_msg=key)
    assert record["history"] == reference_record["history"]


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(worker.METHODS))
def test_a_seeded_fit_is_bit_identical_in_another_process(runs, method):
    # keras.utils.set_random_seed(SEED) before building and before fit (with
    # shuffling, Dropout and random attack starts): the same weights,
    # optimizer, seeds and history in the second process as in the first.
    _assert_same_run(runs / method / "rerun", runs / method / "reference")


def test_another_seed_gives_another_run(runs):
    # The control of the test above: the seed does reach the run.
    with pytest.raises(AssertionError):
        _assert_same_run(runs / "AT" / "other_seed", runs / "AT" / "reference")


# ---- the callback itself, in-process on a plain Keras model ----------------


def _dropout_model():
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dropout(0.5), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    return model


class _Stop(keras.callbacks.Callback):
    """Raises after batch `batch` of epoch `epoch`, or at its end (`batch=None`)."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch, logs=None):
        if (epoch, None) == self.at:
            raise KeyboardInterrupt


def _regression_data():
    x = np.linspace(0, 1, 64, dtype="float32").reshape(16, 4)
    return x, x.sum(axis=1, keepdims=True)


def _fit(backup, stop=None):
    """(final seed state, history, final weights) of 3 epochs of 4 batches,
    or None when `stop=(epoch, batch)` interrupted it."""
    x, y = _regression_data()
    model = _dropout_model()
    callbacks = [backup] + ([_Stop(*stop)] if stop else [])
    try:
        history = model.fit(
            x, y, batch_size=4, epochs=3, shuffle=False, verbose=0, callbacks=callbacks
        )
    except KeyboardInterrupt:
        return None
    seed = [v for v in model.variables if "seed" in v.path]
    return (
        keras.ops.convert_to_numpy(seed[0].value),
        history.history,
        [keras.ops.convert_to_numpy(w) for w in model.weights],
    )


def _assert_same(actual, expected):
    seed, history, weights = actual
    np.testing.assert_array_equal(seed, expected[0])
    assert history == expected[1]
    for value, wanted in zip(weights, expected[2]):
        np.testing.assert_array_equal(value, wanted)


def test_keras_callback_alone_loses_seed_state_and_history(tmp_path):
    expected = _fit(kr.callbacks.BackupAndRestore(tmp_path / "reference"))
    keras_backup = keras.callbacks.BackupAndRestore(tmp_path / "keras")
    assert _fit(keras_backup, stop=(1, 2)) is None
    seed, history, weights = _fit(keras.callbacks.BackupAndRestore(tmp_path / "keras"))
    # Other Dropout masks after the restart, so other weights. TensorFlow and
    # JAX draw them from the Dropout's SeedGenerator, whose state Keras does
    # not restore; PyTorch draws those of a Dropout without `seed` from
    # torch's global RNG (the SeedGenerator's state never moves there), which
    # Keras does not restore either.
    assert not all(map(np.array_equal, weights, expected[2]))
    if BACKEND != "torch":
        assert not np.array_equal(seed, expected[0])
    assert len(history["loss"]) == 2  # and the first epoch is missing

    assert _fit(kr.callbacks.BackupAndRestore(tmp_path / "kr"), stop=(1, 2)) is None
    _assert_same(_fit(kr.callbacks.BackupAndRestore(tmp_path / "kr")), expected)


def test_a_later_fit_of_a_resumed_model_trains_every_epoch(tmp_path):
    # Keras' callback resumes through `model._initial_epoch` and leaves it
    # set: without clearing it, the later fits below would start at epoch 1.
    x, y = _regression_data()
    model = _dropout_model()
    run = dict(batch_size=4, epochs=3, shuffle=False, verbose=0)
    backup = tmp_path / "kr"
    with pytest.raises(KeyboardInterrupt):
        model.fit(
            x, y, callbacks=[kr.callbacks.BackupAndRestore(backup), _Stop(1, 2)], **run
        )
    counter = worker.EpochsRun()
    model.fit(x, y, callbacks=[kr.callbacks.BackupAndRestore(backup), counter], **run)
    assert counter.epochs == [1, 2]  # resumed
    counter = worker.EpochsRun()
    model.fit(x, y, callbacks=[counter], **run)
    assert counter.epochs == [0, 1, 2]
    counter = worker.EpochsRun()
    model.fit(x, y, callbacks=[counter], initial_epoch=2, **run)
    assert counter.epochs == [2]


def test_restart_after_the_last_checkpoint_trains_nothing_and_keeps_history(
    tmp_path,
):
    # Killed after the last epoch's backup, before `fit` deleted it.
    expected = _fit(kr.callbacks.BackupAndRestore(tmp_path / "reference"))
    assert _fit(kr.callbacks.BackupAndRestore(tmp_path / "kr"), stop=(2, None)) is None
    _assert_same(_fit(kr.callbacks.BackupAndRestore(tmp_path / "kr")), expected)


def test_unreadable_checkpoint_falls_back_to_the_previous_one_exactly(tmp_path):
    expected = _fit(kr.callbacks.BackupAndRestore(tmp_path / "reference"))
    backup = tmp_path / "kr"
    stopped = _fit(
        kr.callbacks.BackupAndRestore(backup, double_checkpoint=True), (2, 1)
    )
    assert stopped is None
    weights = backup / "latest.weights.h5"
    weights.write_bytes(weights.read_bytes()[:100])  # a torn write
    # Keras restores the previous (epoch 0) weights; the seeds and history
    # saved with them follow.
    again = _fit(kr.callbacks.BackupAndRestore(backup, double_checkpoint=True))
    _assert_same(again, expected)


def test_checkpoint_without_matching_state_warns(tmp_path):
    backup = tmp_path / "backup"
    assert _fit(kr.callbacks.BackupAndRestore(backup), stop=(1, 2)) is None
    (backup / "robust_state.json").unlink()
    with pytest.warns(UserWarning, match="no matching robust_state.json"):
        _fit(kr.callbacks.BackupAndRestore(backup))


def test_mid_epoch_checkpoint_warns_that_resumption_is_not_exact(tmp_path):
    backup = tmp_path / "backup"
    assert _fit(kr.callbacks.BackupAndRestore(backup, save_freq=2), stop=(1, 2)) is None
    with pytest.warns(UserWarning, match="after batch 1 of epoch 1"):
        _fit(kr.callbacks.BackupAndRestore(backup, save_freq=2))


def test_remote_backup_dir_is_rejected():
    with pytest.raises(ValueError, match="local `backup_dir`"):
        kr.callbacks.BackupAndRestore("gs://bucket/backup")
