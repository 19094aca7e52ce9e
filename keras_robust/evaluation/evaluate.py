"""`evaluate_robustness`: clean and robust accuracy, batch by batch, with sanity flags."""

import itertools
import sys
import time

import keras
import numpy as np

from keras_robust import backend
from keras_robust.attacks.apgd import APGD
from keras_robust.attacks.base import Attack
from keras_robust.evaluation.autoattack import AutoAttack
from keras_robust.evaluation.autoattack import run_cascade
from keras_robust.evaluation.report import Flag
from keras_robust.evaluation.report import RobustnessReport
from keras_robust.evaluation.state import EvaluationState
from keras_robust.evaluation.state import batch_digest
from keras_robust.evaluation.state import restore_seed_states
from keras_robust.evaluation.state import seed_states
from keras_robust.evaluation.state import weights_digest
from keras_robust.losses import cross_entropy
from keras_robust.utils import data as data_lib
from keras_robust.utils import random_state
from keras_robust.utils import validation

# Sanity checks run on the first examples only: enough to see a pattern.
CHECK_EXAMPLES = 256
EPSILON_MULTIPLIERS = (1.0, 2.0, 4.0)
# Fraction of all examples a black-box attack may break after the white-box
# ones before it looks like gradient masking.
BLACK_BOX_TOLERANCE = 0.01
# How far accuracy under the training attack may exceed APGD's.
TRAINING_ATTACK_TOLERANCE = 0.1
BLACK_BOX_ATTACKS = ("square",)
# Losses of training attacks whose accuracy is comparable with APGD-CE's.
MISCLASSIFICATION_LOSSES = ("ce", "cw", "dlr")
# The reference's randomized-defense check (autoattack/checks.py,
# check_randomized): 5 passes, L2-normalised outputs within 1e-4.
RANDOMIZED_PASSES = 5
RANDOMIZED_TOLERANCE = 1e-4
# Cascade attacks whose standard settings need many classes: targeted DLR
# needs 4 logits, untargeted DLR 3, and the targeted attacks 9 targets.
TARGETED_ATTACKS = ("apgd-t", "fab-t")
STANDARD_TARGETS = 9
# Functions whose call inside a forward pass means that it differentiates:
# TensorFlow's GradientTape.gradient, JAX's grad / value_and_grad / vjp,
# torch's autograd.grad and Tensor.backward (the reference's check_dynamic
# watches grad, backward and _make_grads).
GRADIENT_FUNCTIONS = frozenset(
    ("gradient", "grad", "value_and_grad", "vjp", "backward", "_make_grads")
)


class _Cascade:
    """A custom cascade: attacks applied in turn, as AutoAttack does."""

    def __init__(self, attacks):
        self._attacks = attacks

    def attacks(self, num_classes):
        del num_classes  # The attacks were given for this classifier.
        return self._attacks

    def run(self, model, x, y):
        return run_cascade(self.attacks, model, x, y)

    def __repr__(self):
        return f"cascade({self._attacks!r})"


def _cascade(attacks, epsilon, norm, seed):
    """(runner, protocol name) from the `attacks` argument."""
    if attacks in ("standard", "plus", "rand", "fast"):
        attacks = AutoAttack(epsilon, norm, version=attacks, seed=seed)
    if isinstance(attacks, AutoAttack):
        _check_threat_model({"autoattack": attacks}, epsilon, norm)
        return attacks, attacks.protocol
    if isinstance(attacks, Attack):
        attacks = [attacks]
    if isinstance(attacks, (list, tuple)):
        names = [type(a).__name__.lower() for a in attacks]
        attacks = {
            name if names.count(name) == 1 else f"{name}-{index}": attack
            for index, (name, attack) in enumerate(zip(names, attacks))
        }
    if (
        isinstance(attacks, dict)
        and attacks
        and all(isinstance(a, Attack) for a in attacks.values())
    ):
        _check_threat_model(attacks, epsilon, norm)
        return _Cascade(dict(attacks)), "custom"
    raise ValueError(
        "`attacks` must be 'standard', 'plus', 'rand', 'fast', a "
        "kr.evaluation.AutoAttack, a "
        f"kr.attacks attack, or a list/dict of them; got {attacks!r}."
    )


