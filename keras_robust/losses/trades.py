"""TRADES objective (Zhang et al., 2019)."""

from keras_robust.losses import common


def trades_loss(
    y_true, logits_natural, logits_adversarial, beta=6.0, sample_weight=None
):
    """TRADES objective (Zhang et al., 2019).

        L = (1/B) sum_i [ CE(f(x_i), y_i) + beta * KL(p(.|x_i) || p(.|x*_i)) ]

    The KL target p(.|x) is not stop-gradiented, as in the reference code.

    Args:
        y_true: labels, integer (batch,) or one-hot (batch, classes).
        logits_natural: f(x), (batch, classes).
        logits_adversarial: f(x*), (batch, classes).
        beta: weight of the robustness term (reference default 6.0).
        sample_weight: optional (batch,) weights.

    Returns:
        Scalar float32 loss.

    Example:
    >>> loss = kr.losses.trades_loss(y, model(x), model(x_adv), beta=6.0)
    """
    logits_natural, logits_adversarial = common.logits_inputs(
        logits_natural=logits_natural, logits_adversarial=logits_adversarial
    )
    common.check_labels(y_true, logits_natural)
    beta = common.checked_number(beta, "beta", allow_zero=True)
    per_sample = common._cross_entropy(
        y_true, logits_natural
    ) + beta * common._kl_divergence(logits_natural, logits_adversarial)
    return common.weighted_mean(per_sample, sample_weight)
