"""Array arguments (images, labels, logits, per-sample vectors) as `Arg`s.

`b` is the batch size and `k` the number of classes the call is about. The
first array of a call (`reference=True`) is only drawn bad in itself (wrong
type or rank); the others are also drawn bad relative to it (another batch
size or class count), so that each bad draw is bad whatever else is drawn.
"""

import functools

import keras
import numpy as np
from hypothesis import strategies as st

from tests.fuzzing.oracle import OMIT
from tests.fuzzing.oracle import Arg
from tests.fuzzing.oracle import seeded

IMAGE_SHAPE = (8, 8, 1)
NON_NUMERIC = (None, "x", {"a": 1})


@functools.cache
def classifier(num_classes=10):
    """A tiny logits model on 8x8x1 images."""
    return keras.Sequential(
        [
            keras.Input(IMAGE_SHAPE),
            keras.layers.Flatten(),
            keras.layers.Dense(num_classes),
        ]
    )


def _strings(shape):
    return np.full(shape, "a")


def _indices(rng, b, k):
    return rng.integers(0, k, b)


def images(b, low=0.0, high=1.0, shape=IMAGE_SHAPE, range_known=True):
    """Floating images in [low, high]; bad: integer dtypes, NaN and (when the
    callee knows the valid range) values outside it."""
    size = (b, *shape)

    def with_nan(rng):
        x = rng.uniform(low, high, size)
        x.flat[0] = np.nan
        return x

    good = st.one_of(
        seeded(lambda r: r.uniform(low, high, size).astype("float32")),
        seeded(lambda r: r.uniform(low, high, size)),
    )
    bad = [
        st.sampled_from([*NON_NUMERIC, _strings(size)]),
        seeded(lambda r: r.integers(0, 256, size).astype("uint8")),
        seeded(with_nan),
    ]
    if range_known:
        bad += [
            seeded(lambda r: r.uniform(high + 0.5, high + 2, size).astype("float32")),
            seeded(lambda r: r.uniform(low - 2, low - 0.5, size).astype("float32")),
        ]
    return Arg(good, st.one_of(bad))


def labels(b, k, batch=True):
    """Integer (b,), (b, 1) or one-hot/soft (b, k) labels of k classes
    (`batch`: the callee expects exactly b of them)."""

    def out_of_range(value):
        def make(rng):
            y = _indices(rng, b, k).astype(type(value))
            y[0] = value
            return y

        return seeded(make)

    def negative_one_hot(rng):
        y = np.eye(k, dtype="float32")[_indices(rng, b, k)]
        y[0, 0] = -1.0
        return y

    good = st.one_of(
        seeded(lambda r: _indices(r, b, k)),
        seeded(lambda r: _indices(r, b, k).astype("int32")),
        seeded(lambda r: _indices(r, b, k)[:, None]),
        seeded(lambda r: _indices(r, b, k).astype("float32")),
        seeded(lambda r: _indices(r, b, k).tolist()),
        seeded(lambda r: np.eye(k, dtype="float32")[_indices(r, b, k)]),
        seeded(lambda r: r.dirichlet(np.ones(k), b)),
    )
    bad = [
        st.sampled_from([*NON_NUMERIC, _strings(b)]),
        out_of_range(k),
        out_of_range(-1),
        out_of_range(np.nan),
        seeded(lambda r: _indices(r, b, k) + 0.5),
        seeded(lambda r: np.eye(k + 1, dtype="float32")[_indices(r, b, k)]),
        seeded(negative_one_hot),
    ]
    if batch:
        bad.append(seeded(lambda r: _indices(r, b + 1, k)))
    return Arg(good, st.one_of(bad))


def logits(b, k, reference=False):
    """(b, k) logits: float32/float64/integer arrays or nested lists."""
    good = st.one_of(
        seeded(lambda r: r.normal(0, 3, (b, k)).astype("float32")),
        seeded(lambda r: r.normal(0, 3, (b, k))),
        seeded(lambda r: r.integers(-5, 5, (b, k))),
        seeded(lambda r: r.normal(0, 3, (b, k)).tolist()),
    )
    shapes = [(k,), (b, k, 1), (b, 1), ()]
    if not reference:
        shapes += [(b + 1, k), (b, k + 1)]
    bad = st.one_of(
        st.sampled_from([*NON_NUMERIC, _strings((b, k))]),
        st.sampled_from(shapes).flatmap(lambda s: seeded(lambda r: r.normal(size=s))),
    )
    return Arg(good, bad)


def probabilities(b, k, reference=False):
    """(b, k) rows on the simplex."""
    good = seeded(lambda r: r.dirichlet(np.ones(k), b).astype("float32"))
    shapes = [()] if reference else [(), (b + 1, k), (b, k + 1)]
    bad = st.one_of(
        st.sampled_from([*NON_NUMERIC, _strings((b, k))]),
        st.sampled_from(shapes).flatmap(
            lambda s: seeded(lambda r: r.uniform(size=s).astype("float32"))
        ),
    )
    return Arg(good, bad)


def per_sample(b, reference=False, optional=False, low=0.0, high=1.0):
    """A (b,) vector of values in [low, high] (e.g. weights, radii, energies)."""
    good = seeded(lambda r: r.uniform(low, high, b).astype("float32"))
    if optional:
        good = st.one_of(st.just(OMIT), st.none(), good)
    bad = [*NON_NUMERIC[1:], _strings(b)] + ([] if optional else [None])
    bad = st.sampled_from(bad)
    if not reference:
        bad = st.one_of(bad, seeded(lambda r: r.uniform(low, high, b + 1)))
    return Arg(good, bad)