def _check_threat_model(attacks, epsilon, norm):
    """Given attacks must stay inside the reported ball: the same norm, a radius
    no larger (a smaller one still bounds robust accuracy from above)."""
    outside = [
        f"{name} ({attack.norm}, epsilon={attack.epsilon:g})"
        for name, attack in attacks.items()
        if attack.norm != norm or attack.epsilon > epsilon * (1 + 1e-6)
    ]
    if outside:
        raise ValueError(
            f"`attacks` {', '.join(outside)} leave the threat model the report "
            f"states, `norm`={norm!r} and `epsilon`={epsilon:g}: build them with "
            "that norm and an epsilon no larger, or pass the matching "
            "`norm`/`epsilon`."
        )


def evaluate_robustness(
    model,
    x,
    y=None,
    epsilon=None,
    norm="linf",
    attacks="standard",
    batch_size=256,
    seed=0,
    checks=True,
    verbose=1,
    state_path=None,
):
    """Clean and robust accuracy of a classifier, with checks for masked gradients.

    The data is processed batch by batch (a `tf.data.Dataset` larger than
    memory works); each batch goes through the attack cascade, in inference
    mode on logits. With `checks=True`, the first 256 examples also go
    through sanity checks, each of which raises a `Flag` in the report:

    - "randomized_model": 5 forward passes in inference mode disagree
      (L2-normalised outputs by more than 1e-4, or the correct count);
    - "probability_outputs": the outputs are non-negative rows summing to 1;
    - "dynamic_model": a forward pass in inference mode computes gradients
      (a test-time optimisation) or changes the model's variables;
    - "few_classes": the cascade's settings changed for the class count
      (fewer than 9 targets, no targeted DLR below 4 classes, no DLR below 3);
    - "nan_gradients" / "zero_gradients": the input gradient of the
      cross-entropy is NaN, or exactly zero, for some examples: gradient
      attacks get no signal there;
    - "black_box_beats_white_box": a black-box attack (Square) broke more
      than 1% of the examples after the white-box attacks had failed on them;
    - "accuracy_not_falling_with_epsilon": APGD-CE (20 steps) accuracy does
      not fall from epsilon to 2 epsilon to 4 epsilon;
    - "training_attack_overestimates": for a `kr.models.RobustModel` whose
      training threat model matches and whose training attack maximises
      misclassification (CE, CW or DLR loss; not TRADES' KL attack),
      accuracy under its own training attack is more than 10 points above
      APGD-CE's (catastrophic overfitting of FGSM training looks like this).

    Args:
        model: a Keras classifier returning logits, or a `kr.models`
            RobustModel (its classifier is evaluated).
        x: images (numpy, float in [0, 1]), or a dataset/iterable of
            (images, labels) batches when `y` is None.
        y: integer or one-hot labels for array `x`.
        epsilon: radius of the threat model, > 0 (required).
        norm: "linf", "l2" or "l1" (L1: APGD attacks only, see
            `kr.evaluation.AutoAttack`).
        attacks: "standard" (AutoAttack: APGD-CE, APGD-T, FAB-T, Square),
            "plus" (AutoAttack+), "rand" (APGD-CE and APGD-DLR with
            expectation over transformation, for randomized defenses),
            "fast" (APGD-CE, APGD-T), a
            `kr.evaluation.AutoAttack`, or a
            `kr.attacks` attack / list / dict of attacks run as a cascade.
            Given attacks must use `norm` and an epsilon no larger than
            `epsilon` (a ValueError otherwise), so that the report's threat
            model is the one attacked.
        batch_size: batch size for array inputs.
        seed: seed of the attacks.
        checks: run the sanity checks.
        verbose: 1 shows a progress bar, 0 is silent.
        state_path: a JSON file that makes the evaluation resumable: after
            each batch, the counts so far and the attacks' random states are
            written to it atomically. Started again with the same
            arguments (same model weights, data in the same order, attacks,
            seed, batch size, backend), a killed evaluation skips the
            finished batches and ends with the report an uninterrupted run
            gives (its `seconds` add up both runs). Other arguments raise a
            ValueError naming them. The file stays when the run ends: a
            later call only reruns the sanity checks.

    Returns:
        A `kr.evaluation.RobustnessReport`; `print(report)` shows a table,
        `report.to_json(path)` saves it.

    Example:
    >>> report = kr.evaluation.evaluate_robustness(net, x_test, y_test, epsilon=8/255)
    >>> print(report); report.to_json("robustness.json")
    """
    if epsilon is None:
        raise ValueError("`epsilon` is required, e.g. epsilon=8/255.")
    epsilon = validation.positive_number(epsilon, "epsilon")
    norm = validation.norm_name(norm, ("linf", "l2", "l1"))
    batch_size = validation.positive_integer(batch_size, "batch_size")
    seed = validation.non_negative_integer(seed, "seed")
    runner, protocol = _cascade(attacks, epsilon, norm, seed)
    classifier = data_lib.classifier_of(model)
    if not callable(classifier):
        raise TypeError(
            "`model` must be a Keras classifier returning logits or a "
            f"kr.models RobustModel, got {type(model).__name__}."
        )
    validation.check_data(x, y)
    state = None
    if state_path is not None:
        state = EvaluationState.open(
            state_path,
            {
                "epsilon": epsilon,
                "norm": norm,
                "protocol": protocol,
                "attacks": repr(runner),
                "seed": seed,
                "batch_size": batch_size if y is not None else None,
                "num_examples": len(x) if y is not None else None,
                "backend": backend.BACKEND,
                "weights_sha256": weights_digest(classifier),
            },
        )
        if state.finished and verbose:
            print(
                f"Continuing the evaluation saved in {state.path}: "
                f"{state.finished} batches done in {state.seconds:.0f} s."
            )
    start = time.perf_counter()
    total = clean = 0
    robust_after = {}
    check_x, check_y = [], []
    batches = data_lib.iterate_batches(x, y, batch_size)
    progress = keras.utils.Progbar(_num_batches(x, y, batch_size), verbose=verbose)
    index = -1
    for index, (x_batch, y_batch) in enumerate(batches):
        if state is None:
            _, after = runner.run(classifier, x_batch, y_batch)
            examples, correct = len(x_batch), _correct_counts(after)
        else:
            examples, correct = _resumable_batch(
                state, index, runner, classifier, x_batch, y_batch, start
            )
        y_batch = data_lib.integer_labels(y_batch)
        total += examples
        clean += correct["clean"]
        for name, count in correct.items():
            if name != "clean":
                robust_after[name] = robust_after.get(name, 0) + count
        if checks and sum(len(b) for b in check_x) < CHECK_EXAMPLES:
            check_x.append(x_batch)
            check_y.append(y_batch)
        robust = min(robust_after.values()) if robust_after else clean
        progress.update(
            index + 1, [("clean", clean / total), ("robust", robust / total)]
        )
    if state is not None:
        state.check_complete(index + 1)
    if total == 0:
        raise ValueError("`x` holds no examples.")
    attack_accuracy = {name: count / total for name, count in robust_after.items()}
    robust = min(attack_accuracy.values()) if attack_accuracy else clean / total
    report = RobustnessReport(
        clean_accuracy=clean / total,
        robust_accuracy=robust,
        attack_accuracy=attack_accuracy,
        num_examples=total,
        epsilon=epsilon,
        norm=norm,
        protocol=protocol,
        seconds=0.0,
        backend=backend.BACKEND,
        model_name=getattr(classifier, "name", ""),
    )
    if checks:
        x_check = np.concatenate(check_x)[:CHECK_EXAMPLES]
        y_check = np.concatenate(check_y)[:CHECK_EXAMPLES]
        _run_checks(report, model, classifier, x_check, y_check, seed)
    report.seconds = time.perf_counter() - start
    if state is not None:
        report.seconds += state.seconds_at_open
    return report


