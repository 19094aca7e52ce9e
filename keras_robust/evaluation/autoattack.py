"""The AutoAttack protocol (Croce & Hein, 2020): a cascade of diverse attacks."""

import math
import warnings

import keras
import numpy as np

from keras_robust.attacks.apgd import APGD
from keras_robust.utils import validation

VERSIONS = ("standard", "plus", "rand", "fast", "custom")
# The attacks of each version, in the reference's order (autoattack.py,
# set_version); "custom" picks among ATTACK_NAMES.
LINE_UPS = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "plus": ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"),
    "rand": ("apgd-ce", "apgd-dlr"),
    "fast": ("apgd-ce", "apgd-t"),
}
ATTACK_NAMES = LINE_UPS["plus"]
_MAX_TARGETS = 9
# APGD-T's targets in the reference's L1 standard version.
_MAX_L1_TARGETS = 5
# Expectation over transformation of APGD in version="rand" (set_version).
RAND_EOT_ITER = 20


def _bucket(size):
    """Pad sizes to powers of two: few distinct shapes, few recompilations."""
    return max(8, 2 ** math.ceil(math.log2(max(size, 1))))


class AutoAttack:
    """AutoAttack: each attack runs only on the points every earlier one missed.

    version="standard" is the protocol RobustBench reports, in inference
    mode on logits:

    1. APGD-CE: 100 iterations, no restarts;
    2. APGD-T: targeted DLR loss, 100 iterations, 9 target classes;
    3. FAB-T: 100 iterations, 9 target classes;
    4. Square: 5000 queries, p_init 0.8, AutoAttack's schedule (p not
       rescaled to the budget, 5000 proposals after the initial point,
       `kr.attacks.Square(schedule="autoattack")`).

    A point counts as robust only if it survives all four.

    version="plus" is the reference's stronger line-up (`set_version`):
    APGD-CE with 5 restarts, APGD-DLR (untargeted DLR) with 5 restarts,
    untargeted FAB with 5 restarts, Square as above, then APGD-T and FAB-T
    as above. version="custom" runs `attacks_to_run`, a sequence of those
    names, in the given order, each configured as in "plus" (the
    reference's custom version uses its attacks' "plus" settings too).
    version="rand" is the reference's line-up for randomized defenses:
    APGD-CE and APGD-DLR, no restarts, each gradient the mean of 20
    forward-backward passes (expectation over transformation,
    `kr.attacks.APGD(eot_iter=20)`); `evaluate_robustness` then does not
    flag the model as randomized, as the reference skips that check.
    version="fast" runs APGD-CE and APGD-T only: cheaper, and never
    reported as the standard protocol (`protocol` says which ran). With
    fewer than 10 classes, the targeted attacks use every other class
    (classes - 1 targets); with fewer than 4 classes, APGD-T uses the
    targeted cross-entropy, since the targeted DLR loss needs 4 logits,
    and APGD-DLR (3 logits at least) the cross-entropy below 3.

    Args:
        epsilon: radius of the threat model, > 0.
        norm: "linf", "l2" or "l1". With "l1", version="standard" is the
            reference's L1 standard version: APGD-CE with the decreasing
            epsilon schedule (3, 2, 1 times epsilon) and 5 restarts, APGD-T
            with that schedule and 5 targets, FAB-T and Square as above in
            their L1 forms; "fast" its first two. "plus", "rand" and
            "custom" keep their own settings, as the reference (which warns
            that "plus" is not meant for L1; so does this class).
        version: "standard", "plus", "rand", "fast" or "custom".
        seed: int seed of every attack in the cascade.
        clip_min, clip_max: valid input range.
        attacks_to_run: with version="custom" only, the attack names (from
            "apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t").

    Example:
    >>> autoattack = kr.evaluation.AutoAttack(epsilon=8/255)
    >>> x_adv = autoattack(classifier, x, y)
    >>> autoattack.last_robust_accuracy   # after each attack, on that call

    Reference: Croce & Hein, "Reliable evaluation of adversarial robustness
    with an ensemble of diverse parameter-free attacks", ICML 2020.
    """

    def __init__(
        self,
        epsilon,
        norm="linf",
        version="standard",
        seed=0,
        clip_min=0.0,
        clip_max=1.0,
        attacks_to_run=None,
    ):
        self.epsilon = validation.positive_number(epsilon, "epsilon")
        self.norm = validation.norm_name(norm, ("linf", "l2", "l1"))
        self.version = validation.one_of(version, "version", VERSIONS)
        self.attacks_to_run = _line_up(self.version, attacks_to_run)
        if self.norm == "l1" and self.version == "plus":
            warnings.warn(
                "AutoAttack version='plus' with norm='l1': the reference's 'plus' "
                "settings are meant for L-inf and L2 (its set_version warns the "
                "same); version='standard' is its L1 protocol.",
                stacklevel=2,
            )
        self.seed = validation.non_negative_integer(seed, "seed")
        self.clip_min, self.clip_max = validation.clip_range(clip_min, clip_max)
        self._attacks = {}
        self.last_robust_accuracy = None

    @property
    def protocol(self):
        return f"autoattack-{self.version}"

    def attack_names(self):
        return list(self.attacks_to_run)

    def attacks(self, num_classes):
        """The cascade, `{name: attack}`, for a classifier with `num_classes`."""
        if num_classes not in self._attacks:
            self._attacks[num_classes] = self._build(num_classes)
        return self._attacks[num_classes]

    def _build(self, num_classes):
        common = {
            "epsilon": self.epsilon,
            "norm": self.norm,
            "clip_min": self.clip_min,
            "clip_max": self.clip_max,
            "seed": self.seed,
        }
        from keras_robust.attacks.fab import FAB
        from keras_robust.attacks.square import Square

        targets = min(_MAX_TARGETS, num_classes - 1)
        # Restarts of the untargeted attacks: 5 in "plus" and "custom".
        restarts = 1 if self.version in ("standard", "rand") else 5
        eot_iter = RAND_EOT_ITER if self.version == "rand" else 1
        # The reference's L1 standard version (set_version): APGD with the
        # decreasing epsilon schedule (use_largereps), 5 restarts, 5 targets.
        l1_standard = self.norm == "l1" and self.version in ("standard", "fast")
        apgd_t = {"targets": targets}
        if l1_standard:
            restarts = 5
            apgd_t = {
                "targets": min(_MAX_L1_TARGETS, num_classes - 1),
                "decreasing_epsilon": True,
            }
        schedule = {"decreasing_epsilon": True} if l1_standard else {}
        builders = {
            "apgd-ce": lambda: APGD(
                steps=100,
                loss="ce",
                restarts=restarts,
                eot_iter=eot_iter,
                **schedule,
                **common,
            ),
            "apgd-dlr": lambda: APGD(
                steps=100,
                loss="dlr" if num_classes >= 3 else "ce",
                restarts=restarts,
                eot_iter=eot_iter,
                **common,
            ),
            "fab": lambda: FAB(steps=100, restarts=restarts, **common),
            "square": lambda: Square(
                queries=5000, p_init=0.8, schedule="autoattack", **common
            ),
            "apgd-t": lambda: APGD(
                steps=100,
                loss="dlr" if num_classes >= 4 else "ce",
                **apgd_t,
                **common,
            ),
            "fab-t": lambda: FAB(steps=100, targets=targets, **common),
        }
        return {name: builders[name]() for name in self.attacks_to_run}

    def run(self, model, x, y):
        """Attacks one batch; returns (x_adv, {"clean" or attack: robust mask after it})."""
        return run_cascade(self.attacks, model, x, y)

    def __call__(self, model, x, y):
        """x_adv for a batch; `last_robust_accuracy` holds the cascade's accuracies."""
        x_adv, after = self.run(model, x, y)
        self.last_robust_accuracy = {k: float(v.mean()) for k, v in after.items()}
        return x_adv

    def __repr__(self):
        return (
            f"AutoAttack(epsilon={self.epsilon!r}, norm={self.norm!r}, "
            f"version={self.version!r}, seed={self.seed!r}"
            + (
                f", attacks_to_run={list(self.attacks_to_run)!r})"
                if self.version == "custom"
                else ")"
            )
        )


