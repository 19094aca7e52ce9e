"""Shared fixtures. The suite runs once per KERAS_BACKEND (see `make test`)."""

import collections
import gc
import os
import sys
import tempfile

# Set before Keras imports JAX. Identical programs (the same tiny model and
# step built by several tests, on either xdist worker) compile once per run:
# the controller creates the cache folder and its workers inherit it. Speed
# only: a cached executable is the very program a compile would produce.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ.update(
        JAX_COMPILATION_CACHE_DIR=tempfile.mkdtemp(prefix="keras-robust-jax-cache-"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
    )
# JAX's default "partitionable" threefry (jax_threefry_partitionable, the
# default since JAX 0.5) builds a larger random-bits program: every weight
# initializer of a new shape took 1.2-3 s to compile on a 2-core AMD EPYC,
# against 0.3-0.5 s with the classic one (a 10-layer WRN built in 15 s). Both
# are deterministic per seed; only the streams differ.
os.environ.setdefault("JAX_THREEFRY_PARTITIONABLE", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

import keras_robust as kr  # noqa: E402

BACKEND = keras.backend.backend()


def _share_the_cores_between_workers():
    """One PyTorch compute thread per core per xdist worker.

    PyTorch's eager ops each start as many threads as the machine has cores;
    with `make test`'s two workers on two cores they fought over them: on
    a 2-core AMD EPYC the Square and APGD tests took 66 s at the default,
    36 s with one thread per worker. (TensorFlow's and JAX's tests ran as
    fast with one thread as with two, so they keep their defaults.)
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if BACKEND == "torch" and workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


_share_the_cores_between_workers()


# PyTorch runs eagerly, op by op: the multi-epoch trainings marked `slow`
# take many times longer there than under TensorFlow's graphs and XLA, so
# `make test` runs them on TensorFlow and JAX, and on PyTorch only when
# KERAS_ROBUST_SLOW_TESTS=1 (what a change to backend/torch.py should run).
RUN_SLOW = BACKEND != "torch" or os.environ.get("KERAS_ROBUST_SLOW_TESTS") == "1"


def pytest_collection_modifyitems(config, items):
    if RUN_SLOW:
        return
    skip = pytest.mark.skip(
        reason="slow on PyTorch's eager backend; KERAS_ROBUST_SLOW_TESTS=1 runs it"
    )
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_itemcollected(item):
    """Keeps a module's tests on one xdist worker if they share a fixture.

    `make test` distributes single tests (`--dist loadgroup`), so that the
    slow trainings of one file run on both workers; a module- or
    class-scoped fixture (a trained run, subprocesses) would then be built
    once per worker, so the tests that use one stay together. (Marked here,
    at collection, before xdist reads the marks.)
    """
    definitions = getattr(item, "_fixtureinfo", None)
    if definitions is None:
        return
    scopes = {
        fixture.scope
        for fixtures in definitions.name2fixturedefs.values()
        for fixture in fixtures
    }
    if scopes & {"module", "class", "package"}:
        item.add_marker(pytest.mark.xdist_group(item.module.__name__))


# The interpreter's heap after importing TensorFlow, JAX and PyTorch is
# permanent: the collector need not walk it again on every pass.
gc.freeze()


# Without free_memory=False every test starts with a full garbage
# collection, whose cost grows with the heap: measured at a median 0.7 s per
# test late in the TensorFlow run (a third of the suite's time), and 639 s of
# the JAX run's 814 s of setup. Python's own generational collection still
# frees the cycles. (JAX kept it for a while for a "donated buffer" failure
# that turned out to be RobustModel.evaluate's own bug, fixed 2026-12-02.)
_FREE_MEMORY = False


@pytest.fixture(autouse=True)
def _fresh_session():
    keras.backend.clear_session(free_memory=_FREE_MEMORY)
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture(scope="session")
def digits():
    return kr.datasets.load_digits()


@pytest.fixture(scope="session", autouse=True)
def _shared_digits_models(tmp_path_factory, worker_id):
    """Trained digits models are shared by this run's xdist workers."""
    from tests import digits_training

    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent  # the run's folder, above each worker's own
    digits_training.set_cache_dir(root / "digits_models")
    yield
    digits_training.set_cache_dir(None)


# ---- case counts of the Hypothesis fuzzing (tests/fuzzing) ------------------
# Each xdist worker sends its counts to the controller, which prints the sum.

_FUZZ_COUNTS = {"CASES": collections.Counter(), "INVALID": collections.Counter()}


def _fuzz_counts():
    """{"CASES": ..., "INVALID": ...} of this process plus its workers'."""
    oracle = sys.modules.get("tests.fuzzing.oracle")
    local = {key: getattr(oracle, key, {}) for key in _FUZZ_COUNTS}
    return {
        key: counts + collections.Counter(local[key])
        for key, counts in _FUZZ_COUNTS.items()
    }


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["fuzz_counts"] = {k: dict(v) for k, v in _fuzz_counts().items()}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    received = getattr(node, "workeroutput", {}).get("fuzz_counts", {})
    for key, counts in received.items():
        _FUZZ_COUNTS[key].update(counts)


def pytest_terminal_summary(terminalreporter):
    counts = _fuzz_counts()
    cases, invalid = counts["CASES"], counts["INVALID"]
    if not cases:
        return
    terminalreporter.write_line(
        f"hypothesis fuzzing: {sum(cases.values())} cases "
        f"({sum(invalid.values())} invalid) over {len(cases)} targets "
        "(per target: cases/invalid)"
    )
    items = [f"{name} {n}/{invalid[name]}" for name, n in sorted(cases.items())]
    for start in range(0, len(items), 5):
        terminalreporter.write_line("  " + ", ".join(items[start : start + 5]))
