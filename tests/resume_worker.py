"""Trains every method with `kr.callbacks.BackupAndRestore`, for test_resume.py.

Run in a fresh process, once per phase, with the KERAS_BACKEND of the test:

    python -m tests.resume_worker interrupt OUT KILLED_METHOD
    python -m tests.resume_worker resume OUT

`interrupt`: for each method, an uninterrupted reference run (its final
state saved to OUT/<method>/reference.*), then, from the same initial state
and with the same compiled step, a run that stops at batch KILL_BATCH of epoch
KILL_EPOCH: by an exception for all methods but KILLED_METHOD, which runs
last and SIGKILLs this process there. Either way the backup in
OUT/<method>/backup is what a killed job leaves behind.

`resume`: for each method, a fresh model (as a restarted job builds it)
fits again with the same backup directory; its final state is saved to
OUT/<method>/resumed.*. Then, for reproducibility, each method is built
again from `keras.utils.set_random_seed(SEED)` in this other process and
trained from that initial state (OUT/<method>/rerun.*), and AT from another
seed (OUT/AT/other_seed.*).
"""

import json
import os
import signal
import sys
from pathlib import Path

import keras
import numpy as np

import keras_robust as kr

EPOCHS = 3
BATCH_SIZE = 16
TRAIN_SIZE = 64  # 4 batches per epoch
KILL_EPOCH, KILL_BATCH = 1, 1  # after the 2nd batch of the 2nd epoch
SEED = 7

# Every method exported by kr.models, with a cheap training attack.
METHODS = {
    "AT": dict(steps=2),
    "DyART": dict(search_steps=2, burn_in_epochs=1, lam=10.0),
    "FastAT": dict(),
    "MART": dict(steps=2),
    "SCORE": dict(steps=2),
    "TRADES": dict(steps=2),
    "WEAT": dict(steps=2),
}


class Interrupt(Exception):
    pass


class StopAt(keras.callbacks.Callback):
    """Stops training after batch `batch` of epoch `epoch`: raise or SIGKILL."""

    def __init__(self, epoch, batch, kill, marker):
        super().__init__()
        self.stop_epoch, self.stop_batch, self.kill = epoch, batch, kill
        self.marker = marker
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) != (self.stop_epoch, self.stop_batch):
            return
        self.marker.write_text(json.dumps({"epoch": self.epoch, "batch": batch}))
        if self.kill:
            os.kill(os.getpid(), signal.SIGKILL)
        raise Interrupt()


class EpochsRun(keras.callbacks.Callback):
    """The epochs this `fit` call actually trains."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def data():
    (x, y), _ = kr.datasets.load_digits()
    return x[:TRAIN_SIZE], y[:TRAIN_SIZE]


def build(method, seed=SEED):
    """The method around a small classifier with BatchNorm and Dropout."""
    keras.backend.clear_session()  # the same layer names in every process
    keras.utils.set_random_seed(seed)
    classifier = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10),
        ]
    )
    model = getattr(kr.models, method)(classifier, epsilon=0.1, **METHODS[method])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    model.build((None, 8, 8, 1))
    return model


def fit(model, backup_dir, *extra_callbacks, seed=SEED):
    x, y = data()
    counter = EpochsRun()
    history = model.fit(
        x,
        y,
        batch_size=BATCH_SIZE,
        epochs=EPOCHS,
        shuffle=True,
        verbose=0,
        callbacks=[
            # Before the backup's restore: every run starts its epochs from
            # the same RNG states (at train begin, after Keras' first-fit
            # build, which draws a shuffle only for a model never fit), and a
            # resumed one then restores NumPy's (JAX's shuffles) and torch's
            # (PyTorch's shuffles and Dropout masks) from the backup.
            keras.callbacks.LambdaCallback(
                on_train_begin=lambda logs: keras.utils.set_random_seed(seed)
            ),
            kr.callbacks.BackupAndRestore(backup_dir),
            counter,
            *extra_callbacks,
        ],
    )
    return history, counter.epochs


def save(model, history, epochs_run, prefix):
    """Weights, optimizer variables, seed states and history of `model`."""
    weights = model.weights
    ids = {id(v) for v in weights}
    arrays = {}
    for group, variables in (
        ("weight", weights),
        ("optimizer", model.optimizer.variables),
        ("seed", [v for v in model.variables if id(v) not in ids]),
    ):
        for i, v in enumerate(variables):
            arrays[f"{group}/{i}/{v.path}"] = keras.ops.convert_to_numpy(v)
    np.savez(f"{prefix}.npz", **arrays)
    record = {
        "history": history.history,
        "history_epochs": history.epoch,
        "epochs_run": epochs_run,
    }
    Path(f"{prefix}.json").write_text(json.dumps(record))


def _run_variables(model):
    """What a run starts from: the model's variables (weights, BatchNorm
    statistics, seed states) and the optimizer's; `fit` resets the metrics."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return model.variables + model.optimizer.variables


def start_state(model):
    """The values of `model`'s run variables, as numpy arrays."""
    return [keras.ops.convert_to_numpy(v) for v in _run_variables(model)]


def restart(model, state):
    """Puts `model` back to `state` (`start_state`), keeping its compiled
    step: a fresh model would compile (trace) the same step once more."""
    for variable, value in zip(_run_variables(model), state, strict=True):
        variable.assign(value)


def interrupt(out, killed):
    # The killed method must come last: nothing runs after the SIGKILL.
    for method in [m for m in METHODS if m != killed] + [killed]:
        folder = out / method
        folder.mkdir(parents=True, exist_ok=True)
        model = build(method)
        initial = start_state(model)
        history, epochs_run = fit(model, folder / "reference_backup")
        save(model, history, epochs_run, folder / "reference")
        restart(model, initial)  # the same start again
        stop = StopAt(KILL_EPOCH, KILL_BATCH, method == killed, folder / "stopped")
        try:
            fit(model, folder / "backup", stop)
        except Interrupt:
            pass
        else:
            raise AssertionError(f"{method}: training was not interrupted")


def resume(out):
    """Resumes every method; also reruns it whole (`rerun`: reproducibility),
    and AT with another seed (`other_seed`: the control)."""
    for method in METHODS:
        folder = out / method
        model = build(method)
        history, epochs_run = fit(model, folder / "backup")
        save(model, history, epochs_run, folder / "resumed")
        # A fresh seeded build gives the initial values; `model` trains from
        # them with the step it compiled (and the same variable paths: every
        # build starts from clear_session()). This later `fit` of a resumed
        # model must also train every epoch again.
        restart(model, start_state(build(method)))
        history, epochs_run = fit(model, folder / "rerun_backup")
        save(model, history, epochs_run, folder / "rerun")
        if method == "AT":
            restart(model, start_state(build(method, seed=SEED + 1)))
            history, epochs_run = fit(model, folder / "other_backup", seed=SEED + 1)
            save(model, history, epochs_run, folder / "other_seed")


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "interrupt":
        interrupt(out, sys.argv[3])
    elif mode == "resume":
        resume(out)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
