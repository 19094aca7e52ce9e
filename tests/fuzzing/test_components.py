"""Fuzzing kr.layers, kr.schedules, kr.callbacks and kr.architectures."""

import warnings

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import keras_robust as kr
from tests.fuzzing.oracle import NAN
from tests.fuzzing.oracle import Target
from tests.fuzzing.oracle import assert_finite
from tests.fuzzing.oracle import assert_round_trip
from tests.fuzzing.oracle import choice
from tests.fuzzing.oracle import either
from tests.fuzzing.oracle import flag
from tests.fuzzing.oracle import fuzz
from tests.fuzzing.oracle import integer
from tests.fuzzing.oracle import number
from tests.fuzzing.oracle import run_case
from tests.helpers import SubclassedDense

# Keras' own variable-to-numpy conversion under numpy 2 (cloning, set_weights).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword"
)

X = np.linspace(-3.0, 3.0, 12, dtype="float32").reshape(2, 6)
ACTIVATIONS = (*kr.layers.SAT_ACTIVATIONS, "gelu_exact", "tanh", keras.activations.relu)
BAD_ACTIVATIONS = ("nope", 3, None, ["relu"])


def _functional():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(4, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.ReLU()(hidden)))


# Built once, outside the strategies.
FUNCTIONAL, SUBCLASSED = _functional(), SubclassedDense()
NOT_REBUILDABLE = (None, "model", SUBCLASSED)


def activation():
    layers = st.sampled_from([kr.layers.SmoothReLU, kr.layers.SmoothGradReLU])
    good = st.one_of(st.sampled_from(ACTIVATIONS), layers.map(lambda cls: cls()))
    return either(good, st.sampled_from(BAD_ACTIVATIONS))


def one_cycle_phases(kwargs, bad):
    """Both phases of OneCycle need a step: 0 < pct * total - 1 < total - 1."""
    if bad & {"total_steps", "pct_start"}:
        return set()
    total, pct = kwargs["total_steps"], kwargs.get("pct_start", 0.25)
    ok = 0 < float(pct * total) - 1.0 < float(total - 1)
    return set() if ok else {"total_steps", "pct_start"}


def callable_output(obj, kwargs):
    """A layer's or a schedule's output is finite (layers: shaped like X)."""
    if isinstance(obj, keras.layers.Layer):
        assert_finite(keras.ops.convert_to_numpy(obj(X)), X.shape)
    else:  # a schedule: the rate at the first, last and a later step
        total = kwargs["total_steps"]
        rates = [float(obj(step)) for step in (0, total - 1, total + 5)]
        assert_finite(rates)
        assert min(rates) > 0


CONSTRUCTORS = {
    "SmoothReLU": Target(
        kr.layers.SmoothReLU,
        {"initial_b": number(), "trainable_b": flag()},
        result=callable_output,
    ),
    "ParametricSoftplus": Target(
        kr.layers.ParametricSoftplus,
        {"alpha": number()},
        result=callable_output,
    ),
    "SmoothGradReLU": Target(
        kr.layers.SmoothGradReLU,
        {
            "alpha": number(),
            "smooth_for": choice(("both", "attack", "update"), bad=("never", None)),
        },
        result=callable_output,
    ),
    "activation_layer": Target(
        kr.layers.activation_layer,
        {"activation": activation(), "name": either(st.sampled_from([None, "a"]))},
        result=callable_output,
    ),
    "replace_activations": Target(
        kr.layers.replace_activations,
        {
            "model": either(st.just(FUNCTIONAL), st.sampled_from(NOT_REBUILDABLE)),
            "activation": activation(),
        },
        result=lambda model, kwargs: assert_finite(
            keras.ops.convert_to_numpy(model(X))
        ),
    ),
    "with_coupled_weight_decay": Target(
        kr.architectures.with_coupled_weight_decay,
        {
            "model": either(st.just(FUNCTIONAL), st.sampled_from(NOT_REBUILDABLE)),
            "weight_decay": number(low_open=False),
        },
        result=lambda model, kwargs: assert_finite(
            keras.ops.convert_to_numpy(model(X))
        ),
    ),
    "OneCycle": Target(
        kr.schedules.OneCycle,
        {
            "max_learning_rate": number(omit=False),
            "total_steps": either(st.integers(1, 500), integer().bad),
            "pct_start": number(0.0, 1.0, high_open=True),
            "div_factor": number(),
            "final_div_factor": number(),
        },
        one_cycle_phases,
        result=callable_output,
    ),
    "PhaseRule": Target(
        kr.callbacks.PhaseRule,
        {
            "window": integer(low=2),
            "plateau_slope": number(),
            "divergence": number(),
            "patience": integer(),
        },
        result=lambda rule, kwargs: assert_round_trip(rule),
    ),
    "detect_phases": Target(
        kr.callbacks.detect_phases,
        {
            "gaps": either(
                st.lists(st.floats(-3, 3), max_size=12),
                st.sampled_from([None, "0.1", 3, [0.1, "a"], [None]]),
            ),
            "window": integer(low=2),
            "divergence": number(),
        },
        result=lambda phases, kwargs: (
            len(phases) == len(kwargs["gaps"])
            and set(phases) <= {1, 2, 3}
            and phases == sorted(phases)
        ),
    ),
    "EnergyPhaseLogger": Target(
        kr.callbacks.EnergyPhaseLogger,
        {
            "log_dir": choice((None, "runs/fuzz"), bad=(3, ["runs"])),
            "rule": choice(
                (None, kr.callbacks.PhaseRule(window=3), {"patience": 3}),
                bad=("rule", 3),
            ),
            "attack": choice((None, kr.attacks.PGD(0.1)), bad=("pgd", len)),
            "on_phase3": choice(("warn", "stop", "restore_best"), bad=("halt", None)),
        },
        result=lambda logger, kwargs: logger.rows == [],
    ),
    "RobustValidation": Target(
        kr.callbacks.RobustValidation,
        {
            "validation_data": either(
                st.sampled_from([(X, X[:, 0]), [X, X[:, 0]]]),
                st.sampled_from([None, X, (X,), 3]),
            ),
            "attack": choice((None, kr.attacks.PGD(0.1)), bad=("pgd", len)),
            "epsilon": number(none=True),
            "every": integer(),
            "batch_size": integer(),
            "filepath": choice(
                (None, "best.keras", "best.weights.h5"), bad=("best.h5", 3)
            ),
        },
        result=lambda callback, kwargs: callback.history == [],
    ),
}


