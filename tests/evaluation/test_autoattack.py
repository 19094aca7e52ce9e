"""AutoAttack: the protocol's cascade, exactness on a linear model, flags."""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.digits_training import train_on_digits
from tests.evaluation.test_evaluate_robustness import masked
from tests.helpers import linear_binary_problem


def test_standard_is_the_four_attack_protocol():
    autoattack = kr.evaluation.AutoAttack(8 / 255)
    cascade = autoattack.attacks(num_classes=10)
    assert list(cascade) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert autoattack.protocol == "autoattack-standard"
    apgd_ce, apgd_t, fab_t, square = cascade.values()
    assert (apgd_ce.steps, apgd_ce.loss, apgd_ce.targets, apgd_ce.restarts) == (
        100,
        "ce",
        None,
        1,
    )
    assert (apgd_t.steps, apgd_t.loss, apgd_t.targets) == (100, "dlr", 9)
    assert (fab_t.steps, fab_t.targets) == (100, 9)
    assert (square.queries, square.p_init, square.schedule) == (5000, 0.8, "autoattack")
    assert all(a.epsilon == 8 / 255 for a in cascade.values())
    fast = kr.evaluation.AutoAttack(8 / 255, version="fast")
    assert list(fast.attacks(10)) == ["apgd-ce", "apgd-t"]
    assert fast.protocol == "autoattack-fast"
    # Fewer classes: every other class is a target; targeted CE below 4 classes.
    assert autoattack.attacks(2)["apgd-t"].loss == "ce"
    assert autoattack.attacks(2)["fab-t"].targets == 1
    with pytest.raises(ValueError, match="version.*'rand'"):
        kr.evaluation.AutoAttack(8 / 255, version="random")


def test_rand_line_up_is_the_references():
    # fra31/auto-attack autoattack.py, set_version("rand"): apgd-ce and
    # apgd-dlr, the same APGD with 1 restart and eot_iter 20.
    rand = kr.evaluation.AutoAttack(8 / 255, version="rand")
    cascade = rand.attacks(num_classes=10)
    assert list(cascade) == ["apgd-ce", "apgd-dlr"]
    assert rand.protocol == "autoattack-rand"
    for attack, loss in zip(cascade.values(), ("ce", "dlr")):
        assert (attack.loss, attack.targets, attack.restarts) == (loss, None, 1)
        assert (attack.steps, attack.eot_iter) == (100, 20)
    # Only "rand" averages gradients.
    for version in ("standard", "plus", "fast"):
        cascade = kr.evaluation.AutoAttack(8 / 255, version=version).attacks(10)
        assert {
            a.eot_iter for a in cascade.values() if isinstance(a, kr.attacks.APGD)
        } == {1}


def test_plus_and_custom_line_ups_are_the_references():
    # fra31/auto-attack autoattack.py, set_version("plus"): apgd-ce and
    # apgd-dlr with 5 restarts, untargeted fab with 5 restarts, square 5000,
    # apgd-t and fab-t with 9 targets and 1 restart.
    plus = kr.evaluation.AutoAttack(8 / 255, version="plus")
    cascade = plus.attacks(num_classes=10)
    assert list(cascade) == ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"]
    assert plus.protocol == "autoattack-plus"
    apgd_ce, apgd_dlr, fab, square, apgd_t, fab_t = cascade.values()
    assert (apgd_ce.loss, apgd_ce.targets, apgd_ce.restarts) == ("ce", None, 5)
    assert (apgd_dlr.loss, apgd_dlr.targets, apgd_dlr.restarts) == ("dlr", None, 5)
    assert (fab.targets, fab.restarts, fab.steps) == (None, 5, 100)
    assert (square.queries, square.schedule, square.restarts) == (5000, "autoattack", 1)
    assert (apgd_t.targets, apgd_t.restarts, fab_t.targets, fab_t.restarts) == (
        9,
        1,
        9,
        1,
    )
    assert all(a.epsilon == 8 / 255 for a in cascade.values())
    # Standard keeps one restart everywhere.
    standard = kr.evaluation.AutoAttack(8 / 255).attacks(10)
    assert all(a.restarts == 1 for a in standard.values())
    # Custom: the named attacks, in the given order, with the plus settings.
    custom = kr.evaluation.AutoAttack(
        0.1, version="custom", attacks_to_run=["square", "apgd-dlr"]
    )
    assert list(custom.attacks(10)) == ["square", "apgd-dlr"]
    assert custom.attacks(10)["apgd-dlr"].restarts == 5
    assert custom.protocol == "autoattack-custom"
    assert "attacks_to_run=['square', 'apgd-dlr']" in repr(custom)
    for bad in (None, [], "square", ["square", "square"], ["pgd"]):
        with pytest.raises(ValueError, match="attacks_to_run"):
            kr.evaluation.AutoAttack(0.1, version="custom", attacks_to_run=bad)
    with pytest.raises(ValueError, match="attacks_to_run.*custom"):
        kr.evaluation.AutoAttack(0.1, attacks_to_run=["square"])


