"""Madry et al. (2018) PGD adversarial training."""

import keras
from keras import ops

from keras_robust import losses
from keras_robust.losses import label_smoothing as smoothing_lib
from keras_robust.models.reference_attacks import CleanStartPGD
from keras_robust.models.robust_model import RobustModel
from keras_robust.utils import validation


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

    `label_smoothing=s` trains on the targets (1 - s) onehot(y) + s / K
    (`kr.losses.label_smoothing`, as TRADES, MART and WEAT do); the logged
    metrics use the true labels.
    `AT.sat_recipe(classifier, ...)` builds the Smooth Adversarial Training
    recipe (docs/sat.md).

    Args:
        classifier: a Keras model returning logits.
        epsilon: default 8/255.
        step_size: default 2/255.
        steps: default 10.
        norm: "linf" (default) or "l2".
        label_smoothing: s in [0, 1) for the outer cross-entropy, default 0.
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

    def __init__(self, classifier=None, label_smoothing=0.0, **kwargs):
        label_smoothing = smoothing_lib.check_label_smoothing(label_smoothing)
        super().__init__(classifier, **kwargs)
        self.label_smoothing = label_smoothing

    @classmethod
    def sat_recipe(
        cls,
        classifier,
        epsilon=8 / 255,
        step_size=2 / 255,
        steps=10,
        clean_start_probability=0.2,
        label_smoothing=0.1,
        **kwargs,
    ):
        """PGD-AT as the Smooth Adversarial Training reference trains.

        `cihangxie/SmoothAdversarialTraining`, `ResNet/adv_model.py`:

        - the attacker runs BatchNorm in inference mode with frozen
          statistics (line 189): `attack_training_mode=False`;
        - one draw per batch starts the attack from the clean image with
          probability 0.2, else from x + U(-eps, eps) (lines 141-151;
          `main.py` line 202): `kr.models.reference_attacks.CleanStartPGD`;
        - its step is max(step_size, epsilon / steps) (line 59);
        - the outer CE on f(x*) uses label smoothing 0.1 (line 174).

        Args:
            classifier: a Keras model returning logits (SAT swaps its
                activations for smooth ones: `kr.layers.replace_activations`).
            epsilon, step_size, steps: the L-inf attack.
            clean_start_probability: default 0.2 (the reference's).
            label_smoothing: default 0.1 (the reference's).
            **kwargs: other `AT` arguments (`eval_attack`, `seed`, `name`).

        Returns:
            An `AT` model.

        Example:
        >>> net = kr.layers.replace_activations(net, "silu")
        >>> model = kr.models.AT.sat_recipe(net, epsilon=4 / 255, steps=10)
        """
        step_size = max(
            validation.positive_number(step_size, "step_size"),
            validation.positive_number(epsilon, "epsilon")
            / validation.positive_integer(steps, "steps"),
        )
        attack = CleanStartPGD(
            epsilon,
            clean_start_probability=clean_start_probability,
            step_size=step_size,
            steps=steps,
        )
        kwargs.setdefault("attack_training_mode", False)
        return cls(
            classifier,
            epsilon=epsilon,
            step_size=step_size,
            steps=steps,
            attack=attack,
            label_smoothing=label_smoothing,
            **kwargs,
        )

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
        targets = smoothing_lib.smoothed_targets(
            y, logits_adversarial.shape[-1], self.label_smoothing
        )
        return losses.adversarial_cross_entropy_loss(
            targets, logits_adversarial, sample_weight
        )

    def get_config(self):
        config = super().get_config()
        config["label_smoothing"] = self.label_smoothing
        return config
