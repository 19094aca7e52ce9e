"""Starts `tests/distribution/worker.py` processes and collects their reports."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 300  # seconds, for all the processes of a test module together
# Two devices and one must agree to float32 rounding (measured: 1.2e-7 of the
# largest weight at most); a wrong loss scaling would be off by a factor 2.
RTOL, ATOL = 1e-5, 1e-6


def environment(backend, base=None, **extra):
    base = os.environ if base is None else base
    env = {k: v for k, v in base.items() if k != "TF_CONFIG"}
    env.update(KERAS_BACKEND=backend, PYTHONPATH=str(ROOT), **extra)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("localhost", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def run_workers(jobs, env):
    """Runs `worker.py` once per (mode, out, *args) job, all at once.

    Returns the JSON reports, in order. If one process fails the others are
    stopped (a multi-worker peer would otherwise wait for it until timeout).
    """
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.distribution.worker", *map(str, job)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for job in jobs
    ]
    deadline = time.monotonic() + TIMEOUT
    failed = None
    try:
        while any(p.poll() is None for p in processes):
            failed = next((p for p in processes if p.poll() not in (None, 0)), None)
            if failed is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        outputs = [process.communicate()[0] for process in processes]
    for job, process, output in zip(jobs, processes, outputs):
        assert process.returncode == 0, (
            f"worker {job[0]} {job[2:]} exited with {process.returncode}:\n"
            f"{output[-4000:]}"
        )
    return [json.loads(Path(job[1]).read_text()) for job in jobs]


def assert_same_training(distributed, single):
    """Loss history, every logged metric, evaluate logs and final weights."""
    assert distributed["history"].keys() == single["history"].keys()
    for name, values in single["history"].items():
        np.testing.assert_allclose(
            distributed["history"][name], values, rtol=RTOL, atol=ATOL, err_msg=name
        )
    # (Multi-worker runs evaluate AT only.)
    evaluated = single["evaluate"] if "evaluate" in distributed else {}
    for name, value in evaluated.items():
        np.testing.assert_allclose(
            distributed["evaluate"][name], value, rtol=RTOL, atol=ATOL, err_msg=name
        )
    assert len(distributed["weights"]) == len(single["weights"])
    scale = max(np.abs(np.asarray(w)).max() for w in single["weights"])
    for got, expected in zip(distributed["weights"], single["weights"]):
        np.testing.assert_allclose(got, expected, rtol=0, atol=RTOL * scale)


def assert_skipped_everywhere(report):
    """A NaN in one replica's slice skipped the global batch on every replica."""
    assert report["same_state_as_without_the_batch"]
    assert report["all_finite"]
    history = dict(report["history"])
    reference = dict(report["reference_history"])
    assert history.pop("skipped_batches") == [1.0]
    assert reference.pop("skipped_batches") == [0.0]
    assert history == reference
    evaluation = dict(report["evaluate"])
    reference = dict(report["reference_evaluate"])
    assert evaluation.pop("skipped_batches") == 1.0
    assert reference.pop("skipped_batches") == 0.0
    assert evaluation == reference
    if "raise_policy_error" in report:  # checked where it is cheap
        error = report["raise_policy_error"]
        assert error is not None and "training batch 1 of epoch 1 contains NaN" in error
