"""Projected gradient descent (Madry et al., 2018) and its one-step case."""

import keras
from keras import ops

from keras_robust import backend
from keras_robust.attacks import norms
from keras_robust.attacks import objectives
from keras_robust.attacks.base import Attack
from keras_robust.utils import validation

RANDOM_STARTS = ("uniform", "normal", "none")


@keras.saving.register_keras_serializable(package="keras_robust")
class PGD(Attack):
    """Projected gradient ascent on an attack loss inside an epsilon ball.

    From a start x_0 (see `random_start`), each of the `steps` iterations is

        L-inf: x_{t+1} = clip(Pi_eps(x_t + step_size * sign(g_t)))
        L2:    x_{t+1} = clip(Pi_eps(x_t + step_size * g_t / ||g_t||_2))

    with g_t the input gradient of the summed per-sample loss, Pi_eps the
    projection onto the ball around x and clip the box [clip_min, clip_max].
    The steps run in `keras.ops.fori_loop`, so compile time does not grow
    with `steps`. With `restarts > 1`, each sample keeps the restart that
    succeeds (misclassified, or hits the target), ties broken by higher loss.

    Args:
        epsilon: radius of the ball, > 0 (e.g. 8/255 for CIFAR L-inf).
        step_size: step length; default `epsilon / 4` (2/255 for eps 8/255).
        steps: number of iterations, >= 1.
        norm: "linf" or "l2".
        loss: "ce", "cw" (margin), "kl" (TRADES), "se" (SCORE) or "dlr".
        targeted: if True, `y` holds target labels and the attack moves
            towards them (losses "ce" and "cw" only).
        random_start: "uniform" (in the ball, clipped), "normal"
            (x + 0.001 N(0, I), unclipped, as TRADES/MART) or "none".
        restarts: number of random restarts, >= 1.
        clip_min, clip_max: valid input range.
        seed: seed of the attack's own generator (calls may pass their own).

    Example:
    >>> attack = kr.attacks.PGD(epsilon=8/255, steps=20)
    >>> x_adv = attack(classifier, x, y)
    """

    def __init__(
        self,
        epsilon,
        step_size=None,
        steps=10,
        norm="linf",
        loss="ce",
        targeted=False,
        random_start="uniform",
        restarts=1,
        clip_min=0.0,
        clip_max=1.0,
        seed=None,
    ):
        super().__init__(epsilon, norm, clip_min, clip_max, seed)
        self.step_size = (
            self.epsilon / 4
            if step_size is None
            else validation.positive_number(step_size, "step_size")
        )
        self.steps = validation.positive_integer(steps, "steps")
        self.loss = validation.one_of(loss, "loss", objectives.ALL)
        self.targeted = bool(targeted)
        if self.targeted and self.loss in objectives.UNTARGETED_ONLY:
            raise ValueError(
                f"`loss={loss!r}` is untargeted; targeted attacks use "
                "loss='ce' or loss='cw'."
            )
        self.random_start = validation.one_of(
            "none" if random_start is None else random_start,
            "random_start",
            RANDOM_STARTS,
        )
        self.restarts = validation.positive_integer(restarts, "restarts")

    # The evaluation attack's number of steps (Madry et al.'s PGD-20).
    EVALUATION_STEPS = 20

    @property
    def iterations(self):
        return self.steps * self.restarts

    @classmethod
    def for_evaluation(
        cls, epsilon, norm="linf", clip_min=0.0, clip_max=1.0, seed=None
    ):
        """The PGD-20 every evaluation of the library runs by default.

        `RobustModel.evaluate` (the `eval_attack` default), the held-out
        attack of the callbacks and `keras-robust evaluate --attack pgd20`:
        cross-entropy, 20 steps of epsilon / 4, one uniform random start.

        Args:
            epsilon: radius of the ball, > 0.
            norm: "linf" or "l2".
            clip_min, clip_max: valid input range.
            seed: seed of the attack's own generator.

        Returns:
            A `PGD`.

        Example:
        >>> attack = kr.attacks.PGD.for_evaluation(8/255, seed=0)
        >>> attack.steps, attack.step_size == 2/255
        (20, True)
        """
        return cls(
            epsilon,
            step_size=epsilon / 4,
            steps=cls.EVALUATION_STEPS,
            norm=norm,
            loss="ce",
            random_start="uniform",
            clip_min=clip_min,
            clip_max=clip_max,
            seed=seed,
        )

    def perturb(self, forward, x, y, draw_seed):
        natural_logits = None
        if self.loss in objectives.NEEDS_NATURAL_LOGITS:
            natural_logits = ops.stop_gradient(forward(x))
        objective = objectives.objective_fn(self.loss, self.targeted, y, natural_logits)
        starts = norms.random_starts(
            x,
            self.restarts,
            self.random_start,
            self.epsilon,
            self.norm,
            self.clip_min,
            self.clip_max,
            draw_seed,
        )

        def total_objective(x_adv):
            return ops.sum(objective(forward(x_adv)))

        def ascend(x_start):
            def step(_, x_adv):
                gradient = backend.input_gradient(total_objective, x_adv)
                x_adv = x_adv + self.step_size * norms.ascent_direction(
                    gradient, self.norm
                )
                return self.project(x_adv, x)

            return backend.fori_loop(0, self.steps, step, x_start)

        if self.restarts == 1:
            return ops.stop_gradient(ascend(starts[0]))

        def restart(index, best):
            best_x, best_success, best_value = best
            x_adv = ascend(ops.take(starts, index, axis=0))
            logits = forward(x_adv)
            value = objective(logits)
            succeeded = objectives.success(logits, y, self.targeted)
            better = ops.logical_or(
                ops.logical_and(succeeded, ops.logical_not(best_success)),
                ops.logical_and(
                    ops.equal(succeeded, best_success), ops.greater(value, best_value)
                ),
            )
            mask = ops.reshape(better, (-1,) + (1,) * (len(x.shape) - 1))
            return (
                ops.where(mask, x_adv, best_x),
                ops.logical_or(best_success, succeeded),
                ops.where(better, value, best_value),
            )

        per_sample_zeros = ops.sum(
            ops.zeros_like(x), axis=tuple(range(1, len(x.shape)))
        )
        initial = (x, ops.cast(per_sample_zeros, "bool"), per_sample_zeros - 1e30)
        best_x, _, _ = backend.fori_loop(0, self.restarts, restart, initial)
        return ops.stop_gradient(best_x)

    def get_config(self):
        config = super().get_config()
        config.update(
            step_size=self.step_size,
            steps=self.steps,
            loss=self.loss,
            targeted=self.targeted,
            random_start=self.random_start,
            restarts=self.restarts,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_robust")
class FGSM(PGD):
    """Fast gradient sign method (Goodfellow et al., 2015): one PGD step.

        L-inf: x_adv = clip(Pi_eps(x_0 + step_size * sign(g)))
        L2:    x_adv = clip(Pi_eps(x_0 + step_size * g / ||g||_2))

    with g = grad_x L(f(x_0), y) at the start x_0.

    With `random_start="uniform"` and `step_size=1.25 * epsilon` this is the
    attack of Fast-AT (Wong et al., 2020).

    Args:
        epsilon: radius, > 0.
        step_size: default `epsilon`.
        norm, loss, targeted, random_start, clip_min, clip_max, seed: as PGD;
            `random_start` defaults to "none".
    """

    def __init__(
        self,
        epsilon,
        step_size=None,
        norm="linf",
        loss="ce",
        targeted=False,
        random_start="none",
        clip_min=0.0,
        clip_max=1.0,
        seed=None,
        **kwargs,
    ):
        for name in ("steps", "restarts"):
            # Accepted so that configs round-trip; anything but 1 is a PGD.
            if kwargs.pop(name, 1) != 1:
                raise ValueError(
                    f"FGSM takes a single step without restarts; for `{name}` > 1 "
                    "use kr.attacks.PGD."
                )
        if kwargs:
            raise TypeError(f"FGSM got unexpected arguments {sorted(kwargs)}.")
        super().__init__(
            epsilon,
            step_size=epsilon if step_size is None else step_size,
            steps=1,
            norm=norm,
            loss=loss,
            targeted=targeted,
            random_start=random_start,
            clip_min=clip_min,
            clip_max=clip_max,
            seed=seed,
        )