@pytest.mark.parametrize("target", sorted(CONSTRUCTORS))
@fuzz(max_examples=50)
@given(data=st.data())
def test_component(target, data):
    run_case(data, target, CONSTRUCTORS[target])


def input_shape():
    # One valid shape: under JAX each new one costs seconds of tracing.
    good = st.sampled_from([(8, 8, 1), [8, 8, 1]])
    bad = st.sampled_from([(8, 8), (8, 8, 0), (8.0, 8, 1), "8x8", None, (8, 8, -3)])
    return either(good, bad)


def normalization():
    good = st.sampled_from([None, ((0.5,), (0.25,)), ((0.5,) * 3, (0.2, 0.2, 0.3))])
    bad = st.sampled_from(["x", (1, 2, 3), ((0.5,), (0.0,)), ((NAN,), (1.0,))])
    return either(good, bad, omit=True)


def channels_match(kwargs, bad):
    """`normalization` holds one mean and std per input channel."""
    stats = kwargs.get("normalization")
    if stats is None or bad & {"normalization", "input_shape"}:
        return set()
    channels = kwargs["input_shape"][-1]
    return set() if len(stats[0]) == channels else {"normalization"}


def common_architecture(**extra):
    return {
        "num_classes": integer(high=3, numpy=False),
        "input_shape": input_shape(),
        "activation": activation(),
        "normalization": normalization(),
        "batch_norm_momentum": number(0.5, 1.0, low_open=False, high_open=True),
        "batch_norm_epsilon": number(),
        **extra,
    }


ARCHITECTURES = {
    "SmallCNN": Target(
        kr.architectures.SmallCNN,
        {
            "num_classes": integer(high=3, numpy=False),
            "input_shape": input_shape(),
            "activation": activation(),
            "filters": choice(((2,), [3, 2]), bad=((0,), (2.5,), "ab", 3, None)),
            "dense_units": choice((0, 4, None), bad=(-1, 2.5, "4")),
            "batch_norm": flag(),
        },
    ),
    "WideResNet": Target(
        kr.architectures.WideResNet,
        common_architecture(
            depth=choice((10,), bad=(12, 4, 0, 10.0, "10", None), omit=False),
            width=choice((1,), bad=(0, 1.5, "1"), omit=False),
            dropout=number(0.0, 1.0, low_open=False, high_open=True),
        ),
        channels_match,
    ),
    "PreActResNet18": Target(
        kr.architectures.PreActResNet18,
        common_architecture(),
        channels_match,
    ),
    "ResNet18": Target(
        kr.architectures.ResNet18, common_architecture(), channels_match
    ),
}


@pytest.mark.parametrize("target", sorted(ARCHITECTURES))
@fuzz(max_examples=12)
@given(data=st.data())
def test_architecture(target, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # batch_norm_momentum < 0.5 warns
        run_case(data, target, ARCHITECTURES[target])
