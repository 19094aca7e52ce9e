"""Shared pieces of the training objectives: reductions, cross-entropy, KL."""

from keras import ops

from keras_robust.utils import labels as labels_lib


def _float(tensor):
    return ops.cast(ops.convert_to_tensor(tensor), "float32")


def weighted_mean(per_sample, sample_weight=None):
    """sum_i w_i l_i / B, or the plain mean without weights."""
    per_sample = _float(per_sample)
    if sample_weight is None:
        return ops.mean(per_sample)
    sample_weight = ops.reshape(_float(sample_weight), ops.shape(per_sample))
    return ops.sum(per_sample * sample_weight) / ops.cast(
        ops.shape(per_sample)[0], "float32"
    )


def cross_entropy(y_true, logits):
    """Per-sample softmax cross-entropy -sum_k y_k log p(k|x).

    Args:
        y_true: integer labels (batch,) or one-hot/soft labels (batch, classes).
        logits: (batch, classes) logits.

    Returns:
        (batch,) float32 losses.
    """
    logits = _float(logits)
    targets = labels_lib.to_one_hot(y_true, logits.shape[-1])
    return -ops.sum(targets * ops.log_softmax(logits, axis=-1), axis=-1)


def kl_divergence(logits_p, logits_q):
    """Per-sample KL(p || q) = sum_k p_k (log p_k - log q_k) from logits.

    Computed with log-softmax, so it stays finite for extreme logits.

    Args:
        logits_p: (batch, classes) logits of the reference distribution p.
        logits_q: (batch, classes) logits of q.

    Returns:
        (batch,) float32 divergences.
    """
    log_p = ops.log_softmax(_float(logits_p), axis=-1)
    log_q = ops.log_softmax(_float(logits_q), axis=-1)
    return ops.sum(ops.exp(log_p) * (log_p - log_q), axis=-1)


def adversarial_cross_entropy_loss(y_true, logits_adversarial, sample_weight=None):
    """Madry et al. (2018) PGD-AT objective: mean_i CE(f(x*_i), y_i)."""
    return weighted_mean(cross_entropy(y_true, logits_adversarial), sample_weight)
