"""Fuzzing kr.attacks: constructor arguments and `attack(model, x, y, seed)`."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import keras_robust as kr
from tests.fuzzing import inputs
from tests.fuzzing.oracle import OMIT
from tests.fuzzing.oracle import Target
from tests.fuzzing.oracle import assert_finite
from tests.fuzzing.oracle import assert_round_trip
from tests.fuzzing.oracle import choice
from tests.fuzzing.oracle import clip_args
from tests.fuzzing.oracle import clip_order
from tests.fuzzing.oracle import either
from tests.fuzzing.oracle import flag
from tests.fuzzing.oracle import fuzz
from tests.fuzzing.oracle import integer
from tests.fuzzing.oracle import norm
from tests.fuzzing.oracle import number
from tests.fuzzing.oracle import run_case
from tests.fuzzing.oracle import seed

LOSSES = ("ce", "cw", "kl", "se", "dlr")
UNTARGETED_ONLY = ("kl", "se", "dlr")


def common(l1=False, **extra):
    return {
        "epsilon": number(omit=False),
        "norm": norm(l1),
        **clip_args(),
        **extra,
    }


def pgd_args(**extra):
    return common(
        step_size=number(none=True),
        loss=choice(LOSSES),
        targeted=flag(),
        random_start=choice(("uniform", "normal", "none", None), bad=("gauss", 3, "")),
        seed=seed(),
        **extra,
    )


def single_step():
    return either(st.just(1), st.sampled_from([0, 2, "1"]), omit=True)


def search_args():
    return {
        "alpha_max": number(0.0, 1.0, low_open=False),
        "overshoot": number(1.0, low_open=False),
        "backtrack": number(0.0, 1.0),
    }


def targeted_loss(kwargs, bad):
    """PGD's targeted attacks take the CE and CW losses only."""
    if "loss" in bad or not kwargs.get("targeted"):
        return set()
    return {"loss"} if kwargs.get("loss", "ce") in UNTARGETED_ONLY else set()


def round_trip(attack, kwargs):
    assert_round_trip(attack)


def both(*rules):
    return lambda kwargs, bad: set().union(*(rule(kwargs, bad) for rule in rules))


CONSTRUCTORS = {
    "PGD": Target(
        kr.attacks.PGD,
        pgd_args(steps=integer(), restarts=integer()),
        both(clip_order, targeted_loss),
        round_trip,
    ),
    "FGSM": Target(
        kr.attacks.FGSM,
        pgd_args(steps=single_step(), restarts=single_step()),
        both(clip_order, targeted_loss),
        round_trip,
    ),
    "APGD": Target(
        kr.attacks.APGD,
        common(
            l1=True,
            steps=integer(),
            loss=choice(("ce", "dlr")),
            targets=integer(none=True),
            restarts=integer(),
            rho=number(0.0, 1.0),
            momentum=number(0.0, 1.0, low_open=False),
            seed=seed(),
        ),
        clip_order,
        round_trip,
    ),
    "FAB": Target(
        kr.attacks.FAB,
        common(
            l1=True,
            steps=integer(),
            targets=integer(none=True),
            restarts=integer(),
            seed=seed(),
            **search_args(),
        ),
        clip_order,
        round_trip,
    ),
    "Square": Target(
        kr.attacks.Square,
        common(
            l1=True,
            queries=integer(),
            p_init=number(0.0, 1.0),
            loss=choice(("margin", "ce")),
            restarts=integer(),
            seed=seed(),
        ),
        clip_order,
        round_trip,
    ),
    "BoundarySearch": Target(
        kr.attacks.BoundarySearch,
        {
            **common(
                l1=True,
                steps=integer(),
                temperature=number(none=True),
                refine_steps=integer(low=0),
                seed=seed(),
                **search_args(),
            ),
            "epsilon": number(),
        },
        clip_order,
        round_trip,
    ),
}


@pytest.mark.parametrize("target", sorted(CONSTRUCTORS))
@fuzz(max_examples=80)
@given(data=st.data())
def test_attack_constructor(target, data):
    run_case(data, target, CONSTRUCTORS[target])


CALLS = {
    "PGD": lambda: kr.attacks.PGD(0.1, steps=1, seed=0),
    "PGD-targeted": lambda: kr.attacks.PGD(0.1, 0.05, 1, loss="cw", targeted=True),
    "FGSM": lambda: kr.attacks.FGSM(0.1, random_start="uniform"),
    "APGD": lambda: kr.attacks.APGD(0.1, steps=1),
    "APGD-T": lambda: kr.attacks.APGD(0.1, steps=1, loss="dlr", targets=2),
    "FAB": lambda: kr.attacks.FAB(0.1, steps=1, restarts=2),
    "Square": lambda: kr.attacks.Square(0.1, queries=2),
    "BoundarySearch": lambda: kr.attacks.BoundarySearch(0.1, steps=1),
}
BATCH = 2


def model_arg():
    def forward(x):
        return inputs.classifier()(x, training=False)

    good = st.sampled_from([inputs.classifier(), forward])
    return either(good, st.sampled_from([None, "model", 3]))


def call_seed():
    good = st.one_of(st.just(OMIT), st.none(), st.integers(0, 9))
    return either(good, st.sampled_from(["0", 1.5, -1, [0]]))


def _in_threat_model(attack, check_budget=True):
    """A valid call's output: finite images in [0, 1], within epsilon of x."""

    def check_result(x_adv, kwargs):
        x_adv = keras.ops.convert_to_numpy(x_adv)
        assert_finite(x_adv, (BATCH, *inputs.IMAGE_SHAPE))
        assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
        if check_budget:
            distance = np.abs(x_adv - np.asarray(kwargs["x"], "float32")).max()
            assert distance <= attack.epsilon + 1e-6

    return check_result


@pytest.mark.parametrize("kind", sorted(CALLS))
@fuzz(max_examples=5)
@given(data=st.data())
def test_attack_call(kind, data):
    attack = CALLS[kind]()
    spec = {
        "model": model_arg(),
        "x": inputs.images(BATCH),
        "y": inputs.labels(BATCH, 10),
        "seed": call_seed(),
    }
    # BoundarySearch has no budget: epsilon only sets its start.
    result = _in_threat_model(attack, kind != "BoundarySearch")
    run_case(data, f"{kind}(model, x, y)", Target(attack, spec, result=result))


@fuzz(max_examples=6)
@given(data=st.data())
def test_boundary_search_call(data):
    y = np.arange(BATCH)

    def margin(z):
        return kr.losses.soft_margin(inputs.classifier()(z, training=False), y)

    spec = {
        "margin_fn": either(st.just(margin), st.sampled_from([None, "margin", 1])),
        "x": inputs.images(BATCH),
        "steps": integer(high=2),
        "norm": norm(l1=True),
        "init_radius": number(low_open=False),
        **search_args(),
        "seed": seed(),
        "refine_steps": integer(low=0, high=2),
    }
    in_box = _in_threat_model(None, check_budget=False)

    def result(point_found, kwargs):
        in_box(point_found[0], kwargs)
        assert tuple(point_found[1].shape) == (BATCH,)

    target = Target(kr.attacks.boundary_search, spec, result=result)
    run_case(data, "boundary_search", target)
