"""Training objectives as pure functions of labels and logits.

Every objective is a batch mean of per-sample terms, with the reductions of
the authors' reference code. With `sample_weight`, the batch mean becomes
sum_i w_i l_i / B (Keras' "sum_over_batch_size"). Labels are integers of
shape (batch,) or one-hot/soft labels of shape (batch, classes). Logits are
cast to float32.
"""

from keras import ops

from keras_robust import energy as energy_lib
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
    per_sample = cross_entropy(y_true, logits_natural) + beta * kl_divergence(
        logits_natural, logits_adversarial
    )
    return weighted_mean(per_sample, sample_weight)


def mart_loss(y_true, logits_natural, logits_adversarial, beta=6.0, sample_weight=None):
    """MART objective (Wang et al., 2020), as in the reference `mart.py`.

        BCE_i = CE(f(x*_i), y_i) - log(1.0001 - p(y'_i|x*_i) + 1e-12)
        L = (1/B) sum_i [ BCE_i + beta * KL(p(.|x_i) || p(.|x*_i))
                                       * (1.0000001 - p(y_i|x_i)) ]

    where y'_i is the most probable class of x*_i other than y_i and the KL
    uses log(p(.|x*) + 1e-12) as the reference does. Neither the KL target nor
    the (1 - p_y) weight is stop-gradiented.

    Args:
        y_true: labels, integer (batch,) or one-hot (batch, classes).
        logits_natural: f(x), (batch, classes).
        logits_adversarial: f(x*), (batch, classes).
        beta: weight of the robustness term (reference default 6.0).
        sample_weight: optional (batch,) weights.

    Returns:
        Scalar float32 loss.
    """
    logits_natural = _float(logits_natural)
    logits_adversarial = _float(logits_adversarial)
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
    boosted_ce = cross_entropy(y_true, logits_adversarial) - ops.log(
        1.0001 - prob_best_other + 1e-12
    )

    log_probs_natural = ops.log_softmax(logits_natural, axis=-1)
    kl = ops.sum(
        probs_natural * (log_probs_natural - ops.log(probs_adversarial + 1e-12)),
        axis=-1,
    )
    prob_true = ops.sum(true_mask * probs_natural, axis=-1)
    per_sample = boosted_ce + beta * kl * (1.0000001 - prob_true)
    return weighted_mean(per_sample, sample_weight)


WEAT_VARIANTS = ("adv", "nat")


def weat_weights(energy):
    """WEAT per-sample weights w(x) = 1 / log(1 + exp(|E(x)|)) = 1 / softplus(|E|).

    Largest (1/ln 2 ~ 1.443) at E = 0 and shrinking as |E| grows: samples the
    model is confident about (low energy) weigh less. Not normalised.

    Args:
        energy: per-sample marginal energies E(x), shape (batch,).

    Returns:
        (batch,) float32 weights.

    Example:
    >>> kr.losses.weat_weights(kr.energy.marginal_energy(logits))
    """
    return 1.0 / ops.softplus(ops.abs(_float(energy)))


def weat_loss(
    y_true,
    logits_natural,
    logits_adversarial,
    beta=6.0,
    variant="adv",
    normalize_weights=False,
    sample_weight=None,
):
    """WEAT objective (seed paper, reference `WEAT_loss.py`).

        w_i = sg[1 / softplus(|E(x_i)|)],  E(x) = -logsumexp f(x)
        adv: L = (1/B) sum_i w_i [CE(f(x*_i), y_i) + beta KL(p(.|x_i) || p(.|x*_i))]
        nat: L = (1/B) sum_i w_i [CE(f(x_i), y_i)  + beta KL(p(.|x_i) || p(.|x*_i))]

    The weights come from the natural logits and are stop-gradiented and,
    by default, not normalised, as in the reference (the loss scale shrinks
    as the model grows confident). `normalize_weights=True` divides them by
    their batch mean, for the loss scale of TRADES.

    Args:
        y_true: labels, integer (batch,) or one-hot (batch, classes).
        logits_natural: f(x), (batch, classes).
        logits_adversarial: f(x*), (batch, classes).
        beta: weight of the KL term, default 6.0.
        variant: "adv" (the paper's headline WEAT-adv) or "nat".
        normalize_weights: rescale weights to mean 1 per batch.
        sample_weight: optional (batch,) weights, multiplied in.

    Returns:
        Scalar float32 loss.
    """
    if variant not in WEAT_VARIANTS:
        raise ValueError(f"`variant` must be 'adv' or 'nat', got {variant!r}.")
    weights = ops.stop_gradient(
        weat_weights(energy_lib.marginal_energy(logits_natural))
    )
    if normalize_weights:
        weights = weights / ops.mean(weights)
    classified = logits_adversarial if variant == "adv" else logits_natural
    per_sample = cross_entropy(y_true, classified) + beta * kl_divergence(
        logits_natural, logits_adversarial
    )
    return weighted_mean(weights * per_sample, sample_weight)
