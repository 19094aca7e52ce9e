"""SCORE (Pang et al., 2022): TRADES with distances between probabilities."""

import keras

from keras_robust import losses
from keras_robust.losses import score as score_lib
from keras_robust.models.beta_method import BetaRobustModel


@keras.saving.register_keras_serializable(package="keras_robust")
class SCORE(BetaRobustModel):
    """SCORE: squared-error TRADES on probabilities, as the reference code.

    Inner: start at clip(x + U(-eps, eps)), ascend
    sum_i ||p(.|x'_i) - sg[p(.|x_i)]||_2^2 with sign steps (L2 steps for
    `norm="l2"`), project to the ball and to [0, 1]
    (`kr.attacks.PGD(loss="se", random_start="uniform")`). BatchNorm uses the
    statistics of the attacked batch and its moving statistics are NOT
    updated (`attack_training_mode=True` by default, as the reference's
    `model.train(); track_bn_stats(model, False)`). Outer (training mode,
    separate passes for x and x*, `kr.losses.score_loss`):

        L = (1/B) sum_i [ ||p(.|x_i) - y~_i||_2^2
                          + beta * relu(D(p(.|x_i), p(.|x*_i)) - c) ]

    with gradients through both p(.|x) and p(.|x*). The attack always
    ascends the squared error (the reference's SCORE attack), whatever
    `distance` the outer loss uses; pass `attack=` for another one.

    Args:
        classifier: a Keras model returning logits.
        beta: weight of the robust term, default 3.0 (the released
            checkpoints; the README's command uses 4.0).
        distance: D, see `kr.losses.probability_distance`; default "se".
        clip_value: c >= 0, default 0.
        label_smoothing: s in [0, 1) of the squared-error target, default 0.
        epsilon, step_size, steps, norm, attack, eval_attack, attack_training_mode, seed, joint_forward: see `RobustModel`
            (defaults 8/255, 2/255, 10 steps, L-inf, attack_training_mode=True).

    Example:
    >>> model = kr.models.SCORE(net, epsilon=8/255, beta=3.0)
    >>> model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
    ...               metrics=["accuracy"])
    >>> model.fit(train_ds, epochs=100)

    Reference: Pang, Lin, Yang, Zhu, Yan, "Robustness and Accuracy Could Be
    Reconcilable by (Proper) Definition", ICML 2022.
    """

    attack_training_mode_default = True

    def __init__(
        self,
        classifier=None,
        beta=3.0,
        distance="se",
        clip_value=0.0,
        label_smoothing=0.0,
        **kwargs,
    ):
        distance = score_lib.canonical_distance(distance)
        clip_value = score_lib.check_clip_value(clip_value)
        label_smoothing = score_lib.check_label_smoothing(label_smoothing)
        super().__init__(classifier, beta=beta, **kwargs)
        self.distance = distance
        self.clip_value = clip_value
        self.label_smoothing = label_smoothing

    def build_attack(self):
        return self.training_pgd(loss="se", random_start="uniform")

    def compute_objective(
        self, y, logits_natural, logits_adversarial, sample_weight=None
    ):
        return losses.score_loss(
            y,
            logits_natural,
            logits_adversarial,
            beta=self.beta,
            distance=self.distance,
            clip_value=self.clip_value,
            label_smoothing=self.label_smoothing,
            sample_weight=sample_weight,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            distance=self.distance,
            clip_value=self.clip_value,
            label_smoothing=self.label_smoothing,
        )
        return config
