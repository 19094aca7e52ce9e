"""TRADES (Zhang et al., 2019)."""

import keras
from keras import ops

from keras_robust import losses
from keras_robust.models.beta_method import BetaRobustModel
from keras_robust.models.reference_attacks import TradesL2PGD
from keras_robust.utils import validation

# How the outer training-mode passes move BatchNorm's moving statistics.
MOVING_STATISTICS = ("reference", "two_pass")


@keras.saving.register_keras_serializable(package="keras_robust")
class TRADES(BetaRobustModel):
    """TRADES: natural cross-entropy plus beta times the natural/adversarial KL.

    Inner (inference mode): start at x + 0.001 N(0, I) (unclipped), ascend
    sum_i KL(p(.|x_i) || p(.|x'_i)) with sign steps, project to the ball and
    to [0, 1]. Outer (training mode, separate passes for x and x*):

        L = (1/B) sum_i [ CE(f(x_i), y_i) + beta * KL(p(.|x_i) || p(.|x*_i)) ]

    with gradients through both p(.|x) and p(.|x*) (`kr.losses.trades_loss`).
    The reference used epsilon 0.031 and step 0.007; the defaults here are
    8/255 and 2/255 (pass the reference values to match it to the digit).

    BatchNorm moving statistics: the reference's update runs three
    training-mode forwards, f(x) for the CE, then f(x*) and f(x) inside the
    KL (`trades.py`, lines 79-82), so the moving statistics move toward x,
    x*, x in that order (with Keras momentum m, the step's update weighs x
    by (1 - m)(1 + m^2) and x* by (1 - m) m). With
    `moving_statistics="reference"` (default) a third, statistics-only
    training-mode forward on x follows the two passes of the objective; its
    outputs are not used (without Dropout they equal the first pass's, which
    the objective uses for both the CE and the KL target). `"two_pass"`
    skips it: moving statistics x, x* (one forward cheaper).

    `norm="l2"` runs the reference's L2 attack (`trades.py`, lines 42-70;
    `kr.models.reference_attacks.TradesL2PGD`): steps of 2 epsilon / steps
    along g / ||g||_2 (Gaussian noise where g = 0), projected onto [0, 1]
    and then the ball.

    Args:
        classifier: a Keras model returning logits.
        beta: weight of the KL term, default 6.0.
        step_size: step of the training attack; default 2/255 for "linf" and
            2 * epsilon / steps for "l2" (the reference's).
        moving_statistics: "reference" (default; moving statistics updated
            from x, x*, x as in the reference) or "two_pass" (x, x*).
        epsilon, steps, norm, attack, eval_attack, attack_training_mode, seed, joint_forward: see `RobustModel`.

    Example:
    >>> model = kr.models.TRADES(classifier, beta=6.0)
    >>> model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    >>> model.fit(train_ds, epochs=100)

    Reference: Zhang et al., "Theoretically Principled Trade-off between
    Robustness and Accuracy", ICML 2019.
    """

    def __init__(
        self,
        classifier=None,
        beta=6.0,
        moving_statistics="reference",
        step_size=None,
        **kwargs,
    ):
        moving_statistics = validation.one_of(
            moving_statistics, "moving_statistics", MOVING_STATISTICS
        )
        if step_size is None:
            # L2: the reference's SGD rate epsilon / perturb_steps * 2.
            norm = validation.norm_name(kwargs.get("norm", "linf"))
            epsilon = validation.positive_number(
                kwargs.get("epsilon", 8 / 255), "epsilon"
            )
            steps = validation.positive_integer(kwargs.get("steps", 10), "steps")
            step_size = 2 * epsilon / steps if norm == "l2" else 2 / 255
        super().__init__(classifier, beta=beta, step_size=step_size, **kwargs)
        self.moving_statistics = moving_statistics

    def build_attack(self):
        if self.norm == "l2":
            return TradesL2PGD(self.epsilon, step_size=self.step_size, steps=self.steps)
        return self.training_pgd(loss="kl", random_start="normal")

    def update_statistics(self, x, x_adv, training):
        if training and self.moving_statistics == "reference":
            # The reference's third forward, f(x) inside its KL: only its
            # moving-statistics update matters (its logits equal the first
            # pass's, which the objective uses), so no gradient flows.
            ops.stop_gradient(self.classifier(x, training=True))

    def compute_objective(
        self, y, logits_natural, logits_adversarial, sample_weight=None
    ):
        return losses.trades_loss(
            self.objective_labels(y, logits_natural),
            logits_natural,
            logits_adversarial,
            self.beta,
            sample_weight,
        )

    def get_config(self):
        config = super().get_config()
        config["moving_statistics"] = self.moving_statistics
        return config