def _correct_counts(after):
    """`{"clean" or attack: number of points still correct}` from the masks."""
    return {name: int(mask.sum()) for name, mask in after.items()}


def _resumable_batch(state, index, runner, classifier, x, y, start):
    """(examples, correct counts) of batch `index`: saved, or run and saved."""
    digest = batch_digest(x, data_lib.integer_labels(y))
    if index < state.finished:
        return state.counts(index, digest)
    if index == state.finished_at_open > 0:
        # Continue as the interrupted process would have: the attacks'
        # random states as they were, compiled if they had run before.
        attacks = runner.attacks(state.num_classes)
        restore_seed_states(attacks, state.seed_states)
        called = state.called_attacks()
        for name, attack in attacks.items():
            if name in called:
                attack.expect_repeated_calls(classifier)
    _, after = runner.run(classifier, x, y)
    if state.num_classes is None:
        logits = classifier(x, training=False)
        state.num_classes = validation.check_logits(logits, where="model")
    correct = _correct_counts(after)
    state.record(
        digest,
        len(x),
        correct,
        state.num_classes,
        seed_states(runner.attacks(state.num_classes)),
        state.seconds_at_open + time.perf_counter() - start,
    )
    return len(x), correct


def _num_batches(x, y, batch_size):
    if y is not None:
        return int(np.ceil(len(x) / batch_size))
    try:
        return len(x)
    except TypeError:
        cardinality = getattr(x, "cardinality", None)
        count = int(cardinality()) if cardinality is not None else -1
        return count if count >= 0 else None


