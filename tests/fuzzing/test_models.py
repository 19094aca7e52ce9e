"""Fuzzing the constructors of kr.models around a tiny classifier."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import keras_robust as kr
from tests.fuzzing import inputs
from tests.fuzzing.oracle import Target
from tests.fuzzing.oracle import choice
from tests.fuzzing.oracle import either
from tests.fuzzing.oracle import flag
from tests.fuzzing.oracle import fuzz
from tests.fuzzing.oracle import integer
from tests.fuzzing.oracle import norm
from tests.fuzzing.oracle import number
from tests.fuzzing.oracle import run_case
from tests.fuzzing.oracle import seed

SCORE_DISTANCES = (*kr.losses.SCORE_DISTANCES, "l1", "linf", 3)
NOT_A_CLASSIFIER = (None, "net", len)
CLASSIFIER = inputs.classifier()  # built outside the strategies
NUMBERS = ("epsilon", "step_size", "steps", "beta", "temperature", "r0", "alpha")


def attack_arg(*good):
    """None or one of `good` attacks; bad: things that are not attacks."""
    return either(
        st.sampled_from([None, *good]), st.sampled_from(["pgd", 3, len]), omit=True
    )


def robust_model(**extra):
    """The `RobustModel` arguments, and `extra` ones of a method."""
    return {
        "classifier": either(st.just(CLASSIFIER), st.sampled_from(NOT_A_CLASSIFIER)),
        "epsilon": number(),
        "step_size": number(),
        "steps": integer(),
        "norm": norm(),
        "attack": attack_arg(kr.attacks.PGD(0.1, steps=2)),
        "eval_attack": attack_arg(kr.attacks.FGSM(0.1)),
        "attack_training_mode": flag(),
        # numpy seeds: see test_numpy_seed below.
        "seed": seed(),
        **extra,
    }


def beta_model(**extra):
    return robust_model(beta=number(low_open=False), **extra)


def search_steps_agree(kwargs, bad):
    attack, steps = kwargs.get("attack"), kwargs.get("search_steps")
    if bad & {"attack", "search_steps"} or attack is None or steps is None:
        return set()
    return set() if attack.steps == steps else {"search_steps"}


def stores_arguments(model, kwargs):
    assert model.classifier is kwargs["classifier"]
    assert isinstance(model.attack, kr.attacks.Attack)
    for name in NUMBERS:
        if kwargs.get(name) is not None:
            assert getattr(model, name) == kwargs[name]


TARGETS = {
    "AT": Target(kr.models.AT, robust_model()),
    "TRADES": Target(kr.models.TRADES, beta_model()),
    "MART": Target(kr.models.MART, beta_model()),
    "WEAT": Target(
        kr.models.WEAT,
        beta_model(
            variant=choice(kr.losses.WEAT_VARIANTS, bad=("both", None, 0)),
            normalize_weights=flag(),
        ),
    ),
    "SCORE": Target(
        kr.models.SCORE,
        beta_model(
            distance=choice(SCORE_DISTANCES, bad=("hellinger", 0.5, None)),
            clip_value=number(low_open=False),
            label_smoothing=number(0.0, 1.0, low_open=False, high_open=True),
        ),
    ),
    "FastAT": Target(
        kr.models.FastAT,
        robust_model(
            step_size=number(none=True),
            steps=either(st.just(1), st.sampled_from([0, 2, 1.0, "1"]), omit=True),
        ),
    ),
    "DyART": Target(
        kr.models.DyART,
        robust_model(
            norm=choice(("linf", "inf", np.inf, "LINF"), bad=("l2", "l1", None)),
            attack=either(
                st.sampled_from(
                    [None, *(kr.attacks.BoundarySearch(0.1, steps=s) for s in (1, 2))]
                ),
                st.sampled_from(
                    [kr.attacks.PGD(0.1), kr.attacks.BoundarySearch(norm="l2"), "bs"]
                ),
                omit=True,
            ),
            temperature=number(),
            r0=number(),
            alpha=number(low_open=False),
            lam=number(low_open=False),
            search_steps=integer(none=True, high=3),
            burn_in_epochs=integer(low=0),
        ),
        search_steps_agree,
    ),
}


@pytest.mark.parametrize("target", sorted(TARGETS))
@fuzz(max_examples=60)
@given(data=st.data())
def test_model_constructor(target, data):
    run_case(data, target, TARGETS[target]._replace(result=stores_arguments))


def test_numpy_seed():
    model = kr.models.AT(inputs.classifier(), seed=np.int64(3))
    assert model.seed == 3
