"""Consistency regularisation of adversarial predictions (Tack et al. 2022)."""

from keras import ops

from keras_robust.losses import common

# The reference's floor under the mixture before its log
# (alinlab/consistency-adversarial `training/__init__.py`, line 14).
_FLOOR = 1e-8


def consistency_loss(logits_first, logits_second, temperature=0.5):
    """Jensen-Shannon divergence between two views' predictions, with temperature.

    With p = softmax(z1 / T), q = softmax(z2 / T) and m = (p + q) / 2:

        JS_T = (1/B) sum_i 0.5 * [KL(p_i || m_i) + KL(q_i || m_i)]

    where log m is taken of max(m, 1e-8), as the reference
    (alinlab/consistency-adversarial `training/__init__.py`,
    `_jensen_shannon_div`, lines 9-17; also DM-Improves-AT
    `gowal21uncovering/utils/trades.py`, lines 25-33). Gradients flow into
    both views. Used on the adversarial logits of two augmentations of the
    same images, weighted by lambda (reference defaults lambda 1, T 0.5).

    Args:
        logits_first: (batch, classes) logits of the first views.
        logits_second: (batch, classes) logits of the second views, row i
            the same image as row i of `logits_first`.
        temperature: T > 0.

    Returns:
        A float32 scalar.

    Example:
    >>> kr.losses.consistency_loss(model(x_adv[:b]), model(x_adv[b:]), temperature=0.5)
    """
    temperature = common.checked_number(temperature, "temperature")
    first, second = common.logits_inputs(
        logits_first=logits_first, logits_second=logits_second
    )
    p = ops.softmax(first / temperature, axis=-1)
    q = ops.softmax(second / temperature, axis=-1)
    log_mixture = ops.log(ops.maximum(0.5 * (p + q), _FLOOR))

    def kl_to_mixture(probabilities):
        # xlogy: 0 log 0 = 0, as torch's kl_div.
        safe = ops.where(probabilities > 0, probabilities, ops.ones_like(probabilities))
        entropy_term = ops.where(probabilities > 0, probabilities * ops.log(safe), 0.0)
        return ops.sum(entropy_term - probabilities * log_mixture, axis=-1)

    return ops.mean(0.5 * (kl_to_mixture(p) + kl_to_mixture(q)))
