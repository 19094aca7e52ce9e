"""Training attacks exactly as the methods' reference codes run them.

`kr.attacks.PGD` is the generic attack. Some methods' reference codes run a
variant of it, and the methods default to that variant:

- `FlooredKLPGD` (WEAT): the KL attack with log(p(.|x') + 1e-12) in place of
  log-softmax (`WEAT_loss.py`, lines 67-68).
- `TradesL2PGD` (TRADES, `norm="l2"`): normalised-gradient steps, a zero
  gradient replaced by Gaussian noise, projection onto the box and then
  the ball (`trades.py`, lines 42-70).
- `CleanStartPGD` (Smooth Adversarial Training): per batch, with
  probability `clean_start_probability` the attack starts from the clean
  image, else from x + U(-eps, eps) (`ResNet/adv_model.py`, lines 141-151).

Each is a `PGD` (same arguments, same call, compiled the same way) with one
restart; only the pieces named above differ.
"""

import keras
from keras import ops

from keras_robust import backend
from keras_robust.attacks import PGD
from keras_robust.attacks import norms
from keras_robust.attacks import objectives
from keras_robust.losses.floored_kl import FLOOR
from keras_robust.losses.floored_kl import floored_kl_divergence
from keras_robust.utils import validation


class _ReferencePGD(PGD):
    """PGD with one restart whose start, objective and step a subclass sets."""

    def __init__(self, epsilon, **kwargs):
        restarts = kwargs.pop("restarts", 1)
        if restarts != 1:
            raise ValueError(
                f"{type(self).__name__} runs one restart (as its reference), "
                f"got restarts={restarts!r}."
            )
        super().__init__(epsilon, **kwargs)

    def start(self, x, draw_seed):
        return norms.random_starts(
            x,
            1,
            self.random_start,
            self.epsilon,
            self.norm,
            self.clip_min,
            self.clip_max,
            draw_seed,
        )[0]

    def objective(self, y, natural_logits):
        return objectives.objective_fn(self.loss, self.targeted, y, natural_logits)

    def pre_draw(self, x, draw_seed):
        """Noise the loop needs, drawn before it (JAX: no draws in loops)."""
        return ops.zeros((1,))

    def step(self, index, x_adv, x, gradient, noise):
        x_adv = x_adv + self.step_size * norms.ascent_direction(gradient, self.norm)
        return self.project(x_adv, x)

    def perturb(self, forward, x, y, draw_seed):
        natural_logits = None
        if self.loss in objectives.NEEDS_NATURAL_LOGITS:
            natural_logits = ops.stop_gradient(forward(x))
        objective = self.objective(y, natural_logits)

        def total_objective(x_adv):
            return ops.sum(objective(forward(x_adv)))

        x_start = self.start(x, draw_seed)
        noise = self.pre_draw(x, draw_seed)

        def body(index, x_adv):
            gradient = backend.input_gradient(total_objective, x_adv)
            return self.step(index, x_adv, x, gradient, noise)

        return ops.stop_gradient(backend.fori_loop(0, self.steps, body, x_start))


@keras.saving.register_keras_serializable(package="keras_robust")
class FlooredKLPGD(_ReferencePGD):
    """The KL attack of WEAT's reference: log(p(.|x') + 1e-12), not log-softmax.

    Maximises sum_k p_k(x) (log p_k(x) - log(p_k(x') + 1e-12)) with p(.|x)
    fixed (`WEAT_loss.py`, lines 67-68). It differs from `loss="kl"` only
    where some p_k(x') < ~1e-10: there the floor caps the term and its
    gradient vanishes. `floor`: the 1e-12. Other arguments as
    `kr.attacks.PGD` (`loss` is "kl").

    Example:
    >>> attack = kr.models.reference_attacks.FlooredKLPGD(8/255, step_size=2/255,
    ...                                                   random_start="normal")
    """

    def __init__(self, epsilon, floor=FLOOR, **kwargs):
        kwargs["loss"] = validation.one_of(kwargs.get("loss", "kl"), "loss", ("kl",))
        super().__init__(epsilon, **kwargs)
        self.floor = validation.positive_number(floor, "floor")

    def objective(self, y, natural_logits):
        return lambda logits: floored_kl_divergence(natural_logits, logits, self.floor)

    def get_config(self):
        config = super().get_config()
        config["floor"] = self.floor
        return config


