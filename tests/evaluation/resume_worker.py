"""Runs `evaluate_robustness` with a `state_path`, for test_resumable_evaluation.py.

Run in a fresh process, once per phase, with the KERAS_BACKEND of the test:

    python -m tests.evaluation.resume_worker interrupt OUT
    python -m tests.evaluation.resume_worker resume OUT

`interrupt`: an uninterrupted evaluation (its report in OUT/reference.json),
then the same evaluation with `state_path=OUT/state.json`, which this process
SIGKILLs right after the state of batch KILL_AFTER is on disk.

`resume`: the same call again, in this fresh process (OUT/resumed.json).
"""

import os
import signal
import sys
from pathlib import Path

import keras
import numpy as np

import keras_robust as kr
from keras_robust.evaluation import state as state_lib

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "tests" / "data" / "trades_smallcnn_v0_1_0.keras"
EPSILON = 0.1
EXAMPLES = 96
BATCH_SIZE = 32  # 3 batches
KILL_AFTER = 2  # finished batches when the process is killed


def attacks():
    """A cascade with random starts, targets and a random search."""
    return [
        kr.attacks.APGD(EPSILON, steps=5, restarts=2, seed=1),
        kr.attacks.APGD(EPSILON, steps=5, loss="dlr", targets=2, seed=2),
        kr.attacks.Square(EPSILON, queries=40, seed=3),
    ]


def evaluate(state_path=None):
    classifier = keras.saving.load_model(MODEL).classifier
    _, (x, y) = kr.datasets.load_digits()
    return kr.evaluation.evaluate_robustness(
        classifier,
        x[:EXAMPLES],
        y[:EXAMPLES],
        epsilon=EPSILON,
        attacks=attacks(),
        batch_size=BATCH_SIZE,
        verbose=1,
        state_path=state_path,
    )


def kill_after(batches):
    """Makes this process SIGKILL itself once `batches` batches are saved."""
    record = state_lib.EvaluationState.record

    def record_then_kill(self, *args, **kwargs):
        record(self, *args, **kwargs)
        if self.finished == batches:
            os.kill(os.getpid(), signal.SIGKILL)

    state_lib.EvaluationState.record = record_then_kill


def main(phase, out):
    out = Path(out)
    if phase == "interrupt":
        evaluate().to_json(out / "reference.json")
        kill_after(KILL_AFTER)
        evaluate(out / "state.json")
        raise AssertionError("the evaluation ended instead of being killed")
    if phase == "resume":
        evaluate(out / "state.json").to_json(out / "resumed.json")
        return
    raise SystemExit(f"unknown phase {phase!r}")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main(*sys.argv[1:])
