"""MART (Wang et al., 2020)."""

import keras

from keras_robust import losses
from keras_robust.models.beta_method import BetaRobustModel


@keras.saving.register_keras_serializable(package="keras_robust")
class MART(BetaRobustModel):
    """MART: boosted CE on x* plus a KL term weighted by misclassification.

    Inner (inference mode): CE-PGD from x + 0.001 N(0, I), projected to the
    ball and [0, 1]. Outer (training mode, separate passes):

        L = (1/B) sum_i [ CE(f(x*_i), y_i) - log(1.0001 - p(y'_i|x*_i) + 1e-12)
                          + beta * KL(p(.|x_i) || p(.|x*_i)) (1.0000001 - p(y_i|x_i)) ]

    with y' the most probable wrong class of x* (`kr.losses.mart_loss`).
    The reference README uses beta 5 for ResNet-18 and 6 otherwise.

    Args:
        classifier: a Keras model returning logits.
        beta: weight of the KL term, default 6.0.
        epsilon, step_size, steps, norm, attack, eval_attack, attack_training_mode, seed, joint_forward: see `RobustModel`.

    Example:
    >>> model = kr.models.MART(classifier, beta=6.0)

    Reference: Wang et al., "Improving Adversarial Robustness Requires
    Revisiting Misclassified Examples", ICLR 2020.
    """

    def build_attack(self):
        return self.training_pgd(loss="ce", random_start="normal")

    def compute_objective(
        self, y, logits_natural, logits_adversarial, sample_weight=None
    ):
        return losses.mart_loss(
            self.objective_labels(y, logits_natural),
            logits_natural,
            logits_adversarial,
            self.beta,
            sample_weight,
        )
