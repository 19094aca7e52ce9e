"""Fast adversarial training (Wong et al., 2020): FGSM from a random start."""

import numbers

import keras

from keras_robust.attacks import FGSM
from keras_robust.models.at import AT
from keras_robust.utils import validation

FAST_AT_STEP_FACTOR = 1.25


@keras.saving.register_keras_serializable(package="keras_robust")
class FastAT(AT):
    """Fast AT ("Fast is better than free"): adversarial training with one FGSM step.

    Inner: one signed-gradient step of size alpha from a uniform random start,

        x_0 = clip(x + U(-eps, eps)),   g = grad_x CE(f(x_0), y)
        x*  = clip(Pi_eps(x_0 + alpha * sign(g))),   alpha = 1.25 * eps

    (`kr.attacks.FGSM(loss="ce", random_start="uniform")`; Pi_eps projects to
    [x - eps, x + eps] and clip to [0, 1]). Outer: (1/B) sum_i CE(f(x*_i), y_i),
    as `kr.models.AT`, of which this is the one-step case.

    BatchNorm: the reference runs the FGSM step with the model in training
    mode (`model.train()`, batch statistics), so `attack_training_mode`
    defaults to True, as for AT; unlike PyTorch's train-mode pass, the
    attack's moving-statistic updates are discarded. Pass
    `attack_training_mode=False` for an inference-mode attack.

    Single-step training can suffer catastrophic overfitting (PGD accuracy
    suddenly collapses to about 0 while FGSM accuracy rises), more so at
    larger epsilon and step size: monitor PGD accuracy on held-out data,
    e.g. with `kr.callbacks.RobustValidation`, which keeps and restores the
    most robust weights.

    Args:
        classifier: a Keras model returning logits.
        epsilon: radius, default 8/255.
        step_size: FGSM step; default None = 1.25 * epsilon (the reference's
            10/255 at 8/255). The resolved value is what `get_config` saves.
        steps: must be 1 (accepted so that configs round-trip); use
            `kr.models.AT` for multi-step PGD.
        norm, attack, eval_attack, attack_training_mode, seed: see
            `RobustModel`.

    Example:
    >>> model = kr.models.FastAT(net, epsilon=8/255)    # step 10/255
    >>> model.compile(optimizer=keras.optimizers.SGD(0.2, momentum=0.9))
    >>> model.fit(x, y, epochs=15, validation_data=(x_val, y_val),
    ...           callbacks=[kr.callbacks.RobustValidation((x_val, y_val))])

    Reference: Wong, Rice, Kolter, "Fast is better than free: Revisiting
    adversarial training", ICLR 2020.
    """

    attack_training_mode_default = True

    def __init__(
        self, classifier=None, epsilon=8 / 255, step_size=None, steps=1, **kwargs
    ):
        epsilon = validation.positive_number(epsilon, "epsilon")
        if step_size is None:
            step_size = FAST_AT_STEP_FACTOR * epsilon
        if isinstance(steps, numbers.Integral) and steps != 1:
            raise ValueError(
                f"FastAT takes a single FGSM step: `steps` must be 1, got {steps!r}. "
                "Use kr.models.AT for multi-step PGD training."
            )
        super().__init__(
            classifier, epsilon=epsilon, step_size=step_size, steps=steps, **kwargs
        )

    def build_attack(self):
        return FGSM(
            self.epsilon,
            step_size=self.step_size,
            norm=self.norm,
            loss="ce",
            random_start="uniform",
        )
