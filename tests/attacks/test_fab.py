"""FAB: minimal perturbations on closed forms, budget, targets, seeds."""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import linear_binary_problem
from tests.helpers import tiny_cnn
from tests.helpers import to_numpy


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("targets", [None, 1])
def test_finds_the_minimal_perturbation_of_a_linear_model(norm, targets):
    model, x, y, margins, epsilon = linear_binary_problem(norm)
    fab = kr.attacks.FAB(epsilon, steps=20, norm=norm, targets=targets, seed=0)
    x_adv = to_numpy(fab(model, x, y))
    broken = to_numpy(model(x_adv)).argmax(1) != y
    delta = (x_adv - x).reshape(len(x), -1)
    size = np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    # Every point FAB breaks is within epsilon, and only those left alone
    # keep x; it breaks every point whose margin is below epsilon by more
    # than its 5% overshoot.
    assert size.max() <= epsilon + 1e-6
    np.testing.assert_array_equal(size[~broken], 0.0)
    assert np.all(broken[margins < 0.95 * epsilon])
    assert not np.any(broken[margins > epsilon])
    # Where it breaks a point, the perturbation is close to the minimal one.
    np.testing.assert_allclose(size[broken], margins[broken], rtol=0.06)


def test_targeted_runs_every_target_and_stays_in_the_ball(digits):
    (x, _), _ = digits
    net = tiny_cnn()
    y = to_numpy(net(x[:32])).argmax(1)  # all correct: every point is attacked
    fab = kr.attacks.FAB(0.3, steps=10, targets=9, seed=0)
    x_adv = to_numpy(fab(net, x[:32], y))
    assert np.abs(x_adv - x[:32]).max() <= 0.3 + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    broken = to_numpy(net(x_adv)).argmax(1) != y
    assert broken.mean() > 0.5
    single = kr.attacks.FAB(0.3, steps=10, targets=1, seed=0)(net, x[:32], y)
    assert broken.mean() >= np.mean(to_numpy(net(single)).argmax(1) != y)
    with pytest.raises(ValueError, match="targets"):
        kr.attacks.FAB(0.3, steps=2, targets=10)(net, x[:32], y)


def test_same_result_eager_and_compiled(digits):
    (x, _), _ = digits
    net = tiny_cnn()
    y = to_numpy(net(x[:16])).argmax(1)
    fab = kr.attacks.FAB(0.2, steps=5, targets=2, restarts=2)
    eager = to_numpy(fab(net, x[:16], y, seed=3))
    compiled = to_numpy(fab(net, x[:16], y, seed=3))  # second call: compiled
    np.testing.assert_allclose(eager, compiled, atol=1e-5)


def test_serialization_and_bad_arguments():
    fab = kr.attacks.FAB(0.1, steps=7, norm="l2", targets=3, restarts=2, seed=1)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(fab)
    )
    assert restored.get_config() == fab.get_config()
    for kwargs, match in [
        ({"steps": 0}, "steps"),
        ({"targets": 0}, "targets"),
        ({"alpha_max": -1.0}, "alpha_max"),
    ]:
        with pytest.raises(ValueError, match=match):
            kr.attacks.FAB(0.1, **kwargs)
