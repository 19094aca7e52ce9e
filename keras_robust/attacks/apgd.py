"""Auto-PGD (Croce & Hein, 2020): PGD with momentum and an adaptive step size."""

import math

import keras
import numpy as np
from keras import ops

from keras_robust import backend
from keras_robust.attacks import norms
from keras_robust.attacks import objectives
from keras_robust.attacks.base import Attack
from keras_robust.utils import labels as labels_lib
from keras_robust.utils import validation

APGD_LOSSES = ("ce", "dlr")


def checkpoints(steps):
    """(is_checkpoint, window) per iteration, from the reference schedule.

    The first checkpoint comes after max(int(0.22 n), 1) iterations; each
    following window is 0.03 n shorter, but at least 0.06 n (n = steps).
    `window[i]` is the length of the window that ends at checkpoint i.
    """
    first = max(int(0.22 * steps), 1)
    shortest = max(int(0.06 * steps), 1)
    decrease = max(int(0.03 * steps), 1)
    is_checkpoint = np.zeros(steps, bool)
    window = np.ones(steps, "float32")
    length, count = first, 0
    for iteration in range(steps):
        count += 1
        if count == length:
            is_checkpoint[iteration] = True
            window[iteration] = length
            length, count = max(length - decrease, shortest), 0
    return is_checkpoint, window


def l1_checkpoints(steps):
    """The L1 checkpoints: every max(int(0.04 n), 1) iterations (reference)."""
    every = max(int(0.04 * steps), 1)
    return (np.arange(steps) + 1) % every == 0


def epsilon_stages(steps):
    """[(epsilon multiple, iterations)] of the reference's `use_largereps`.

    3 epsilon, 2 epsilon, then epsilon, for ceil(0.3 n), ceil(0.3 n) and the
    remaining iterations.
    """
    first = math.ceil(0.3 * steps)
    return [(3.0, first), (2.0, first), (1.0, steps - 2 * first)]


def l0_norm(delta):
    """Per-sample count of non-zero entries, float (batch,)."""
    return ops.sum(
        ops.cast(ops.not_equal(norms.flatten(delta), 0.0), "float32"), axis=1
    )


def sparse_sign_direction(gradient, topk):
    """The reference's L1 step direction from a top-k fraction per sample.

    Keeps the entries with |g_i| at least the value at position
    floor((1 - topk) d) of the sorted |g| (the largest topk share), and
    returns sign(g_kept) / (||sign(g_kept)||_1 + 1e-10).
    """
    flat = norms.flatten(ops.abs(gradient))
    features = flat.shape[-1]
    position = ops.cast(
        ops.clip(ops.floor((1.0 - topk) * features), 0, features - 1), "int32"
    )
    threshold = ops.take_along_axis(ops.sort(flat, axis=1), position[:, None], axis=1)
    threshold = ops.reshape(threshold, (-1,) + (1,) * (len(gradient.shape) - 1))
    kept = ops.sign(gradient) * ops.cast(
        ops.greater_equal(ops.abs(gradient), threshold), gradient.dtype
    )
    size = ops.sum(ops.abs(kept), axis=tuple(range(1, len(gradient.shape))))
    return kept / (norms.per_sample(size, gradient) + 1e-10)


