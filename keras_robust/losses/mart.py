"""MART objective (Wang et al., 2020)."""

from keras import ops

from keras_robust.losses import common
from keras_robust.losses.floored_kl import floored_kl_divergence
from keras_robust.utils import labels as labels_lib


def mart_loss(y_true, logits_natural, logits_adversarial, beta=6.0, sample_weight=None):
    """MART objective (Wang et al., 2020), as in the reference `mart.py`.

        BCE_i = CE(f(x*_i), y_i) - log(1.0001 - p(y'_i|x*_i) + 1e-12)
        L = (1/B) sum_i [ BCE_i + beta * KL(p(.|x_i) || p(.|x*_i))
                                       * (1.0000001 - p(y_i|x_i)) ]

    where y'_i is the most probable class of x*_i other than y_i and the KL
    uses log(p(.|x*) + 1e-12) as the reference does (`mart.py`, line 55;
    `kr.losses.floored_kl`); the reference's attack is plain CE (line 25).
    Neither the KL target nor the (1 - p_y) weight is stop-gradiented.

    Args:
        y_true: labels, integer (batch,) or one-hot (batch, classes).
        logits_natural: f(x), (batch, classes).
        logits_adversarial: f(x*), (batch, classes).
        beta: weight of the robustness term (reference default 6.0).
        sample_weight: optional (batch,) weights.

    Returns:
        Scalar float32 loss.
    """
    logits_natural, logits_adversarial = common.logits_inputs(
        logits_natural=logits_natural, logits_adversarial=logits_adversarial
    )
    common.check_labels(y_true, logits_natural)
    beta = common.checked_number(beta, "beta", allow_zero=True)
    num_classes = logits_natural.shape[-1]
    true_mask = labels_lib.to_one_hot(
        labels_lib.to_indices(y_true, num_classes), num_classes
    )
    probs_adversarial = ops.softmax(logits_adversarial, axis=-1)
    probs_natural = ops.softmax(logits_natural, axis=-1)

    best_other = ops.argmax(ops.where(true_mask > 0, -1.0, probs_adversarial), axis=-1)
    prob_best_other = ops.sum(
        ops.one_hot(best_other, num_classes) * probs_adversarial, axis=-1
    )
    boosted_ce = common._cross_entropy(y_true, logits_adversarial) - ops.log(
        1.0001 - prob_best_other + 1e-12
    )

    kl = floored_kl_divergence(logits_natural, logits_adversarial)
    prob_true = ops.sum(true_mask * probs_natural, axis=-1)
    per_sample = boosted_ce + beta * kl * (1.0000001 - prob_true)
    return common.weighted_mean(per_sample, sample_weight)
