"""FAB: minimal perturbations on closed forms, budget, targets, seeds."""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import linear_binary_problem
from tests.helpers import tiny_cnn
from tests.helpers import to_numpy


def perturbation_size(delta, norm):
    delta = np.abs(delta.reshape(len(delta), -1))
    if norm == "l1":
        return delta.sum(1)
    return delta.max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
@pytest.mark.parametrize("targets", [None, 1])
def test_finds_the_minimal_perturbation_of_a_linear_model(norm, targets):
    model, x, y, margins, epsilon = linear_binary_problem(norm)
    fab = kr.attacks.FAB(epsilon, steps=20, norm=norm, targets=targets, seed=0)
    x_adv = to_numpy(fab(model, x, y))
    broken = to_numpy(model(x_adv)).argmax(1) != y
    size = perturbation_size(x_adv - x, norm)
    # Every point FAB breaks is within epsilon, and only those left alone
    # keep x; it breaks every point whose margin is below epsilon by more
    # than its 5% overshoot.
    assert size.max() <= epsilon + 1e-6
    np.testing.assert_array_equal(size[~broken], 0.0)
    assert np.all(broken[margins < 0.95 * epsilon])
    assert not np.any(broken[margins > epsilon])
    # Where it breaks a point, the perturbation is close to the minimal one.
    np.testing.assert_allclose(size[broken], margins[broken], rtol=0.06)


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_repeated_calls_with_new_batch_sizes(norm):
    # The second call is compiled; on TensorFlow the third, of another size,
    # retraces with an unknown batch size, which the random starts of L2 and
    # L1 once failed on (they counted the batch among a sample's coordinates).
    model, x, y, _, epsilon = linear_binary_problem(norm)
    fab = kr.attacks.FAB(epsilon, steps=3, norm=norm, restarts=2, seed=0)
    for size in (32, 64, 16):
        x_adv = to_numpy(fab(model, x[:size], y[:size]))
        assert x_adv.shape == (size, 6)
        assert perturbation_size(x_adv - x[:size], norm).max() <= epsilon + 1e-6


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


class ThirdClassLogits(keras.layers.Layer):
    """Three logits of u = z_0 - 0.5 (z in the unit square, z_1 unused).

    f_0 = 1, f_1 = 0.9 + h(u) with h(u) = u - 0.9 relu(u - 0.05), and
    f_2 = 0.8 + 20 u. At u = 0 the order is 0, 1, 2, so FAB-T with one
    target attacks class 1. g_1 = f_0 - f_1 has slope -1 at u = 0, so the
    first step aims at u = 0.105 (0.1 with the 5% overshoot); there h is
    only 0.0555 (g_1 > 0, and on the box g_1 > 0 everywhere), but f_2 = 2.9
    wins: the iterate is in class 2.
    """

    def call(self, z):
        u = z[:, :1] - 0.5
        h = u - 0.9 * keras.ops.relu(u - 0.05)
        return keras.ops.concatenate(
            [keras.ops.ones_like(u), 0.9 + h, 0.8 + 20.0 * u], axis=-1
        )


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_targeted_search_records_an_iterate_in_a_third_class(norm):
    # The reference counts an iterate as adversarial when its prediction is
    # not the true class (fab_base.py: is_adv = pred != la2), not only when
    # it crosses the margin against the current target, which it never does
    # here.
    inputs = keras.Input((2,))
    model = keras.Model(inputs, ThirdClassLogits()(inputs))
    x = np.full((4, 2), 0.5, "float32")
    y = np.zeros(4, "int64")
    assert (to_numpy(model(x)).argmax(1) == y).all()
    fab = kr.attacks.FAB(0.2, steps=10, norm=norm, targets=1, seed=0)
    x_adv = to_numpy(fab(model, x, y))
    np.testing.assert_array_equal(to_numpy(model(x_adv)).argmax(1), 2)
    size = perturbation_size(x_adv - x, norm)
    # The closest class-2 point is u = 0.01; every recorded iterate lies
    # between it and the first one (u = 0.105).
    assert np.all((size > 0.01) & (size <= 0.105 + 1e-6))


def two_boundaries_model():
    """Linear logits on 4 features at x = 0.5: f = (2, 1, 0), true class 0.

    g_1 = f_0 - f_1 = 1 has the smaller margin, but its gradient is tiny
    (0.025 per feature): its boundary lies 10 away in L-inf (20 in L2, 40
    in L1), beyond the box. g_2 = 2 has gradient 2.5 per feature: 0.2 away
    in L-inf, 0.4 in L2, 0.8 in L1 (one feature to the wall, 0.5, then 0.3
    of another).
    """
    inputs = keras.Input((4,))
    dense = keras.layers.Dense(3)
    model = keras.Model(inputs, dense(inputs))
    kernel = np.zeros((4, 3), "float32")
    kernel[:, 1], kernel[:, 2] = 0.025, 2.5
    dense.set_weights([kernel, np.array([2.0, 0.95, -5.0], "float32")])
    return model


@pytest.mark.parametrize(
    "norm, size, epsilon",
    [("linf", 1.05 * 0.2, 0.3), ("l2", 1.05 * 0.4, 0.5), ("l1", 0.5 + 1.05 * 0.3, 1.0)],
)
def test_untargeted_steps_onto_the_closest_linearised_boundary(norm, size, epsilon):
    # The reference's untargeted FAB linearises every class and steps onto the
    # closest hyperplane, |g_j| / ||grad g_j||_* (fab_base.py: dist1, ind).
    # One step then lands 5% beyond class 2's boundary (L1: the feature at
    # the wall stays there), within epsilon. A step on the hard margin
    # (class 1, the smallest g) hits the box at distance 0.5 (L-inf), 1.0
    # (L2) or 2.0 (L1), beyond epsilon.
    model = two_boundaries_model()
    x = np.full((3, 4), 0.5, "float32")
    y = np.zeros(3, "int64")
    np.testing.assert_allclose(to_numpy(model(x))[0], [2.0, 1.0, 0.0], atol=1e-6)
    fab = kr.attacks.FAB(epsilon, steps=1, norm=norm, seed=0)
    x_adv = to_numpy(fab(model, x, y))
    np.testing.assert_array_equal(to_numpy(model(x_adv)).argmax(1), 2)
    np.testing.assert_allclose(perturbation_size(x_adv - x, norm), size, rtol=1e-4)


@pytest.mark.parametrize("targets", [None, 2])
def test_misclassified_points_are_returned_unchanged(digits, targets):
    (x, _), _ = digits
    net = tiny_cnn()
    wrong = (to_numpy(net(x[:16])).argmax(1) + 1) % 10  # every label wrong
    fab = kr.attacks.FAB(0.3, steps=5, targets=targets, seed=0)
    np.testing.assert_array_equal(to_numpy(fab(net, x[:16], wrong)), x[:16])


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
