"""Small models and conversions shared by the tests."""

import keras
import numpy as np

import keras_robust as kr

# `jit_compile` for `fit` tests that check a step compiles: XLA on TensorFlow
# and JAX. On PyTorch, `torch.compile` costs minutes per model on a CPU, so
# those tests run Keras' eager default there; `torch.compile` of the robust
# step is checked once, in tests/models/test_robust_model.py.
FIT_JIT_COMPILE = "auto" if kr.backend.BACKEND == "torch" else True


def tiny_cnn(num_classes=10, input_shape=(8, 8, 1), **kwargs):
    kwargs.setdefault("filters", (16, 32))
    kwargs.setdefault("dense_units", 64)
    return kr.architectures.SmallCNN(num_classes, input_shape, **kwargs)


class SubclassedDense(keras.Model):
    """A subclassed (not functional) model: one Dense(2, relu) layer."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2, activation="relu")

    def call(self, x):
        return self.dense(x)


class Batches(keras.utils.PyDataset):
    """A `PyDataset` over a list of ready batches (tuples), in order."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        return self.batches[index]


def linear_classifier(weights, bias):
    """Dense logits model f(x) = x W + b with the given numpy weights."""
    inputs = keras.Input((weights.shape[0],))
    layer = keras.layers.Dense(weights.shape[1])
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([weights.astype("float32"), bias.astype("float32")])
    return model


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def linear_binary_problem(norm):
    """A 2-class linear model, its data and the epsilon that leaves half robust.

    Returns (model, x, y, margins, epsilon): `margins` are the exact
    distances to the decision boundary in `norm`. For L-inf and L2 the box
    never binds (|w.x + b| / ||w||_dual); for L1 it can, and they come from
    SciPy's linear program (`min_l1_distances`).
    """
    rng = np.random.default_rng(1)
    w = rng.normal(size=6).astype("float32")
    x = rng.uniform(0.3, 0.7, size=(400, 6)).astype("float32")
    b = -float(np.median(x @ w))
    model = linear_classifier(np.stack([np.zeros(6), w], 1), np.array([0.0, b]))
    score = x @ w + b
    if norm == "l1":
        margins = min_l1_distances(x, w, score)
    else:
        dual = np.abs(w).sum() if norm == "linf" else np.linalg.norm(w)
        margins = np.abs(score) / dual
    ranked = np.sort(margins)
    epsilon = float(ranked[200] + ranked[201]) / 2
    return model, x, (score > 0).astype("int32"), margins, epsilon


def min_l1_distances(points, w, values, clip_min=0.0, clip_max=1.0):
    """min ||d||_1 s.t. w . d = -value, point + d in the box, per point.

    A linear program in (d+, d-) >= 0 solved by SciPy's HiGHS: code of
    nobody here, against which the L1 attacks' greedy steps are checked.
    """
    from scipy.optimize import linprog

    points, w = np.asarray(points, "float64"), np.asarray(w, "float64")
    distances = []
    for point, value in zip(points, np.asarray(values, "float64")):
        result = linprog(
            np.ones(2 * len(point)),
            A_eq=np.concatenate([w, -w])[None, :],
            b_eq=[-value],
            bounds=[(0, clip_max - p) for p in point]
            + [(0, p - clip_min) for p in point],
            method="highs",
        )
        assert result.success, result.message
        distances.append(result.fun)
    return np.array(distances)


def quick_compile_environment(base=None, jax_cache_dir=None, **overrides):
    """Environment for a test subprocess whose time is mostly XLA compiles.

    Speed only, for plumbing runs (tiny models, a few steps): XLA optimises
    less (`--xla_backend_optimization_level=0` halves compile time, the bulk
    of such runs), and with `jax_cache_dir` JAX keeps every compiled program
    in a persistent cache that later processes of the test load instead of
    compiling again. Processes compared with each other must all use it.
    TensorFlow runs without XLA on CPU and PyTorch eagerly: they ignore it.
    """
    import os

    env = dict(os.environ if base is None else base)
    env["XLA_FLAGS"] = " ".join(
        [env.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0"]
    ).strip()
    if jax_cache_dir is not None:
        env.update(
            JAX_COMPILATION_CACHE_DIR=str(jax_cache_dir),
            JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
            JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
        )
    env.update(overrides)
    return env


def run_module(module, *args, env):
    """Runs `python -m module args...` from the repository root, captured.

    The worker processes of the kill-and-resume tests: a fresh interpreter
    each, as a restarted job is.
    """
    import subprocess
    import sys
    from pathlib import Path

    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