@keras.saving.register_keras_serializable(package="keras_robust")
class APGD(Attack):
    """Auto-PGD: momentum PGD whose step size halves when progress stalls.

    From a start on the epsilon sphere, with eta_0 = 2 epsilon and
    momentum alpha = 0.75 (no momentum on the first step):

        z_{k+1} = P(x_k + eta_k * d(g_k))          d: sign (L-inf), g/||g||_2 (L2)
        x_{k+1} = P(x_k + alpha (z_{k+1} - x_k) + (1 - alpha)(x_k - x_{k-1}))

    P projects onto the ball and the box. At checkpoints (after 22% of the
    iterations, then windows 3% shorter, at least 6%), a sample halves its
    step and restarts from its best point x_max when either (1) its loss
    rose in at most rho = 75% of the window's steps, or (2) its step was not
    halved at the previous checkpoint and its best loss has not improved
    since. Every visited point is checked: a sample counts as broken as soon
    as one iterate is misclassified, and that iterate is returned; for the
    others the highest-loss point is returned. Samples already misclassified
    are returned unchanged.

    Targeted (`targets=T`, APGD-T): `y` holds the TRUE labels; the attack
    runs once per target class, the 2nd to (T+1)-th highest logits of the
    clean input, maximising the targeted DLR loss
    -(f_y - f_t) / (f_pi1 - (f_pi3 + f_pi4) / 2) (or -CE(f, t) with
    loss="ce"), and keeps the first success.

    One difference from the reference code: its first oscillation check
    compares the first iterate's loss with an unwritten entry (0) of its loss
    history; here it is compared with the loss at the start, as in the
    paper's definition.

    Args:
        epsilon: radius of the ball, > 0.
        steps: iterations per run, >= 1 (AutoAttack: 100).
        norm: "linf", "l2" or "l1" (the sparse L1 form below).
        loss: "ce" or "dlr" (untargeted); with `targets`, "dlr" is the
            targeted DLR loss and "ce" the targeted cross-entropy.
        targets: None (untargeted) or the number of target classes, 1 to
            classes - 1 (AutoAttack standard: 9).
        restarts: random restarts per target, >= 1.
        rho: oscillation threshold of condition (1), in (0, 1].
        momentum: alpha, in [0, 1].
        eot_iter: forward-backward passes averaged per gradient, >= 1:
            expectation over transformation for randomized defenses
            (AutoAttack version="rand": 20), g = (1/E) sum_e grad L(f_e(x))
            over E random draws of the model; the loss and the prediction
            that decide progress and success are the last pass's.
        decreasing_epsilon: L1 only, the reference's `use_largereps`:
            three stages at 3, 2 and 1 times epsilon (ceil(0.3 n),
            ceil(0.3 n) and the remaining iterations), each from the last
            stage's best point projected onto its ball; success counts in
            the last stage only. Needs steps >= 3.
        clip_min, clip_max: valid input range.
        seed: seed of the attack's own generator.

    L1 (Croce & Hein, "Mind the box", 2021; the reference's L1 branch):
    the start is x + t, t ~ N(0, I), projected onto the L1 ball and the box
    (`norms.l1_box_projection`); no momentum; the step eta_0 = epsilon
    moves along sign(g') / ||sign(g')||_1, g' the top-k share of |g|; every
    max(int(0.04 n), 1) iterations, with nnz = ||x_max - x||_0: where nnz
    fell below 95% of its last value the step resets to epsilon and the run
    restarts from x_max, else the step shrinks by 1.5 (within
    [epsilon / 10, epsilon]); the share becomes nnz / d / 1.5 (first 0.2).

    Example:
    >>> apgd_ce = kr.attacks.APGD(epsilon=8/255, steps=100, loss="ce")
    >>> apgd_t = kr.attacks.APGD(epsilon=8/255, steps=100, loss="dlr", targets=9)
    >>> apgd_l1 = kr.attacks.APGD(epsilon=12.0, norm="l1", decreasing_epsilon=True)
    >>> x_adv = apgd_t(classifier, x, y)

    Reference: Croce & Hein, "Reliable evaluation of adversarial robustness
    with an ensemble of diverse parameter-free attacks", ICML 2020.
    """

    def __init__(
        self,
        epsilon,
        steps=100,
        norm="linf",
        loss="ce",
        targets=None,
        restarts=1,
        rho=0.75,
        momentum=0.75,
        eot_iter=1,
        decreasing_epsilon=False,
        clip_min=0.0,
        clip_max=1.0,
        seed=None,
    ):
        super().__init__(epsilon, norm, clip_min, clip_max, seed)
        self.steps = validation.positive_integer(steps, "steps")
        self.loss = validation.one_of(loss, "loss", APGD_LOSSES)
        self.targets = (
            None if targets is None else validation.positive_integer(targets, "targets")
        )
        self.restarts = validation.positive_integer(restarts, "restarts")
        self.rho = validation.positive_number(rho, "rho")
        if self.rho > 1:
            raise ValueError(f"`rho` must be in (0, 1]; got {rho!r}.")
        self.momentum = validation.positive_number(
            momentum, "momentum", allow_zero=True
        )
        if self.momentum > 1:
            raise ValueError(f"`momentum` must be in [0, 1]; got {momentum!r}.")
        self.eot_iter = validation.positive_integer(eot_iter, "eot_iter")
        self.decreasing_epsilon = validation.boolean(
            decreasing_epsilon, "decreasing_epsilon"
        )
        if self.decreasing_epsilon and self.norm != "l1":
            raise ValueError(
                "`decreasing_epsilon` is the L1 schedule of the reference "
                f"(use_largereps); norm={self.norm!r} runs without it."
            )
        if self.decreasing_epsilon and self.steps < len(self.EPSILON_STAGES):
            raise ValueError(
                "`decreasing_epsilon` needs `steps` >= 3 (one per stage); "
                f"got steps={steps!r}."
            )

    NORMS = ("linf", "l2", "l1")
    # Epsilon multiples of the decreasing schedule (`epsilon_stages`).
    EPSILON_STAGES = (3.0, 2.0, 1.0)

    @property
    def runs(self):
        return self.restarts * (self.targets or 1)

    @property
    def iterations(self):
        return self.steps * self.runs * self.eot_iter

    def _objective(self, y, target):
        if target is None:
            return objectives.objective_fn(self.loss, False, y)
        if self.loss == "dlr":
            return objectives.targeted_dlr(y, target)
        return objectives.objective_fn("ce", True, target)

    def perturb(self, forward, x, y, draw_seed):
        x = ops.convert_to_tensor(x, "float32")
        clean_logits = ops.stop_gradient(forward(x))
        num_classes = clean_logits.shape[-1]
        labels = labels_lib.to_indices(y, num_classes)
        pick_target = objectives.target_picker(
            clean_logits, self.targets, self.restarts
        )
        starts = norms.random_starts(
            x,
            self.runs,
            "sphere",
            self.epsilon * (self.EPSILON_STAGES[0] if self.decreasing_epsilon else 1),
            self.norm,
            self.clip_min,
            self.clip_max,
            draw_seed,
        )

        def run(index, state):
            result, broken, best_loss = state
            target = pick_target(index)
            adv, fooled, x_best, loss_best = self._run_stages(
                forward,
                self._objective(labels, target),
                x,
                labels,
                ops.take(starts, index, axis=0),
            )
            newly_broken = ops.logical_and(fooled, ops.logical_not(broken))
            higher = ops.logical_and(
                ops.logical_not(ops.logical_or(broken, fooled)),
                ops.greater(loss_best, best_loss),
            )
            result = ops.where(norms.per_sample(newly_broken, x), adv, result)
            result = ops.where(norms.per_sample(higher, x), x_best, result)
            return (
                result,
                ops.logical_or(broken, fooled),
                ops.where(higher, loss_best, best_loss),
            )

        misclassified = ops.not_equal(
            ops.cast(ops.argmax(clean_logits, axis=-1), labels.dtype), labels
        )
        lowest = ops.full(ops.shape(labels), -np.inf, "float32")
        result, _, _ = backend.fori_loop(0, self.runs, run, (x, misclassified, lowest))
        return ops.stop_gradient(result)

    def _run_stages(self, forward, objective, x, labels, start):
        """One run: a single `_ascend`, or the decreasing-epsilon stages.

        With `decreasing_epsilon`, each stage starts from the previous
        stage's best point projected onto its smaller ball; only the last
        stage (at epsilon) decides success, as the reference's
        `decr_eps_pgd`.
        """
        if not self.decreasing_epsilon:
            return self._ascend(
                forward, objective, x, labels, start, self.epsilon, self.steps
            )
        # Every stage starts from a given point (the first from x + N(0, I)
        # projected onto the 3 epsilon ball), so its top-k fraction comes
        # from that point's sparsity.
        for scale, steps in epsilon_stages(self.steps):
            epsilon = scale * self.epsilon
            start = self.project(start, x, epsilon)
            adv, fooled, start, loss_best = self._ascend(
                forward, objective, x, labels, start, epsilon, steps, True
            )
        return adv, fooled, start, loss_best

    def _ascend(
        self, forward, objective, x, labels, start, epsilon, steps, from_init=False
    ):
        """One APGD run; returns (last misclassified iterate, fooled, x_max, max loss).

        `from_init`: L1 only, the start is a given point (the decreasing
        schedule's), whose sparsity sets the first top-k fraction; else
        the fraction starts at 0.2.
        """
        l1 = self.norm == "l1"
        if l1:
            is_checkpoint = l1_checkpoints(steps)
            window = np.ones(steps, "float32")
        else:
            is_checkpoint, window = checkpoints(steps)
        is_checkpoint = ops.convert_to_tensor(is_checkpoint)
        window = ops.convert_to_tensor(window)

        def total(v):
            logits = forward(v)
            values = objective(logits)
            return ops.sum(values), (values, logits)

        def evaluate(x_adv):
            gradient, (values, logits) = backend.input_gradient_with_aux(total, x_adv)
            if self.eot_iter > 1:
                # Expectation over transformation: the mean gradient of
                # eot_iter passes; loss and prediction of the last one, as
                # the reference (autopgd_base.py, attack_single_run).
                def draw(_, carry):
                    gradient_sum, _, _ = carry
                    gradient, aux = backend.input_gradient_with_aux(total, x_adv)
                    return (gradient_sum + gradient, *aux)

                gradient, values, logits = backend.fori_loop(
                    1, self.eot_iter, draw, (gradient, values, logits)
                )
                gradient = gradient / self.eot_iter
            predicted = ops.cast(ops.argmax(logits, axis=-1), labels.dtype)
            return gradient, values, ops.not_equal(predicted, labels)

        gradient, loss, fooled = evaluate(start)
        batch_ones = ops.ones_like(loss)
        state = {
            "x": start,
            "x_previous": start,
            "gradient": gradient,
            "x_best": start,
            "gradient_best": gradient,
            "loss_best": loss,
            "adv": start,
            "fooled": fooled,
            # The reference's alpha: 2 epsilon (L-inf, L2), epsilon (L1).
            "step": (1.0 if l1 else 2.0) * epsilon * batch_ones,
            "loss_previous": loss,
        }
        if l1:
            features = float(np.prod(x.shape[1:]))
            nonzero = l0_norm(start - x)
            state["topk"] = nonzero / features / 1.5 if from_init else 0.2 * batch_ones
            state["nonzero_checked"] = nonzero if from_init else features * batch_ones
        else:
            state["increases"] = 0.0 * batch_ones
            state["reduced"] = ops.greater(batch_ones, 0.0)
            state["loss_best_checked"] = loss

        def iterate(i, s):
            step = norms.per_sample(s["step"], x)
            if l1:
                # No momentum in the reference's L1 step.
                direction = sparse_sign_direction(s["gradient"], s["topk"])
                x_new = self.project(s["x"] + step * direction, x, epsilon)
            else:
                alpha = ops.where(ops.greater(i, 0), self.momentum, 1.0)
                z = self.project(
                    s["x"] + step * norms.ascent_direction(s["gradient"], self.norm),
                    x,
                    epsilon,
                )
                x_new = self.project(
                    s["x"]
                    + alpha * (z - s["x"])
                    + (1.0 - alpha) * (s["x"] - s["x_previous"]),
                    x,
                    epsilon,
                )
            gradient, loss, fooled_now = evaluate(x_new)
            improved = ops.greater(loss, s["loss_best"])
            loss_best = ops.where(improved, loss, s["loss_best"])
            x_best = ops.where(norms.per_sample(improved, x), x_new, s["x_best"])
            gradient_best = ops.where(
                norms.per_sample(improved, x), gradient, s["gradient_best"]
            )
            checkpoint = ops.take(is_checkpoint, i)
            if l1:
                restart, step_size, schedule = self._l1_checkpoint(
                    s, checkpoint, x, x_best, epsilon
                )
            else:
                increases = s["increases"] + ops.cast(
                    ops.greater(loss, s["loss_previous"]), "float32"
                )
                oscillating = ops.less_equal(increases, ops.take(window, i) * self.rho)
                stalled = ops.logical_and(
                    ops.logical_not(s["reduced"]),
                    ops.greater_equal(s["loss_best_checked"], loss_best),
                )
                halve = ops.logical_or(oscillating, stalled)
                restart = ops.logical_and(checkpoint, halve)
                step_size = ops.where(restart, 0.5 * s["step"], s["step"])
                schedule = {
                    "increases": ops.where(checkpoint, 0.0, increases),
                    "reduced": ops.where(checkpoint, halve, s["reduced"]),
                    "loss_best_checked": ops.where(
                        checkpoint, loss_best, s["loss_best_checked"]
                    ),
                }
            restart = norms.per_sample(restart, x)
            return {
                "x": ops.where(restart, x_best, x_new),
                "x_previous": s["x"],
                "gradient": ops.where(restart, gradient_best, gradient),
                "x_best": x_best,
                "gradient_best": gradient_best,
                "loss_best": loss_best,
                "adv": ops.where(norms.per_sample(fooled_now, x), x_new, s["adv"]),
                "fooled": ops.logical_or(s["fooled"], fooled_now),
                "step": step_size,
                "loss_previous": loss,
                **schedule,
            }

        s = backend.fori_loop(0, steps, iterate, state)
        return s["adv"], s["fooled"], s["x_best"], s["loss_best"]

    def _l1_checkpoint(self, s, checkpoint, x, x_best, epsilon):
        """The reference's L1 rule, every max(int(0.04 n), 1) iterations.

        With nnz = ||x_best - x||_0: where the sparsity fell below 95% of
        its last value, the step resets to epsilon and the run restarts from
        x_best; elsewhere the step shrinks by 1.5; steps stay in
        [epsilon / 10, epsilon]; the top-k fraction becomes nnz / d / 1.5.

        Returns:
            (restart mask, new step, the schedule's other new state).
        """
        nonzero = l0_norm(x_best - x)
        sparser = ops.logical_and(
            checkpoint, ops.less(nonzero / s["nonzero_checked"], 0.95)
        )
        step = ops.where(sparser, epsilon, s["step"] / 1.5)
        step = ops.where(checkpoint, ops.clip(step, epsilon / 10.0, epsilon), s["step"])
        features = float(np.prod(x.shape[1:]))
        return (
            sparser,
            step,
            {
                "topk": ops.where(checkpoint, nonzero / features / 1.5, s["topk"]),
                "nonzero_checked": ops.where(checkpoint, nonzero, s["nonzero_checked"]),
            },
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            steps=self.steps,
            loss=self.loss,
            targets=self.targets,
            restarts=self.restarts,
            rho=self.rho,
            momentum=self.momentum,
            eot_iter=self.eot_iter,
            decreasing_epsilon=self.decreasing_epsilon,
        )
        return config
