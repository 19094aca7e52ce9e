"""WEAT: weighted energy adversarial training (the seed paper's method)."""

import keras

from keras_robust import energy
from keras_robust import losses
from keras_robust.losses.floored_kl import FLOOR
from keras_robust.models.beta_method import BetaRobustModel
from keras_robust.models.reference_attacks import FlooredKLPGD
from keras_robust.utils import validation


@keras.saving.register_keras_serializable(package="keras_robust")
class WEAT(BetaRobustModel):
    """Weighted Energy Adversarial Training.

    TRADES' attack (inference mode, KL-PGD from x + 0.001 N(0, I)) and a
    TRADES-like objective whose samples are weighted by their energy, with
    the reference's log(p(.|x') + 1e-12) inside every KL (`WEAT_loss.py`,
    lines 67, 89, 140; `kl_floor=None` for log-softmax):

        w_i = sg[1 / log(1 + exp(|E(x_i)|))],   E(x) = -logsumexp_k f(x)_k
        adv: L = (1/B) sum_i w_i [CE(f(x*_i), y_i) + beta KL(p(.|x_i) || p(.|x*_i))]
        nat: L = (1/B) sum_i w_i [CE(f(x_i), y_i)  + beta KL(p(.|x_i) || p(.|x*_i))]

    The weights come from the natural logits of the training-mode forward
    pass, are stop-gradiented and not normalised (as in the reference code:
    the loss scale shrinks as the model becomes confident); the mean weight
    of each epoch is logged as `weat_weight` (always the un-normalised
    weight). `normalize_weights=True` rescales the weights in the loss to
    mean 1 per batch, for TRADES' loss scale.

    Args:
        classifier: a Keras model returning logits.
        beta: weight of the KL term, default 6.0.
        variant: "adv" (default, the paper's headline WEAT-adv) or "nat".
        normalize_weights: default False (the reference).
        kl_floor: floor added to p(.|x') inside the log of the attack's and
            the objective's KL, default 1e-12 (the reference); None uses
            log-softmax (`kr.attacks.PGD(loss="kl")`, `kr.losses.kl_divergence`).
        epsilon, step_size, steps, norm, attack, eval_attack, attack_training_mode, seed, joint_forward: see `RobustModel`
            (defaults 8/255, 2/255, 10 steps, L-inf).

    Example:
    >>> model = kr.models.WEAT(net, epsilon=8/255, beta=6.0, variant="adv")
    >>> model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    >>> model.fit(train_ds, epochs=100,
    ...           callbacks=[kr.callbacks.EnergyPhaseLogger()])

    Reference: Mirza et al., "Shedding more light on robust classifiers
    under the lens of energy-based models", ECCV 2024.
    """

    def __init__(
        self,
        classifier=None,
        beta=6.0,
        variant="adv",
        normalize_weights=False,
        kl_floor=FLOOR,
        **kwargs,
    ):
        variant = validation.one_of(variant, "variant", losses.WEAT_VARIANTS)
        if kl_floor is not None:
            kl_floor = validation.positive_number(kl_floor, "kl_floor")
        # Read by `build_attack`, which the base constructor calls.
        self.kl_floor = kl_floor
        super().__init__(classifier, beta=beta, **kwargs)
        self.variant = variant
        self.normalize_weights = bool(normalize_weights)
        self.weight_tracker = keras.metrics.Mean(name="weat_weight")

    def build_attack(self):
        # TRADES' attack with the reference's floored log (WEAT_loss.py l. 67).
        if self.kl_floor is None:
            return self.training_pgd(loss="kl", random_start="normal")
        return FlooredKLPGD(
            self.epsilon,
            floor=self.kl_floor,
            step_size=self.step_size,
            steps=self.steps,
            norm=self.norm,
            random_start="normal",
        )

    def compute_objective(
        self, y, logits_natural, logits_adversarial, sample_weight=None
    ):
        return losses.weat_loss(
            self.objective_labels(y, logits_natural),
            logits_natural,
            logits_adversarial,
            beta=self.beta,
            variant=self.variant,
            normalize_weights=self.normalize_weights,
            sample_weight=sample_weight,
            kl_floor=self.kl_floor,
        )

    def method_trackers(self):
        return [self.weight_tracker]

    def update_method_trackers(self, y, logits_natural, logits_adversarial):
        self.weight_tracker.update_state(
            losses.weat_weights(energy.marginal_energy(logits_natural))
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            variant=self.variant,
            normalize_weights=self.normalize_weights,
            kl_floor=self.kl_floor,
        )
        return config
