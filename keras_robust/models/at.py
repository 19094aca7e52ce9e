"""Madry et al. (2018) PGD adversarial training."""

import keras
from keras import ops

from keras_robust import losses
from keras_robust.models.robust_model import RobustModel


@keras.saving.register_keras_serializable(package="keras_robust")
class AT(RobustModel):
    """PGD adversarial training (Madry et al., 2018).

    Inner: maximise CE(f(x'), y) over ||x' - x|| <= epsilon by PGD from a
    uniform random start. Outer: minimise (1/B) sum_i CE(f(x*_i), y_i).

    Madry's reference attacks the model in training mode (batch statistics,
    moving statistics left alone), so `attack_training_mode` defaults to True
    here; pass False for an inference-mode attack. The natural logits logged
    as `accuracy`/`energy_natural` come from an extra forward pass on x that
    takes no part in the gradient; during training it uses batch statistics
    (like the pass on x*) and discards the moving-statistic updates.

    Args:
        classifier: a Keras model returning logits.
        epsilon: default 8/255.
        step_size: default 2/255.
        steps: default 10.
        norm: "linf" (default) or "l2".
        attack, eval_attack, attack_training_mode, seed: see `RobustModel`.

    Example:
    >>> model = kr.models.AT(classifier, epsilon=8/255, step_size=2/255, steps=10)
    >>> model.compile(optimizer="sgd", metrics=["accuracy"])
    >>> model.fit(x, y, epochs=10)

    Reference: Madry et al., "Towards Deep Learning Models Resistant to
    Adversarial Attacks", ICLR 2018.
    """

    attack_training_mode_default = True
    supports_joint_forward = False  # f(x) only feeds the logged metrics.

    def build_attack(self):
        return self.training_pgd(loss="ce", random_start="uniform")

    def compute_logits(self, x, x_adv, training):
        # f(x) feeds only the logged metrics (accuracy, E(x)). It is computed
        # in the same BatchNorm mode as f(x*) (batch statistics when
        # training), so the energy gap compares like with like, and without
        # updating moving statistics or taking part in the gradient.
        logits_natural = ops.stop_gradient(self._attack_forward(training)(x))
        return logits_natural, self.classifier(x_adv, training=training)

    def compute_objective(
        self, y, logits_natural, logits_adversarial, sample_weight=None
    ):
        return losses.adversarial_cross_entropy_loss(
            y, logits_adversarial, sample_weight
        )