def _accuracy(classifier, x, y):
    logits = keras.ops.convert_to_numpy(classifier(x, training=False))
    return float(np.mean(np.asarray(logits).argmax(1) == y))


def _run_checks(report, model, classifier, x, y, seed):
    _check_outputs(report, classifier, x, y)
    _check_gradients(report, classifier, x, y)
    _check_black_box(report)
    sweep = _check_epsilon_sweep(report, classifier, x, y, seed)
    _check_training_attack(report, model, classifier, x, y, sweep[0])


def _check_outputs(report, classifier, x, y):
    """Flags what the outputs show: randomness, probabilities, few classes."""
    outputs = [
        np.asarray(
            keras.ops.convert_to_numpy(classifier(x, training=False)), np.float64
        )
        for _ in range(RANDOMIZED_PASSES)
    ]
    unit = [o / (np.linalg.norm(o, axis=1, keepdims=True) + 1e-10) for o in outputs]
    spread = max(
        float(np.linalg.norm(a - b, axis=1).max())
        for a, b in itertools.combinations(unit, 2)
    )
    correct = [int(np.sum(o.argmax(1) == y)) for o in outputs]
    report.details["output_check"] = {
        "passes": RANDOMIZED_PASSES,
        "max_difference": spread,
        "correct": correct,
    }
    # version="rand" is meant for randomized models (the reference skips
    # its check there too).
    expects_randomness = report.protocol == "autoattack-rand"
    randomized = spread > RANDOMIZED_TOLERANCE or len(set(correct)) > 1
    if randomized and not expects_randomness:
        report.flags.append(
            Flag(
                "randomized_model",
                f"{RANDOMIZED_PASSES} forward passes in inference mode on the "
                f"same inputs differ (largest difference of the L2-normalised "
                f"outputs {spread:.2g}; correct counts {correct}): the model "
                "looks randomized, and attacks on single draws of its "
                "randomness overstate its robustness. Attack the expectation "
                "over the randomness (EOT), as AutoAttack's version='rand'.",
            )
        )
    if validation.looks_like_probabilities(outputs[0]):
        report.flags.append(
            Flag(
                "probability_outputs",
                "The model's outputs are non-negative and sum to 1: attacks on "
                "probabilities instead of logits see masked gradients. Remove "
                "the final softmax.",
            )
        )
    _check_class_count(report, outputs[0].shape[1])
    _check_dynamic(report, classifier, x)