@keras.saving.register_keras_serializable(package="keras_robust")
class TradesL2PGD(_ReferencePGD):
    """TRADES' L2 attack (`trades.py`, lines 42-70), from the math.

    With delta_0 = 0.001 N(0, I) (unclipped) and g_t the gradient of the
    summed KL at x + delta_t, each of the `steps` iterations is

        d_t = g_t / ||g_t||_2, or z_t ~ N(0, I) where ||g_t||_2 = 0
        delta <- delta + step_size * d_t            (delta - step_size z_t)
        delta <- clip(x + delta, clip_min, clip_max) - x          (box)
        delta <- delta * min(1, epsilon / (||delta||_2 + 1e-7))   (ball)

    and x* = x + delta. The reference's step is 2 epsilon / steps (its SGD
    learning rate `epsilon / perturb_steps * 2`); the reference's noise is
    not normalised. The generic `PGD(norm="l2")` instead divides g by
    ||g|| + 1e-12 (a zero gradient stays put) and projects ball-then-box.

    Args:
        epsilon: L2 radius.
        step_size: default 2 * epsilon / steps (the reference's).
        steps, loss (default "kl"), random_start (default "normal"),
        clip_min, clip_max, seed: as `kr.attacks.PGD`.
    """

    def __init__(self, epsilon, step_size=None, steps=10, **kwargs):
        kwargs.setdefault("loss", "kl")
        kwargs.setdefault("random_start", "normal")
        kwargs["norm"] = validation.one_of(kwargs.get("norm", "l2"), "norm", ("l2",))
        steps = validation.positive_integer(steps, "steps")
        if step_size is None:
            step_size = 2 * validation.positive_number(epsilon, "epsilon") / steps
        super().__init__(epsilon, step_size=step_size, steps=steps, **kwargs)

    def pre_draw(self, x, draw_seed):
        return keras.random.normal(
            (self.steps,) + tuple(ops.shape(x)), seed=draw_seed(1)
        )

    def step(self, index, x_adv, x, gradient, noise):
        size = norms.l2_norm(gradient)
        zero = ops.equal(size, 0.0)
        direction = gradient / ops.where(zero, 1.0, size)
        delta = x_adv - x
        delta = ops.where(
            zero,
            delta - self.step_size * ops.take(noise, index, axis=0),
            delta + self.step_size * direction,
        )
        delta = ops.clip(x + delta, self.clip_min, self.clip_max) - x
        length = norms.l2_norm(delta)
        delta = delta * ops.where(
            length > self.epsilon, self.epsilon / (length + 1e-7), 1.0
        )
        return x + delta


@keras.saving.register_keras_serializable(package="keras_robust")
class CleanStartPGD(_ReferencePGD):
    """L-inf CE-PGD whose start is, per batch, the clean image or a uniform one.

    One U(0, 1) draw per call decides the start of the whole batch: x with
    probability `clean_start_probability`, else x + U(-eps, eps) per pixel,
    not clipped (the first step's projection clips it), as the SAT
    reference's attacker (`ResNet/adv_model.py`, lines 141-151; 0.2 in
    `ResNet/main.py`, line 202). Steps and projection are PGD's.

    Args:
        epsilon: L-inf radius.
        clean_start_probability: in [0, 1], default 0.2 (the reference's).
        step_size, steps, loss (default "ce"), targeted, clip_min, clip_max,
        seed: as `kr.attacks.PGD`.
    """

    def __init__(self, epsilon, clean_start_probability=0.2, **kwargs):
        kwargs["norm"] = validation.one_of(
            kwargs.get("norm", "linf"), "norm", ("linf",)
        )
        kwargs["random_start"] = "uniform"
        probability = validation.positive_number(
            clean_start_probability, "clean_start_probability", allow_zero=True
        )
        if probability > 1:
            raise ValueError(
                "`clean_start_probability` must be in [0, 1], got "
                f"{clean_start_probability!r}."
            )
        super().__init__(epsilon, **kwargs)
        self.clean_start_probability = float(probability)

    def start(self, x, draw_seed):
        noise = keras.random.uniform(
            tuple(ops.shape(x)), -self.epsilon, self.epsilon, seed=draw_seed(0)
        )
        from_noise = ops.cast(
            keras.random.uniform((), seed=draw_seed(1)) >= self.clean_start_probability,
            x.dtype,
        )
        return x + from_noise * noise

    def get_config(self):
        config = super().get_config()
        config.pop("random_start")
        config["clean_start_probability"] = self.clean_start_probability
        return config
