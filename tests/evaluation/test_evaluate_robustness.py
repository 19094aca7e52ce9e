"""evaluate_robustness: cascade accounting, report round trip, sanity flags."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_robust as kr
from tests.digits_training import train_on_digits
from tests.helpers import linear_classifier
from tests.helpers import to_numpy

EPSILON = 0.1


class QuantizedInput(keras.layers.Layer):
    """Rounds pixels to 4 levels with no gradient: a classic masked defence."""

    def call(self, x):
        return ops.stop_gradient(ops.round(x * 3.0) / 3.0)


def masked(net):
    inputs = keras.Input(net.input_shape[1:])
    return keras.Model(inputs, net(QuantizedInput()(inputs)), name="masked")


@pytest.fixture
def test_split(digits):
    _, (x, y) = digits
    return x[:120], y[:120]


def quick_cascade():
    return [
        kr.attacks.PGD(EPSILON, steps=5, seed=0),
        kr.attacks.APGD(EPSILON, steps=5, seed=0),
    ]


def test_cascade_accuracies_match_a_direct_count(digits, test_split):
    net = train_on_digits("standard", digits)[0]
    x, y = test_split
    report = kr.evaluation.evaluate_robustness(
        net, x, y, epsilon=EPSILON, attacks=quick_cascade(), batch_size=50, verbose=0
    )
    assert report.protocol == "custom" and report.num_examples == 120
    assert list(report.attack_accuracy) == ["pgd", "apgd"]
    clean = to_numpy(net(x)).argmax(1) == y
    assert report.clean_accuracy == pytest.approx(clean.mean())
    accuracies = [report.clean_accuracy, *report.attack_accuracy.values()]
    assert accuracies == sorted(accuracies, reverse=True)  # a cascade only removes
    assert report.robust_accuracy == accuracies[-1] < report.clean_accuracy
    # The first attack alone, on the whole split, gives the first row, up to
    # its random starts (drawn per batch of 50 in the cascade, once for the
    # split here): 3 of 120 points apart on PyTorch (0.725 vs 0.75, 2026-12-01).
    x_adv = to_numpy(kr.attacks.PGD(EPSILON, steps=5, seed=0)(net, x, y))
    alone = np.mean(clean & (to_numpy(net(x_adv)).argmax(1) == y))
    assert report.attack_accuracy["pgd"] == pytest.approx(alone, abs=3.5 / 120)


def test_batches_from_an_iterable_give_the_same_report(digits, test_split):
    net = train_on_digits("standard", digits)[0]
    x, y = test_split
    arrays = kr.evaluation.evaluate_robustness(
        net, x, y, epsilon=EPSILON, attacks=quick_cascade(), batch_size=40, verbose=0
    )
    batches = [(x[i : i + 40], y[i : i + 40]) for i in range(0, 120, 40)]
    iterable = kr.evaluation.evaluate_robustness(
        net, batches, epsilon=EPSILON, attacks=quick_cascade(), verbose=0
    )
    assert iterable.attack_accuracy == arrays.attack_accuracy
    assert iterable.clean_accuracy == arrays.clean_accuracy


def test_no_flag_on_a_normal_model(digits, test_split):
    net = train_on_digits("standard", digits)[0]
    x, y = test_split
    report = kr.evaluation.evaluate_robustness(
        net, x, y, epsilon=EPSILON, attacks=quick_cascade(), verbose=0
    )
    assert report.flags == [], str(report)
    sweep = report.details["epsilon_sweep"]["accuracy"]
    assert sweep[0] > sweep[-1]
    assert report.details["gradient_check"]["zero"] == 0


def test_masked_gradients_are_flagged(digits, test_split):
    net = masked(train_on_digits("standard", digits)[0])
    x, y = test_split
    report = kr.evaluation.evaluate_robustness(
        net, x, y, epsilon=EPSILON, attacks=quick_cascade(), verbose=0
    )
    names = {flag.name for flag in report.flags}
    assert "zero_gradients" in names
    assert report.details["gradient_check"]["zero"] == len(x)
    assert "FLAGS" in str(report) and "zero_gradients" in str(report)


def test_a_weak_training_attack_is_flagged(digits, test_split):
    net = train_on_digits("standard", digits)[0]
    weak = kr.attacks.FGSM(EPSILON, step_size=EPSILON / 100)
    model = kr.models.AT(net, epsilon=EPSILON, attack=weak)
    x, y = test_split
    report = kr.evaluation.evaluate_robustness(
        model, x, y, epsilon=EPSILON, attacks=quick_cascade(), verbose=0
    )
    assert report.model_name == net.name
    assert "training_attack_overestimates" in {flag.name for flag in report.flags}
    details = report.details["training_attack"]
    assert details["accuracy"] > details["apgd_ce_20_accuracy"] + 0.1


def test_report_json_round_trip_and_robustbench_fields(tmp_path, digits, test_split):
    net = masked(train_on_digits("standard", digits)[0])
    x, y = test_split
    report = kr.evaluation.evaluate_robustness(
        net, x, y, epsilon=EPSILON, attacks=quick_cascade(), verbose=0
    )
    path = tmp_path / "report.json"
    report.to_json(path)
    restored = kr.evaluation.RobustnessReport.from_json(path)
    assert restored == report
    record = report.to_dict()
    assert record["threat_model"] == "Linf" and record["eps"] == EPSILON
    assert record["clean_acc"] == round(100 * report.clean_accuracy, 2)
    assert record["robust_acc"] == round(100 * report.robust_accuracy, 2)


def test_probability_outputs_warn(test_split):
    rng = np.random.default_rng(0)
    logits = linear_classifier(rng.normal(size=(64, 10)), np.zeros(10))
    inputs = keras.Input((8, 8, 1))
    flat = keras.layers.Flatten()(inputs)
    probabilities = keras.Model(inputs, ops.softmax(logits(flat)))
    x, y = test_split
    with pytest.warns(UserWarning, match="probabilities"):
        kr.evaluation.evaluate_robustness(
            probabilities,
            x,
            y,
            epsilon=EPSILON,
            attacks=quick_cascade(),
            checks=False,
            verbose=0,
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epsilon": None}, "epsilon"),
        ({"epsilon": -1.0}, "epsilon"),
        ({"attacks": "strong"}, "attacks"),
        ({"attacks": []}, "attacks"),
        ({"norm": "l3"}, "norm"),
        # Given attacks outside the reported ball would report a wrong number.
        ({"attacks": [kr.attacks.FGSM(2 * EPSILON)]}, r"fgsm \(linf, epsilon"),
        ({"attacks": {"l2": kr.attacks.PGD(EPSILON, norm="l2")}}, "`norm`='linf'"),
        (
            {"attacks": kr.evaluation.AutoAttack(EPSILON, version="fast"), "norm": 2},
            r"autoattack \(linf",
        ),
    ],
)
def test_bad_arguments(test_split, kwargs, match):
    x, y = test_split
    net = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    arguments = {"epsilon": EPSILON, "verbose": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        kr.evaluation.evaluate_robustness(net, x, y, **arguments)


def test_attacks_at_a_smaller_radius_are_accepted(test_split):
    """Their examples lie in the larger ball: still an upper bound on robustness."""
    x, y = test_split
    net = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    weaker = [kr.attacks.FGSM(EPSILON / 2)]
    report = kr.evaluation.evaluate_robustness(
        net, x, y, epsilon=EPSILON, attacks=weaker, checks=False, verbose=0
    )
    assert report.epsilon == EPSILON
    assert report.robust_accuracy <= report.clean_accuracy


def test_feature_vectors_with_square_fail_before_the_first_attack(test_split):
    # Square needs images; the standard cascade used to run APGD-CE, APGD-T
    # and FAB-T on (batch, 64) vectors, then raise in Square.
    x, y = test_split
    x = x.reshape(len(x), -1)
    rng = np.random.default_rng(0)
    net = linear_classifier(rng.normal(size=(64, 10)), np.zeros(10))
    calls = []

    def counted(inputs, training=False):
        calls.append(len(inputs))
        return net(inputs, training=training)

    with pytest.raises(ValueError, match=r"got `x` of shape \(120, 64\).*'square'"):
        kr.evaluation.evaluate_robustness(
            counted, x, y, epsilon=EPSILON, checks=False, verbose=0
        )
    assert calls == [120]  # the clean forward pass only


class NoisyLogits(keras.layers.Layer):
    """Adds fresh Gaussian noise on every call, in inference mode too."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.noise = keras.random.SeedGenerator(0)

    def call(self, x):
        return x + keras.random.normal(ops.shape(x), stddev=0.5, seed=self.noise)


