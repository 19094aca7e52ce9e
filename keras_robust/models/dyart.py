"""DyART: dynamics-aware robust training (Xu et al., 2023)."""

import numbers

import keras
from keras import ops

from keras_robust import losses
from keras_robust.attacks import norms
from keras_robust.attacks.boundary import BoundarySearch
from keras_robust.attacks.boundary import margin_and_gradient
from keras_robust.layers.attack_phase import attack_phase
from keras_robust.models.robust_model import RobustModel
from keras_robust.utils import validation

# Quality filter of the reference code (`find_bdr_Linf`).
MARGIN_FLOOR = -0.3  # keep x^ only if MARGIN_FLOOR < phi(x^) < 0
NEAR_MAX = 0.8  # near-max coordinates: |d_j| > NEAR_MAX * ||d||_inf
ALIGNED_FRACTION = 0.9  # more than this fraction of them has d_j dphi/dx_j < 0


class _EpochCounter(keras.callbacks.Callback):
    """Writes fit's epoch index into `model.current_epoch` as each epoch begins."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.current_epoch.assign(float(epoch))


@keras.saving.register_keras_serializable(package="keras_robust")
class DyART(RobustModel):
    """Dynamics-Aware Robust Training: push the closest boundary points away.

    With the soft margin phi(x) = f_y(x) - (1/t) log sum_{j != y} exp(t f_j(x))
    (`kr.losses.soft_margin`), each training step

    1. in inference mode, for the correctly classified samples (phi(x) > 0),
       searches the closest point x^ with phi(x^) < 0 in L-inf
       (`kr.attacks.BoundarySearch`, a FAB search of `search_steps`
       iterations started within epsilon / 2 of x);
    2. keeps x^ only if -0.3 < phi(x^) < 0 and more than 90% of the near-max
       coordinates of d = x^ - x (|d_j| > 0.8 ||d||_inf) point against the
       gradient (d_j dphi/dx_j(x^) < 0), i.e. x^ looks like a local closest
       boundary point;
    3. weighs each kept point by w = sg[h'(R) / ||grad_x phi(x^)||_1], with
       R = ||x^ - x||_inf and h'(r) = exp(-alpha r) 1[r < r0]
       (`kr.losses.dyart_margin_weights`, the implicit-function derivative
       of the margin R with respect to the weights);
    4. minimises (`kr.losses.dyart_loss`, B the full batch size)

           L = (1/B) sum_i CE(f(x_i), y_i) - lam (1/B) sum_{i kept} w_i phi(x^_i),

       with the gradient of the second term flowing through phi(x^) into
       the weights only (x^ and w are constants); both forward passes run
       in training mode, f(x^) before f(x) as in the reference.

    Samples without a kept boundary point contribute their CE only; a batch
    without any (e.g. nothing correctly classified) trains on CE alone.

    Burn-in: for the first `burn_in_epochs` epochs of `fit` the step trains on
    the clean CE alone and skips the search (a `keras.ops.cond` on the
    non-trainable variable `current_epoch`, which `fit` sets as each epoch
    begins, `initial_epoch` included; it is saved with the model). Outside
    `fit` (e.g. `train_on_batch`), assign `model.current_epoch` yourself.

    Gradient clipping: the reference clips the global gradient norm to 0.1;
    in Keras pass `global_clipnorm=0.1` to the optimizer, e.g.
    `keras.optimizers.SGD(0.1, momentum=0.9, global_clipnorm=0.1)`.

    Logged: `kept_fraction` (fraction of the batch with a kept boundary
    point) and `mean_margin` (mean R over the kept points), plus the base
    keys. During training `adv_accuracy` and `energy_adversarial` are those
    of the training-mode f(x^) (x where nothing was kept): boundary points,
    not adversarial examples. `evaluate` attacks with `eval_attack`
    (PGD-20 at `epsilon`) for `adv_accuracy`, and also runs the search, so
    `val_loss`, `val_kept_fraction` and `val_mean_margin` mean the same as
    in training (inference mode, no burn-in).

    Args:
        classifier: a Keras model returning logits.
        epsilon: radius of the validation attack and the search's start
            radius (eps_fab: the start lies within epsilon / 2), default 8/255.
        temperature: inverse temperature t > 0 of the soft margin, default 5.
        r0: cut-off radius > 0 of h', default 16/255.
        alpha: decay rate >= 0 of h', default 3.
        lam: weight >= 0 of the boundary term (lambda in the paper), default
            1000 (the reference's CIFAR-10 value).
        search_steps: iterations of the boundary search; None means 20, or
            the `attack`'s steps when one is given.
        burn_in_epochs: clean-CE epochs before the boundary term starts,
            default 0 (the reference uses 10, run as a separate clean job).
        attack: optional `kr.attacks.BoundarySearch` replacing the default
            one (its margin's temperature only matters for standalone calls:
            DyART searches its own soft margin).
        norm: "linf" only.
        step_size, steps: accepted for the shared `RobustModel` config, not
            used by DyART's training step (the search has `search_steps`).
        eval_attack, attack_training_mode, seed: see `RobustModel`.

    Example:
    >>> model = kr.models.DyART(net, epsilon=8/255, r0=16/255, lam=1000.0,
    ...                         burn_in_epochs=10)
    >>> model.compile(optimizer=keras.optimizers.SGD(
    ...     0.1, momentum=0.9, global_clipnorm=0.1))
    >>> model.fit(train_ds, epochs=100)

    Reference: Xu, Sun, Goldblum, Goldstein, Huang, "Exploring and Exploiting
    Decision Boundary Dynamics for Adversarial Robustness", ICLR 2023.
    """

    # Its objective takes f(x) and f(x_boundary) from its own passes.
    supports_joint_forward = False
    # Its boundary search and per-sample weights are not one loss of (x, x*).
    supports_awp = False

    def __init__(
        self,
        classifier=None,
        epsilon=8 / 255,
        temperature=5.0,
        r0=16 / 255,
        alpha=3.0,
        lam=1000.0,
        search_steps=None,
        burn_in_epochs=0,
        **kwargs,
    ):
        temperature = validation.positive_number(temperature, "temperature")
        r0 = validation.positive_number(r0, "r0")
        alpha = validation.positive_number(alpha, "alpha", allow_zero=True)
        lam = validation.positive_number(lam, "lam", allow_zero=True)
        if search_steps is not None:
            search_steps = validation.positive_integer(search_steps, "search_steps")
        if isinstance(burn_in_epochs, bool) or not isinstance(
            burn_in_epochs, numbers.Integral
        ):
            raise TypeError(
                f"`burn_in_epochs` must be an integer >= 0, got {burn_in_epochs!r}."
            )
        if burn_in_epochs < 0:
            raise ValueError(
                f"`burn_in_epochs` must be an integer >= 0, got {burn_in_epochs!r}."
            )
        if validation.norm_name(kwargs.get("norm", "linf")) != "linf":
            raise ValueError(
                "DyART supports `norm='linf'` only (its quality filter and "
                f"margin weights are L-inf), got norm={kwargs['norm']!r}."
            )
        attack = kwargs.pop("attack", None)
        if attack is None:
            epsilon = validation.positive_number(epsilon, "epsilon")
            attack = BoundarySearch(
                epsilon,
                steps=20 if search_steps is None else search_steps,
                norm="linf",
                temperature=temperature,
            )
        elif not isinstance(attack, BoundarySearch):
            raise TypeError(
                "DyART's `attack` is its boundary search: pass a "
                f"kr.attacks.BoundarySearch, got {type(attack).__name__}."
            )
        elif attack.norm != "linf":
            raise ValueError("DyART's `attack` must use norm='linf'.")
        elif search_steps is not None and search_steps != attack.steps:
            raise ValueError(
                f"`search_steps={search_steps}` disagrees with the steps of the "
                f"given `attack` ({attack.steps}); pass only one of them."
            )
        super().__init__(classifier, epsilon=epsilon, attack=attack, **kwargs)
        self.temperature = temperature
        self.r0 = r0
        self.alpha = alpha
        self.lam = lam
        self.burn_in_epochs = int(burn_in_epochs)
        self.current_epoch = keras.Variable(
            0.0, dtype="float32", trainable=False, name="current_epoch"
        )
        self.kept_fraction_tracker = keras.metrics.Mean(name="kept_fraction")
        self.mean_margin_tracker = keras.metrics.Mean(name="mean_margin")

    @property
    def search_steps(self):
        return self.attack.steps

    def build_attack(self):
        return BoundarySearch(
            self.epsilon,
            steps=self.search_steps,
            norm="linf",
            temperature=self.temperature,
        )

    # ---- the step ----------------------------------------------------------

    def fit_callbacks(self):
        return [_EpochCounter()]

    def margin(self, logits, y):
        """phi_t(x) = f_y - (1/t) logsumexp_{j != y}(t f_j), per sample."""
        return losses.soft_margin(logits, y, self.temperature)

    def boundary_points(self, forward, x, y, start):
        """Search and quality filter: the per-sample data of the step.

        Args:
            forward: `x -> logits` of the search (inference mode).
            x: the batch.
            y: its labels.
            start: starting points of the search.

        Returns:
            dict of `x_boundary` (x^ where kept, else x), `margin_weights`
            (w where kept, else 0), `kept` (bool) and `radius` (R where kept,
            else 0).
        """
        x = ops.cast(x, "float32")

        def margin(z):
            return self.margin(forward(z), y)

        with attack_phase():
            correct = margin(x) > 0
            boundary, found = self.attack.search(margin, x, start=start)
            value, gradient = margin_and_gradient(margin, boundary)
        delta = norms.flatten(boundary - x)
        gradient = norms.flatten(gradient)
        radius = ops.max(ops.abs(delta), axis=1)
        near_max = ops.logical_and(
            ops.abs(delta) > NEAR_MAX * radius[:, None], radius[:, None] > 0
        )
        aligned = ops.logical_and(near_max, delta * gradient < 0)
        near_max_count = ops.sum(ops.cast(near_max, "float32"), axis=1)
        aligned_fraction = ops.sum(ops.cast(aligned, "float32"), axis=1) / (
            ops.maximum(near_max_count, 1.0)
        )
        kept = ops.logical_and(
            ops.logical_and(correct, found),
            ops.logical_and(
                ops.logical_and(value > MARGIN_FLOOR, value < 0),
                aligned_fraction > ALIGNED_FRACTION,
            ),
        )
        weights = losses.dyart_margin_weights(
            radius, ops.sum(ops.abs(gradient), axis=1), self.alpha, self.r0
        )
        mask = ops.reshape(kept, (-1,) + (1,) * (len(x.shape) - 1))
        return {
            "x_boundary": ops.where(mask, boundary, x),
            "margin_weights": ops.where(kept, weights, 0.0),
            "kept": kept,
            "radius": ops.where(kept, radius, 0.0),
        }

    def _no_boundary_points(self, x):
        x = ops.cast(x, "float32")
        zeros = ops.zeros_like(norms.flatten(x)[:, 0])
        return {
            "x_boundary": x,
            "margin_weights": zeros,
            "kept": zeros > 0,
            "radius": zeros,
        }

    def generate_adversarial(self, x, y, training=True):
        batch_statistics = self.attack_training_mode if training else False
        forward = self._attack_forward(batch_statistics)
        # Drawn outside the cond below: random state must not change inside it.
        start = self.attack.random_start(
            ops.cast(x, "float32"), lambda index: self.seed_generator
        )

        def search():
            return self.boundary_points(forward, x, y, start)

        if training and self.burn_in_epochs > 0:
            searching = ops.greater_equal(
                self.current_epoch, float(self.burn_in_epochs)
            )
            data = ops.cond(searching, search, lambda: self._no_boundary_points(x))
        else:
            data = search()
        if not training:
            data["x_adversarial"] = super().generate_adversarial(x, y, training=False)
        return data

    def compute_logits(self, x, x_adv, training):
        # The boundary pass first, as the reference (`DyART_Linf.py`: f(x_bdr)
        # before f(X)): the order sets the final BatchNorm moving statistics.
        logits_boundary = self.classifier(x_adv["x_boundary"], training=training)
        logits_natural = self.classifier(x, training=training)
        logits_adversarial = (
            logits_boundary
            if training
            else self.classifier(x_adv["x_adversarial"], training=False)
        )
        extras = {
            "logits_boundary": logits_boundary,
            "margin_weights": x_adv["margin_weights"],
            "kept": x_adv["kept"],
            "radius": x_adv["radius"],
        }
        return logits_natural, logits_adversarial, extras

    def compute_objective(
        self, y, logits_natural, logits_adversarial, sample_weight=None, extras=None
    ):
        return losses.dyart_loss(
            y,
            logits_natural,
            extras["logits_boundary"],
            extras["margin_weights"],
            lam=self.lam,
            temperature=self.temperature,
            sample_weight=sample_weight,
        )

    def method_trackers(self):
        return [self.kept_fraction_tracker, self.mean_margin_tracker]

    def update_method_trackers(
        self, y, logits_natural, logits_adversarial, extras=None
    ):
        kept = ops.cast(extras["kept"], "float32")
        self.kept_fraction_tracker.update_state(kept)
        self.mean_margin_tracker.update_state(extras["radius"], sample_weight=kept)

    # ---- serialization ------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            temperature=self.temperature,
            r0=self.r0,
            alpha=self.alpha,
            lam=self.lam,
            search_steps=self.search_steps,
            burn_in_epochs=self.burn_in_epochs,
        )
        return config