# `slow`: Square's 5,000 queries on the robust half cost 2.5 minutes per norm
# op by op on PyTorch's eager backend (2-core AMD EPYC).
@pytest.mark.slow
@pytest.mark.parametrize(
    "norm, version", [("linf", "standard"), ("l2", "standard"), ("linf", "plus")]
)
def test_reaches_the_exact_robust_accuracy_of_a_linear_model(norm, version):
    """Robust iff |w.x + b| / ||w||_dual > epsilon (dual of L-inf: L1; of L2: L2)."""
    linear, x, y, margins, epsilon = linear_binary_problem(norm)
    # The same model on 2x3 "images", which Square needs.
    model = keras.Sequential([keras.Input((2, 3, 1)), keras.layers.Flatten(), linear])
    report = kr.evaluation.evaluate_robustness(
        model,
        x.reshape(-1, 2, 3, 1),
        y,
        epsilon=epsilon,
        norm=norm,
        attacks=version,
        checks=False,
        verbose=0,
    )
    assert report.protocol == f"autoattack-{version}"
    assert len(report.attack_accuracy) == (4 if version == "standard" else 6)
    assert report.clean_accuracy == 1.0
    assert report.robust_accuracy == pytest.approx(np.mean(margins > epsilon))
    assert report.robust_accuracy == pytest.approx(0.5, abs=0.01)


@pytest.mark.slow
def test_square_flags_a_masked_model(digits):
    """Gradients are zero, so the white-box attacks fail and Square does not."""
    net = masked(train_on_digits("standard", digits)[0])
    _, (x, y) = digits
    quick = {
        "apgd-ce": kr.attacks.APGD(0.1, steps=10, seed=0),
        "square": kr.attacks.Square(0.1, queries=300, seed=0),
    }
    report = kr.evaluation.evaluate_robustness(
        net, x[:100], y[:100], epsilon=0.1, attacks=quick, verbose=0
    )
    names = {flag.name for flag in report.flags}
    assert {"zero_gradients", "black_box_beats_white_box"} <= names, str(report)
    assert report.attack_accuracy["apgd-ce"] - report.attack_accuracy["square"] > 0.1


def test_rand_version_attacks_a_randomized_model():
    """The full version="rand" cascade on a model drawing noise at inference."""
    from tests.evaluation.test_evaluate_robustness import NoisyLogits

    model, x, y, _, epsilon = linear_binary_problem("linf")
    inputs = keras.Input((6,))
    noisy = keras.Model(inputs, NoisyLogits()(model(inputs)))
    rand = kr.evaluation.AutoAttack(epsilon, version="rand", seed=0)
    x_adv = keras.ops.convert_to_numpy(rand(noisy, x[:32], y[:32]))
    assert list(rand.last_robust_accuracy) == ["clean", "apgd-ce", "apgd-dlr"]
    assert np.abs(x_adv - x[:32]).max() <= epsilon + 1e-6
    accuracies = list(rand.last_robust_accuracy.values())
    assert accuracies == sorted(accuracies, reverse=True)


def test_l1_line_ups_are_the_references_settings():
    # fra31/auto-attack set_version("standard") with norm L1: apgd with
    # use_largereps and 5 restarts, apgd-t with use_largereps and 5 targets,
    # fab-t with 9 targets, square with 5000 queries (AutoAttack's schedule).
    standard = kr.evaluation.AutoAttack(12.0, norm="l1").attacks(10)
    assert list(standard) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert {attack.norm for attack in standard.values()} == {"l1"}
    apgd_ce, apgd_t, fab_t, square = standard.values()
    assert (apgd_ce.restarts, apgd_ce.decreasing_epsilon) == (5, True)
    assert (apgd_t.targets, apgd_t.restarts, apgd_t.decreasing_epsilon) == (5, 1, True)
    assert (fab_t.targets, fab_t.restarts, fab_t.steps) == (9, 1, 100)
    assert (square.queries, square.p_init, square.schedule) == (
        5000,
        0.8,
        "autoattack",
    )
    fast = kr.evaluation.AutoAttack(12.0, norm="l1", version="fast")
    assert [type(a).__name__ for a in fast.attacks(10).values()] == ["APGD", "APGD"]
    assert fast.attacks(10)["apgd-ce"].decreasing_epsilon
    assert fast.attacks(3)["apgd-t"].targets == 2
    # rand keeps its own settings (no schedule), as the reference's.
    rand = kr.evaluation.AutoAttack(12.0, norm="l1", version="rand").attacks(10)
    assert {(a.eot_iter, a.restarts, a.decreasing_epsilon) for a in rand.values()} == {
        (20, 1, False)
    }
    custom = kr.evaluation.AutoAttack(
        12.0, norm="l1", version="custom", attacks_to_run=["apgd-dlr", "apgd-t"]
    ).attacks(10)
    assert [a.decreasing_epsilon for a in custom.values()] == [False, False]
    # "plus" runs with L1, warning as the reference's set_version does.
    with pytest.warns(UserWarning, match="version='plus' with norm='l1'"):
        plus = kr.evaluation.AutoAttack(12.0, norm="l1", version="plus")
    assert {attack.norm for attack in plus.attacks(10).values()} == {"l1"}


def test_l1_evaluation_of_a_linear_binary_model():
    model, x, y, distances, _ = linear_binary_problem("l1")
    distances = distances[:64]
    epsilon = float(np.median(distances))
    exact = np.mean(distances > epsilon)

    def evaluate(attacks):  # accuracies only: the sanity checks are not asserted
        return kr.evaluation.evaluate_robustness(
            model,
            x[:64],
            y[:64],
            epsilon=epsilon,
            norm="l1",
            attacks=attacks,
            checks=False,
            verbose=0,
        )

    report = evaluate("fast")
    assert report.norm == "l1" and report.protocol == "autoattack-fast"
    assert exact <= report.robust_accuracy <= exact + 0.05
    # FAB-T alone (one target: two classes) finds nearly every crossing.
    fab_t = kr.evaluation.AutoAttack(
        epsilon, norm="l1", version="custom", attacks_to_run=["fab-t"]
    )
    report = evaluate(fab_t)
    assert exact <= report.robust_accuracy <= exact + 0.05
