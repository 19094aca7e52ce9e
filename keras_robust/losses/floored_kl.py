"""KL divergence with the +1e-12 floor of the WEAT and MART reference codes."""

from keras import ops

from keras_robust.losses import common

FLOOR = 1e-12


def floored_kl_divergence(logits_p, logits_q, floor=FLOOR):
    """Per-sample sum_k p_k (log p_k - log(q_k + floor)), p, q = softmax.

    The WEAT (`WEAT_loss.py`, lines 67, 89, 140) and MART (`mart.py`,
    line 55) references compute log(softmax(f(x')) + 1e-12) where
    `kr.losses.kl_divergence` uses log-softmax. The two agree unless some
    q_k < ~1e-10; there the floor caps the term at p_k (log p_k - log floor)
    and its gradient with respect to f(x') vanishes. log p_k is log-softmax
    (the references' p log p, through `xlogy`, is the same where p_k > 0).

    Args:
        logits_p: (batch, classes) logits of the reference distribution p.
        logits_q: (batch, classes) logits of q.
        floor: added to q before the log, default 1e-12.

    Returns:
        (batch,) float32 divergences.

    Example:
    >>> kl = kr.losses.floored_kl.floored_kl_divergence(net(x), net(x_adv))
    """
    logits_p, logits_q = common.logits_inputs(logits_p=logits_p, logits_q=logits_q)
    log_p = ops.log_softmax(logits_p, axis=-1)
    log_q = ops.log(ops.softmax(logits_q, axis=-1) + floor)
    return ops.sum(ops.exp(log_p) * (log_p - log_q), axis=-1)
