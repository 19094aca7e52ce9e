"""Argument strategies with a validity oracle, and the check every fuzz test makes.

Each argument is an `Arg(good, bad)`: two Hypothesis strategies drawing
values that the documented contract accepts and rejects (`bad` None: the
argument has no invalid values worth drawing). `arguments(spec)` draws a
keyword dict in which zero, one or two arguments are drawn bad (omitted
arguments take their defaults) and returns it with the set of bad names;
`check(target, call, bad)` then asserts that a valid call runs and that an
invalid one raises a ValueError or TypeError whose message names one of the
bad arguments in backticks (any other exception type fails the test).
`CASES` and `INVALID` count the cases per target; tests/conftest.py prints
the totals.
"""

import collections
import re

import numpy as np
import pytest
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st

CASES = collections.Counter()  # cases tried per target
INVALID = collections.Counter()  # of which invalid
OMIT = object()  # an argument left out: its default applies
NAN, INF = float("nan"), float("inf")
JUNK = ("0.5", [0.5], {"a": 1}, b"1")  # never a number, a name or an array

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


def fuzz(max_examples):
    """The suite's settings (deterministic, no deadline) with `max_examples`."""
    return settings(FUZZ, max_examples=max_examples)


class Arg(collections.namedtuple("Arg", "good bad")):
    """Strategies of the values an argument accepts and rejects."""


def either(good, bad=None, omit=False):
    good = st.one_of(st.just(OMIT), good) if omit else good
    return Arg(good, bad)


def fixed(value):
    return Arg(st.just(value), None)


def flag():
    return Arg(st.booleans(), None)


def choice(options, bad=("bogus", 7, None), omit=True):
    return either(st.sampled_from(options), st.sampled_from(bad), omit)


def number(
    low=0.0,
    high=None,
    low_open=True,
    high_open=False,
    none=False,
    omit=True,
    span=(1e-3, 1e3),
):
    """A finite real number in the interval (low or [low, high) or high])."""

    def ok(value):
        above = value > low if low_open else value >= low
        return above and (
            high is None or (value < high if high_open else value <= high)
        )

    nice = [v for v in (0, 1, 2, 0.5, 1e-3, 8 / 255, 0.999, 10) if ok(v)]
    top = span[1] if high is None else min(high, span[1])
    good = st.one_of(
        st.sampled_from(nice),
        st.floats(max(low, span[0]), top, exclude_max=high_open).filter(ok),
    )
    outside = [NAN, INF, -INF, True, *JUNK] + ([] if none else [None])
    outside += [v for v in (low, low - 1, -1e9, np.float32(low - 1)) if not ok(v)]
    if high is not None:
        outside += [v for v in (high, high + 1, high * 2 + 1) if not ok(v)]
    good = st.one_of(good, st.none()) if none else good
    return either(good, st.sampled_from(outside), omit)


def integer(low=1, high=None, none=False, omit=True, numpy=True):
    """An integer in [low, high] (Python or numpy; never a bool or a float)."""
    top = low + 4 if high is None else high
    good = st.integers(low, top)
    good = st.one_of(good, good.map(np.int64)) if numpy else good
    outside = [low - 1, low - 7, float(max(low, 1)), low + 0.5, str(low), True, NAN]
    outside += ([] if none else [None]) + ([] if high is None else [high + 1])
    good = st.one_of(good, st.none()) if none else good
    return either(good, st.sampled_from(outside), omit)


@st.composite
def arguments(draw, spec, max_bad=2):
    """(kwargs, names drawn bad) from {name: Arg}."""
    can_fail = [name for name, arg in spec.items() if arg.bad is not None]
    count = min(draw(st.sampled_from([0, 1, 1, max_bad])), len(can_fail))
    bad = set(draw(st.permutations(can_fail))[:count]) if count else set()
    kwargs = {}
    for name, arg in spec.items():
        value = draw(arg.bad if name in bad else arg.good)
        if value is not OMIT:
            kwargs[name] = value
    return kwargs, bad


def names_argument(message, names):
    return any(re.search(rf"`{re.escape(n)}(?![\w])", message) for n in names)


def check(target, call, bad):
    """Runs `call()`: the result when valid, else the checked exception."""
    CASES[target] += 1
    if not bad:
        return call()
    INVALID[target] += 1
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    message = str(info.value)
    assert names_argument(message, bad), (
        f"{type(info.value).__name__} names none of {sorted(bad)}: {message}"
    )
    return info.value


def assert_round_trip(obj):
    """A valid object rebuilds from its config into an equal config."""
    config = obj.get_config()
    rebuild = getattr(type(obj), "from_config", None) or (lambda c: type(obj)(**c))
    assert rebuild(config).get_config() == config


def seeded(make):
    """A strategy of `make(rng)`: data from a drawn numpy seed (fast to draw)."""
    return st.integers(0, 2**16).map(lambda seed: make(np.random.default_rng(seed)))


def assert_finite(array, shape=None):
    array = np.asarray(array)
    assert np.all(np.isfinite(array)), array
    if shape is not None:
        assert array.shape == tuple(shape)


# ---- arguments many classes share -------------------------------------------

NORMS = ("linf", "l2", "inf", "2", 2, float("inf"), "L2", "LINF")
L1_NORMS = ("l1", "L1", 1, "1")
BAD_NORMS = ("max", None, 3)


def norm(l1=False):
    """A norm; `l1`: whether the target has an L1 form (else L1 names are bad)."""
    if l1:
        return choice(NORMS + L1_NORMS, bad=BAD_NORMS)
    return choice(NORMS, bad=L1_NORMS + BAD_NORMS)


def seed(none=True, numpy=True):
    return integer(low=0, none=none, numpy=numpy)


def clip_bound(low, high):
    """A `clip_min`/`clip_max` value: any real number (their order is `cross`)."""
    good = st.one_of(st.sampled_from([low, high]), st.floats(low, high))
    bad = st.sampled_from([NAN, None, True, *JUNK])
    return either(good, bad, omit=True)


def clip_args():
    return {"clip_min": clip_bound(-1.0, 0.5), "clip_max": clip_bound(0.5, 2.0)}


def clip_order(kwargs, bad, low="clip_min", high="clip_max", default=(0.0, 1.0)):
    """{low, high} when both are valid numbers but not low < high."""
    if bad & {low, high}:
        return set()
    if kwargs.get(low, default[0]) < kwargs.get(high, default[1]):
        return set()
    return {low, high}


# ---- one fuzz case ------------------------------------------------------------


def no_rule(kwargs, bad):
    return set()


class Target(collections.namedtuple("Target", "function spec cross result")):
    """What to call, its `{name: Arg}` spec, a rule `(kwargs, bad) -> more bad
    names` for invalid combinations, and a check `(result, kwargs)` of a valid
    call's result (False fails)."""

    def __new__(cls, function, spec, cross=no_rule, result=None):
        return super().__new__(cls, function, spec, cross, result)


def run_case(data, name, target):
    """Draws arguments for `target` and checks the call; returns (kwargs, bad, result)."""
    kwargs, bad = data.draw(arguments(target.spec), "arguments")
    bad |= target.cross(kwargs, bad)
    result = check(name, lambda: target.function(**kwargs), bad)
    if not bad and target.result is not None:
        assert target.result(result, kwargs) is not False, result
    return kwargs, bad, result