class AdaptsToItsInputs(keras.layers.Layer):
    """Subtracts a running mean of what it has seen: state changed in inference."""

    def build(self, input_shape):
        self.mean = self.add_weight(
            shape=input_shape[1:], initializer="zeros", trainable=False
        )

    def call(self, x):
        self.mean.assign(0.5 * self.mean + 0.5 * ops.mean(x, axis=0))
        return x - self.mean


class PurifiesItsInputs(keras.layers.Layer):
    """One gradient step on ||x||^2 at test time: a differentiating forward."""

    def call(self, x):
        gradient = kr.backend.input_gradient(lambda v: ops.sum(ops.square(v)), x)
        return x - 0.1 * gradient


def output_checked(model, x, y, attack_names=("apgd-ce",), protocol="custom"):
    """A report of `attack_names` that went through the output checks alone."""
    from keras_robust.evaluation import evaluate

    report = kr.evaluation.RobustnessReport(
        clean_accuracy=1.0,
        robust_accuracy=1.0,
        attack_accuracy=dict.fromkeys(attack_names, 1.0),
        num_examples=len(x),
        epsilon=EPSILON,
        norm="linf",
        protocol=protocol,
        seconds=0.0,
        backend=kr.backend.BACKEND,
    )
    evaluate._check_outputs(report, model, x, y)
    return report


