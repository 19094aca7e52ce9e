"""TRADES (Zhang et al., 2019)."""

import keras

from keras_robust import losses
from keras_robust.models.beta_method import BetaRobustModel


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

    Args:
        classifier: a Keras model returning logits.
        beta: weight of the KL term, default 6.0.
        epsilon, step_size, steps, norm, attack, eval_attack, attack_training_mode, seed, joint_forward: see `RobustModel`.

    Example:
    >>> model = kr.models.TRADES(classifier, beta=6.0)
    >>> model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    >>> model.fit(train_ds, epochs=100)

    Reference: Zhang et al., "Theoretically Principled Trade-off between
    Robustness and Accuracy", ICML 2019.
    """

    def build_attack(self):
        return self.training_pgd(loss="kl", random_start="normal")

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