def _check_dynamic(report, classifier, x):
    """Flags a forward pass that changes the model or differentiates inside.

    The reference's `check_dynamic` traces the forward pass for gradient
    calls (a defense that optimises at test time); this also compares the
    model's variables before and after an inference-mode call (a defense
    that adapts its state to what it sees).
    """
    # Seed-generator states advance in every call of a randomized model,
    # which the randomized_model check covers.
    variables = [
        v
        for v in getattr(classifier, "variables", [])
        if not random_state.is_random_state(v)
    ]
    before = [np.array(keras.ops.convert_to_numpy(v.value)) for v in variables]
    gradient_calls = _count_calls(
        lambda: classifier(x, training=False), GRADIENT_FUNCTIONS
    )
    changed = [
        v.path
        for v, old in zip(variables, before)
        if not np.array_equal(np.asarray(keras.ops.convert_to_numpy(v.value)), old)
    ]
    report.details["dynamic_check"] = {
        "gradient_calls": gradient_calls,
        "changed_variables": changed,
    }
    reasons = []
    if gradient_calls:
        reasons.append(
            f"it computes gradients inside its forward pass ({gradient_calls} calls)"
        )
    if changed:
        shown = ", ".join(changed[:3]) + (", ..." if len(changed) > 3 else "")
        reasons.append(
            f"an inference-mode call changed {len(changed)} of its variables ({shown})"
        )
    if reasons:
        report.flags.append(
            Flag(
                "dynamic_model",
                "The model looks like a dynamic defense: "
                + "; ".join(reasons)
                + ". Its predictions depend on what it saw or optimised at "
                "test time, and a fixed cascade of attacks may overstate its "
                "robustness: evaluate it with an adaptive attack.",
            )
        )


def _count_calls(fn, names):
    """Runs `fn()`; returns how many Python functions named in `names` it called."""
    count = 0
    previous = sys.gettrace()

    def trace(frame, event, arg):
        nonlocal count
        if event == "call" and frame.f_code.co_name in names:
            count += 1
        return None  # no line-by-line tracing inside the frame

    sys.settrace(trace)
    try:
        fn()
    finally:
        sys.settrace(previous)
    return count


def _check_class_count(report, classes):
    """Flags a cascade whose standard settings do not fit `classes`."""
    names = set(report.attack_accuracy)
    changes = []
    if names & set(TARGETED_ATTACKS) and classes - 1 < STANDARD_TARGETS:
        changes.append(
            f"the targeted attacks use {classes - 1} target classes, not "
            f"{STANDARD_TARGETS}"
        )
    if "apgd-t" in names and classes < 4:
        changes.append("APGD-T uses the targeted cross-entropy (targeted DLR needs 4)")
    if "apgd-dlr" in names and classes < 3:
        changes.append("APGD-DLR uses the cross-entropy (DLR needs 3)")
    if changes:
        report.flags.append(
            Flag(
                "few_classes",
                f"With {classes} classes, " + "; ".join(changes) + ": the "
                "protocol differs from the standard one on 10 classes.",
            )
        )


