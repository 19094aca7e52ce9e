"""Numpy transcriptions of the objectives, the tests' independent oracles.

Each follows the authors' reference code (the comments quote it where the
reduction matters); the tests compare `kr.losses` and the training steps
against them on every backend.
"""

import numpy as np
from scipy.special import logsumexp


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_softmax(z):
    return np.exp(np_log_softmax(z))


def np_ce(y, z):
    return -np_log_softmax(z)[np.arange(len(y)), y]


def np_kl(zp, zq):
    p = np_softmax(zp)
    return (p * (np_log_softmax(zp) - np_log_softmax(zq))).sum(-1)


def np_trades(y, zn, za, beta):
    # loss_natural = F.cross_entropy(logits, y)
    # loss_robust = (1/B) * KLDivLoss(sum)(log_softmax(model(x_adv)), softmax(model(x)))
    return np_ce(y, zn).mean() + beta * np_kl(zn, za).sum() / len(y)


def np_mart(y, zn, za, beta):
    adv_probs = np_softmax(za)
    tmp1 = np.argsort(adv_probs, axis=1)[:, -2:]
    new_y = np.where(tmp1[:, -1] == y, tmp1[:, -2], tmp1[:, -1])
    loss_adv = (
        np_ce(y, za).mean()
        - np.log(1.0001 - adv_probs[np.arange(len(y)), new_y] + 1e-12).mean()
    )
    nat_probs = np_softmax(zn)
    true_probs = nat_probs[np.arange(len(y)), y]
    kl = (nat_probs * (np.log(nat_probs) - np.log(adv_probs + 1e-12))).sum(1)
    loss_robust = (kl * (1.0000001 - true_probs)).sum() / len(y)
    return loss_adv + beta * loss_robust


def np_distance(p, q, distance):
    """The reference's `distance_func(q, p)`: p natural, q adversarial."""
    m = (p + q) / 2
    kl = (p * np.log(p / q)).sum(-1)
    js = 0.5 * ((p * np.log(p / m)).sum(-1) + (q * np.log(q / m)).sum(-1))
    named = {
        "se": ((p - q) ** 2).sum(-1),
        "js": js,
        "sqrt_js": np.sqrt(js),
        "l1_squared": np.abs(p - q).sum(-1) ** 2,
        "kl": kl,
        "sqrt_kl": np.sqrt(kl),
        "reverse_sqrt_kl": np.sqrt((q * np.log(q / p)).sum(-1)),
    }
    if distance in named:
        return named[distance]
    order = (
        (float(distance[1:]) if distance != "linf" else np.inf)
        if isinstance(distance, str)
        else float(distance)
    )
    return np.linalg.norm(p - q, ord=order, axis=-1)


def np_score(
    y, zn, za, beta=3.0, distance="se", clip_value=0.0, label_smoothing=0.0, w=None
):
    """`trades_loss_LSE` of the reference, with the distance of `distance_func`."""
    classes = zn.shape[-1]
    one_hot = np.eye(classes)[y]
    target = (1 - classes * label_smoothing / (classes - 1)) * one_hot + (
        label_smoothing / (classes - 1)
    )
    pn, pa = np_softmax(zn.astype("float64")), np_softmax(za.astype("float64"))
    natural = ((pn - target) ** 2).sum(-1)
    robust = np.maximum(np_distance(pn, pa, distance) - clip_value, 0.0)
    per_sample = natural + beta * robust
    return per_sample.mean() if w is None else (w * per_sample).sum() / len(y)


def np_weat_weights(logits):
    energy = -logsumexp(logits, axis=-1)
    return 1.0 / np.log(1.0 + np.exp(np.abs(energy)))


def np_weat(y, zn, za, beta, variant, normalize=False):
    weights = np_weat_weights(zn)
    if normalize:
        weights = weights / weights.mean()
    ce = np_ce(y, za) if variant == "adv" else np_ce(y, zn)
    return np.mean(weights * (ce + beta * np_kl(zn, za)))
