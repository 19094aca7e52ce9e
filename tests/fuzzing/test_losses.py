"""Fuzzing kr.losses and kr.energy: shapes, dtypes, label ranges, batch sizes."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import keras_robust as kr
from tests.fuzzing import inputs
from tests.fuzzing.oracle import Target
from tests.fuzzing.oracle import assert_finite
from tests.fuzzing.oracle import choice
from tests.fuzzing.oracle import flag
from tests.fuzzing.oracle import fuzz
from tests.fuzzing.oracle import number
from tests.fuzzing.oracle import run_case

DISTANCES = (*kr.losses.SCORE_DISTANCES, "l1", "L2", "l1.5", "linf", 1, 2.5, np.inf)
BAD_DISTANCES = ("hellinger", "l0.5", 0.5, None, True, float("nan"))


def labels_and_pair(b, k, natural="logits_natural", other="logits_adversarial"):
    return {
        "y_true": inputs.labels(b, k),
        natural: inputs.logits(b, k, reference=True),
        other: inputs.logits(b, k),
    }


def objective(b, k, **extra):
    """A TRADES-style objective's arguments; `extra` adds hyperparameters."""
    return {
        **labels_and_pair(b, k),
        "beta": number(low_open=False),
        "sample_weight": inputs.per_sample(b, optional=True),
        **extra,
    }


# target: (function, spec(b, k), output: "scalar", "batch" or "pair")
TARGETS = {
    "cross_entropy": (
        kr.losses.cross_entropy,
        lambda b, k: {
            "logits": inputs.logits(b, k, True),
            "y_true": inputs.labels(b, k),
        },
        "batch",
    ),
    "kl_divergence": (
        kr.losses.kl_divergence,
        lambda b, k: {
            "logits_p": inputs.logits(b, k, True),
            "logits_q": inputs.logits(b, k),
        },
        "batch",
    ),
    "adversarial_cross_entropy_loss": (
        kr.losses.adversarial_cross_entropy_loss,
        lambda b, k: {
            "logits_adversarial": inputs.logits(b, k, True),
            "y_true": inputs.labels(b, k),
            "sample_weight": inputs.per_sample(b, optional=True),
        },
        "scalar",
    ),
    "trades_loss": (kr.losses.trades_loss, objective, "scalar"),
    "mart_loss": (kr.losses.mart_loss, objective, "scalar"),
    "weat_loss": (
        kr.losses.weat_loss,
        lambda b, k: objective(
            b,
            k,
            variant=choice(kr.losses.WEAT_VARIANTS, bad=("both", None, 1)),
            normalize_weights=flag(),
        ),
        "scalar",
    ),
    "score_loss": (
        kr.losses.score_loss,
        lambda b, k: objective(
            b,
            k,
            distance=choice(DISTANCES, bad=BAD_DISTANCES),
            clip_value=number(low_open=False),
            label_smoothing=number(0.0, 1.0, low_open=False, high_open=True),
        ),
        "scalar",
    ),
    "dyart_loss": (
        kr.losses.dyart_loss,
        lambda b, k: {
            **labels_and_pair(b, k, other="logits_boundary"),
            "margin_weights": inputs.per_sample(b),
            "lam": number(low_open=False),
            "temperature": number(),
            "sample_weight": inputs.per_sample(b, optional=True),
        },
        "scalar",
    ),
    "soft_margin": (
        kr.losses.soft_margin,
        lambda b, k: {
            "logits": inputs.logits(b, k, True),
            "y_true": inputs.labels(b, k),
            "temperature": number(none=True),
        },
        "batch",
    ),
    "dyart_margin_weights": (
        kr.losses.dyart_margin_weights,
        lambda b, k: {
            "radius": inputs.per_sample(b, reference=True),
            "grad_l1": inputs.per_sample(b, high=5.0),
            "alpha": number(low_open=False),
            "r0": number(),
        },
        "batch",
    ),
    "weat_weights": (
        kr.losses.weat_weights,
        lambda b, k: {"energy": inputs.per_sample(b, True, low=-20.0, high=20.0)},
        "batch",
    ),
    "probability_distance": (
        kr.losses.probability_distance,
        lambda b, k: {
            "p": inputs.probabilities(b, k, True),
            "q": inputs.probabilities(b, k),
            "distance": choice(DISTANCES, bad=BAD_DISTANCES),
        },
        "batch",
    ),
    "weighted_mean": (
        kr.losses.weighted_mean,
        lambda b, k: {
            "per_sample": inputs.per_sample(b, True, high=10.0),
            "sample_weight": inputs.per_sample(b, optional=True),
        },
        "scalar",
    ),
    "marginal_energy": (
        kr.energy.marginal_energy,
        lambda b, k: {"logits": inputs.logits(b, k, True)},
        "batch",
    ),
    "joint_energy": (
        kr.energy.joint_energy,
        lambda b, k: {"logits": inputs.logits(b, k, True), "y": inputs.labels(b, k)},
        "batch",
    ),
    "trades_decomposition": (
        kr.energy.trades_decomposition,
        lambda b, k: {
            "logits_natural": inputs.logits(b, k, True),
            "logits_adversarial": inputs.logits(b, k),
        },
        "pair",
    ),
}


@pytest.mark.parametrize("target", sorted(TARGETS))
@fuzz(max_examples=25)
@given(data=st.data())
def test_loss_and_energy_inputs(target, data):
    function, spec, output = TARGETS[target]
    b, k = data.draw(st.sampled_from([(1, 2), (3, 10)]), "b, k")

    def finite(result, kwargs):
        shape = () if output == "scalar" else (b,)
        for value in result if output == "pair" else (result,):
            assert_finite(keras.ops.convert_to_numpy(value), shape)

    run_case(data, target, Target(function, spec(b, k), result=finite))
