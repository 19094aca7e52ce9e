"""TRADES with Keras' own `keras.callbacks.BackupAndRestore`, for
test_keras_backup_resume.py (issue 22, item 8). Run once per phase:

    python -m tests.keras_backup_worker interrupt OUT
    python -m tests.keras_backup_worker resume OUT

`interrupt`: an uninterrupted reference run (OUT/reference.*), then the same
start again, SIGKILLed after batch KILL_BATCH of epoch KILL_EPOCH (the
harness of tests/resume_worker.py). `resume`: a fresh model fits again with
the same backup directory (OUT/resumed.*). `shuffle=False` and no Dropout:
Keras' callback cannot restore the global RNG that shuffles (JAX, PyTorch)
or draws unseeded Dropout masks (PyTorch); the attack's random starts are
what it must restore.
"""

import sys
from pathlib import Path

import keras

import keras_robust as kr
from tests.resume_worker import BATCH_SIZE
from tests.resume_worker import EPOCHS
from tests.resume_worker import KILL_BATCH
from tests.resume_worker import KILL_EPOCH
from tests.resume_worker import SEED
from tests.resume_worker import StopAt
from tests.resume_worker import data
from tests.resume_worker import restart
from tests.resume_worker import save
from tests.resume_worker import start_state


def build():
    keras.backend.clear_session()  # the same layer names in every process
    keras.utils.set_random_seed(SEED)
    classifier = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model = kr.models.TRADES(classifier, epsilon=0.1, steps=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.build((None, 8, 8, 1))
    return model


def fit(model, backup_dir, *extra_callbacks):
    x, y = data()
    history = model.fit(
        x,
        y,
        batch_size=BATCH_SIZE,
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        callbacks=[
            keras.callbacks.LambdaCallback(
                on_train_begin=lambda logs: keras.utils.set_random_seed(SEED)
            ),
            keras.callbacks.BackupAndRestore(str(backup_dir)),
            *extra_callbacks,
        ],
    )
    return history


def interrupt(out):
    model = build()
    initial = start_state(model)
    save(model, fit(model, out / "reference_backup"), [], out / "reference")
    restart(model, initial)
    fit(model, out / "backup", StopAt(KILL_EPOCH, KILL_BATCH, True, out / "stopped"))
    raise AssertionError("training was not killed")


def resume(out):
    model = build()
    save(model, fit(model, out / "backup"), [], out / "resumed")


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    {"interrupt": interrupt, "resume": resume}[mode](out)