def _line_up(version, attacks_to_run):
    """The attack names a version runs; checks `attacks_to_run` against it."""
    if version != "custom":
        if attacks_to_run is not None:
            raise ValueError(
                f"`attacks_to_run` is for version='custom' only; version={version!r} "
                f"runs {list(LINE_UPS[version])}."
            )
        return LINE_UPS[version]
    if isinstance(attacks_to_run, str) or not attacks_to_run:
        raise ValueError(
            "`version`='custom' needs `attacks_to_run`, a non-empty list of names "
            f"from {list(ATTACK_NAMES)}; got {attacks_to_run!r}."
        )
    names = tuple(attacks_to_run)
    unknown = [name for name in names if name not in ATTACK_NAMES]
    if unknown or len(set(names)) != len(names):
        raise ValueError(
            f"`attacks_to_run` must name distinct attacks from {list(ATTACK_NAMES)}; "
            f"got {list(names)}."
        )
    return names


def run_cascade(attacks_for, model, x, y):
    """Runs attacks in turn, each on the points that every earlier one missed.

    Args:
        attacks_for: `num_classes -> {name: attack}`.
        model: a Keras classifier returning logits (run in inference mode).
        x: a numpy batch of images.
        y: integer or one-hot labels.

    Returns:
        (x_adv, after): x_adv holds, for each point some attack broke, the
        adversarial example of the first attack that broke it, and x
        elsewhere; `after` maps "clean" and each attack name to the boolean
        mask of points still correctly classified after it.
    """
    x = np.asarray(keras.ops.convert_to_numpy(x))
    # Floating and finite here; the attacks' clip range once they are known.
    validation.check_images(x, -np.inf, np.inf)
    x = x.astype("float32")
    logits = model(x, training=False)
    num_classes = validation.check_logits(logits, where="model")
    validation.check_labels(y, num_classes, batch_size=len(x))
    attacks = attacks_for(num_classes)
    for name, attack in attacks.items():  # before the first attack runs
        try:
            attack.check_input_shape(x.shape)
        except ValueError as error:
            raise ValueError(
                f"{error} The cascade's attack {name!r} cannot run on these "
                'inputs: choose attacks that can (AutoAttack version="fast", '
                "or a list of attacks without it)."
            ) from None
    validation.check_images(
        x,
        min(attack.clip_min for attack in attacks.values()),
        max(attack.clip_max for attack in attacks.values()),
    )
    logits = np.asarray(keras.ops.convert_to_numpy(logits))
    y = np.asarray(keras.ops.convert_to_numpy(y)).reshape(len(x), -1)
    y = y[:, 0] if y.shape[1] == 1 else y.argmax(1)
    robust = logits.argmax(1) == y
    x_adv = x.copy()
    after = {"clean": robust.copy()}
    for name, attack in attacks.items():
        remaining = np.flatnonzero(robust)
        if remaining.size:
            # Padding with copies of the first point keeps shapes few.
            padded = np.resize(remaining, _bucket(remaining.size))
            padded[remaining.size :] = remaining[0]
            found = np.asarray(
                keras.ops.convert_to_numpy(attack(model, x[padded], y[padded]))
            )[: remaining.size]
            predicted = np.asarray(
                keras.ops.convert_to_numpy(model(found, training=False))
            ).argmax(1)
            broken = predicted != y[remaining]
            x_adv[remaining[broken]] = found[broken]
            robust[remaining[broken]] = False
        after[name] = robust.copy()
    return x_adv, after
