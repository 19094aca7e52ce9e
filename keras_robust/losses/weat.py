"""WEAT objective (the seed paper): energy-weighted TRADES."""

from keras import ops

from keras_robust.losses import common
from keras_robust.losses.energies import marginal_energy
from keras_robust.losses.floored_kl import FLOOR
from keras_robust.losses.floored_kl import floored_kl_divergence

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
    return 1.0 / ops.softplus(ops.abs(common._float(energy, "energy")))


def weat_loss(
    y_true,
    logits_natural,
    logits_adversarial,
    beta=6.0,
    variant="adv",
    normalize_weights=False,
    sample_weight=None,
    kl_floor=FLOOR,
):
    """WEAT objective (seed paper, reference `WEAT_loss.py`).

        w_i = sg[1 / softplus(|E(x_i)|)],  E(x) = -logsumexp f(x)
        adv: L = (1/B) sum_i w_i [CE(f(x*_i), y_i) + beta KL(p(.|x_i) || p(.|x*_i))]
        nat: L = (1/B) sum_i w_i [CE(f(x_i), y_i)  + beta KL(p(.|x_i) || p(.|x*_i))]

    The KL is the reference's, log(p(.|x*) + 1e-12) for log p(.|x*)
    (`WEAT_loss.py`, lines 89 and 140; `kr.losses.floored_kl`);
    `kl_floor=None` uses log-softmax (`kr.losses.kl_divergence`) instead.
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
        kl_floor: the floor added to p(.|x*) inside the KL's log, default
            1e-12 (the reference); None for log-softmax.

    Returns:
        Scalar float32 loss.
    """
    if variant not in WEAT_VARIANTS:
        raise ValueError(f"`variant` must be 'adv' or 'nat', got {variant!r}.")
    logits_natural, logits_adversarial = common.logits_inputs(
        logits_natural=logits_natural, logits_adversarial=logits_adversarial
    )
    common.check_labels(y_true, logits_natural)
    beta = common.checked_number(beta, "beta", allow_zero=True)
    weights = ops.stop_gradient(weat_weights(marginal_energy(logits_natural)))
    if normalize_weights:
        weights = weights / ops.mean(weights)
    classified = logits_adversarial if variant == "adv" else logits_natural
    if kl_floor is None:
        kl = common._kl_divergence(logits_natural, logits_adversarial)
    else:
        kl_floor = common.checked_number(kl_floor, "kl_floor")
        kl = floored_kl_divergence(logits_natural, logits_adversarial, kl_floor)
    per_sample = common._cross_entropy(y_true, classified) + beta * kl
    return common.weighted_mean(weights * per_sample, sample_weight)