def _check_gradients(report, classifier, x, y):
    def total_loss(images):
        return keras.ops.sum(cross_entropy(y, classifier(images, training=False)))

    gradient = keras.ops.convert_to_numpy(
        backend.input_gradient(total_loss, keras.ops.convert_to_tensor(x))
    )
    gradient = np.asarray(gradient).reshape(len(x), -1)
    nan = int(np.sum(~np.all(np.isfinite(gradient), axis=1)))
    zero = int(np.sum(np.all(gradient == 0, axis=1)))
    report.details["gradient_check"] = {
        "examples": len(x),
        "nan": nan,
        "zero": zero,
        "mean_abs": float(np.nanmean(np.abs(gradient))),
    }
    if nan:
        report.flags.append(
            Flag(
                "nan_gradients",
                f"{nan} of {len(x)} examples have NaN/Inf input gradients; "
                "gradient attacks cannot be trusted on them.",
            )
        )
    if zero:
        report.flags.append(
            Flag(
                "zero_gradients",
                f"{zero} of {len(x)} examples have an exactly zero input "
                "gradient of the cross-entropy (masked or saturated "
                "gradients): gradient attacks get no signal there. Look for "
                "non-differentiable input layers, a softmax output, or "
                "float16 underflow.",
            )
        )


def _check_black_box(report):
    names = list(report.attack_accuracy)
    for index, name in enumerate(names):
        if name not in BLACK_BOX_ATTACKS or index == 0:
            continue
        before = report.attack_accuracy[names[index - 1]]
        gained = before - report.attack_accuracy[name]
        report.details[f"{name}_broke"] = gained
        if gained > BLACK_BOX_TOLERANCE:
            report.flags.append(
                Flag(
                    "black_box_beats_white_box",
                    f"{name} (black-box, no gradients) broke {100 * gained:.2f}% "
                    "of the examples after every white-box attack had failed "
                    "on them: the gradients look masked.",
                )
            )


def _check_epsilon_sweep(report, classifier, x, y, seed):
    accuracies = []
    for multiplier in EPSILON_MULTIPLIERS:
        attack = APGD(
            report.epsilon * multiplier, steps=20, norm=report.norm, seed=seed
        )
        x_adv = attack(classifier, x, y)
        accuracies.append(_accuracy(classifier, x_adv, y))
    report.details["epsilon_sweep"] = {
        "attack": "apgd-ce-20",
        "epsilons": [report.epsilon * m for m in EPSILON_MULTIPLIERS],
        "accuracy": accuracies,
    }
    not_falling = [
        (smaller, larger)
        for smaller, larger in zip(accuracies, accuracies[1:])
        if smaller > 0 and larger >= smaller
    ]
    if not_falling:
        report.flags.append(
            Flag(
                "accuracy_not_falling_with_epsilon",
                "APGD-CE accuracy at epsilon x (1, 2, 4): "
                + ", ".join(f"{100 * a:.1f}%" for a in accuracies)
                + ". A larger threat model should break more points.",
            )
        )
    return accuracies


def _check_training_attack(report, model, classifier, x, y, apgd_accuracy):
    attack = getattr(model, "attack", None)
    if model is classifier or not isinstance(attack, Attack):
        return
    if attack.epsilon != report.epsilon or attack.norm != report.norm:
        report.details["training_attack"] = "skipped: another threat model"
        return
    if getattr(attack, "loss", None) not in MISCLASSIFICATION_LOSSES:
        # TRADES' KL attack (or SCORE's SE attack) does not aim at
        # misclassification, so its accuracy says nothing about overfitting.
        report.details["training_attack"] = (
            "skipped: the training attack does not maximise misclassification"
        )
        return
    accuracy = _accuracy(classifier, attack(classifier, x, y), y)
    report.details["training_attack"] = {
        "attack": repr(attack),
        "accuracy": accuracy,
        "apgd_ce_20_accuracy": apgd_accuracy,
    }
    if accuracy - apgd_accuracy > TRAINING_ATTACK_TOLERANCE:
        report.flags.append(
            Flag(
                "training_attack_overestimates",
                f"accuracy under the training attack ({100 * accuracy:.1f}%) is "
                f"far above APGD-CE's ({100 * apgd_accuracy:.1f}%): a sign of "
                "catastrophic overfitting or of gradient masking.",
            )
        )