def output_flags(model, x, y, attack_names=("apgd-ce",)):
    """Flags of the output checks alone, and the numbers behind them."""
    report = output_checked(model, x, y, attack_names)
    return {flag.name for flag in report.flags}, report.details["output_check"]


def test_output_checks_flag_randomized_probability_and_few_class_models(test_split):
    x, y = test_split
    rng = np.random.default_rng(0)
    inputs = keras.Input((8, 8, 1))
    logits = linear_classifier(rng.normal(size=(64, 10)), np.zeros(10))(
        keras.layers.Flatten()(inputs)
    )
    plain = keras.Model(inputs, logits)
    flags, details = output_flags(plain, x, y)
    assert flags == set() and details["max_difference"] == 0.0
    noisy = keras.Model(inputs, NoisyLogits()(logits))
    flags, details = output_flags(noisy, x, y)
    assert flags == {"randomized_model"} and details["max_difference"] > 1e-4
    # AutoAttack's version for randomized defenses expects it (as the
    # reference, which skips its check there).
    report = output_checked(noisy, x, y, ("apgd-ce", "apgd-dlr"), "autoattack-rand")
    assert (
        report.flags == [] and report.details["output_check"]["max_difference"] > 1e-4
    )
    probabilities = keras.Model(inputs, ops.softmax(logits))
    assert output_flags(probabilities, x, y)[0] == {"probability_outputs"}
    for layer, seen in [
        (AdaptsToItsInputs, "changed 1 of its variables"),
        (PurifiesItsInputs, "computes gradients inside its forward pass"),
    ]:
        dynamic = keras.Model(inputs, plain(layer()(inputs)))
        report = output_checked(dynamic, x, y)
        messages = {flag.name: flag.message for flag in report.flags}
        assert seen in messages["dynamic_model"], layer
    # 10 classes: the standard settings fit; 3: fewer targets, no targeted DLR.
    standard = ("apgd-ce", "apgd-t", "fab-t", "square")
    assert output_flags(plain, x, y, standard)[0] == set()
    three = keras.Model(inputs, logits[:, :3])
    assert output_flags(three, x, y % 3, standard)[0] == {"few_classes"}
    assert output_flags(three, x, y % 3)[0] == set()  # APGD-CE needs no more
