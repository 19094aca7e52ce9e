"""Runs a benchmark's worker in a fresh process per backend.

Keras fixes its backend at import, so a table that compares backends has
its parent process start one worker per configuration and read the JSON
line the worker prints last.
"""

import json
import os
import subprocess
import sys
import time


def run_worker(script, backend, arguments, error_chars=300, python=None):
    """(result dict, None) from `script --worker ...` on `backend`, or (None, error).

    The error is the last `error_chars` characters of the worker's stderr.
    `python` is the interpreter (default: this one; gpu_check.sh gives each
    framework its own environment).
    """
    environment = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    completed = subprocess.run(
        [python or sys.executable, script, "--worker", *arguments],
        env=environment,
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        return None, completed.stderr.strip()[-error_chars:]
    return json.loads(completed.stdout.strip().splitlines()[-1]), None


def jit_configurations(backends):
    """(backend, jit) pairs: every backend's default, plus XLA on TensorFlow.

    "auto" is what a user gets (TensorFlow: a graph on CPU; JAX: XLA); the
    extra TensorFlow row shows what forcing XLA costs.
    """
    configurations = []
    for backend in backends:
        configurations.append((backend, "auto"))
        if backend == "tensorflow":
            configurations.append((backend, "true"))
    return configurations


def print_header(header):
    print(header)
    print("-" * len(header))


def timed_fit(model, x, y, batch_size, epochs, callbacks=()):
    """Fits without shuffling; returns each epoch's wall time in seconds.

    `callbacks` run after the timer's `on_epoch_begin`, inside the timing.
    """
    import keras

    times = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[EpochTimer(), *callbacks],
    )
    return times
