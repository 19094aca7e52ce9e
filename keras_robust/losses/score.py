"""SCORE objective (Pang et al., 2022): TRADES with a distance on probabilities."""

import math
import numbers
import re

from keras import ops

from keras_robust.losses import common
from keras_robust.utils import labels as labels_lib
from keras_robust.utils import validation

SCORE_DISTANCES = (
    "se",
    "js",
    "sqrt_js",
    "l1_squared",
    "kl",
    "sqrt_kl",
    "reverse_sqrt_kl",
)

# Below this value sqrt(v) is continued linearly (v / sqrt(_SQRT_FLOOR)), so
# the derivative stays finite where sqrt has an infinite one (at 0).
_SQRT_FLOOR = 1e-12
# log(max(p, _LOG_FLOOR)) for probabilities given as such (not as logits).
_LOG_FLOOR = 1e-30
_LP_PATTERN = re.compile(r"l(inf|\d+(?:\.\d*)?|\.\d+)")


def _lp_name(order):
    if math.isinf(order):
        return "linf"
    return f"l{int(order)}" if float(order).is_integer() else f"l{order!r}"


def canonical_distance(distance):
    """The canonical name of a SCORE distance, or a ValueError naming the options.

    Args:
        distance: one of `SCORE_DISTANCES`, an Lp norm written "l<p>" (e.g.
            "l1", "l2", "l4", "l1.5", "linf"), or a number p >= 1 (inf allowed).

    Returns:
        The canonical string: a `SCORE_DISTANCES` entry or "l<p>" ("l2" for 2
        and 2.0, "linf" for infinity).
    """
    order = None
    if isinstance(distance, str):
        name = distance.strip().lower()
        if name in SCORE_DISTANCES:
            return name
        match = _LP_PATTERN.fullmatch(name)
        if match:
            order = float(match.group(1))
    elif isinstance(distance, numbers.Real) and not isinstance(distance, bool):
        order = float(distance)
    if order is not None and order >= 1:  # False for NaN.
        return _lp_name(order)
    options = ", ".join(repr(name) for name in SCORE_DISTANCES)
    raise ValueError(
        f"`distance` must be one of {options}, an Lp norm 'l<p>' with p >= 1 "
        f"(e.g. 'l1', 'l2', 'l4', 'linf') or a number p >= 1; got {distance!r}."
    )


def check_clip_value(clip_value):
    """`clip_value` c >= 0 of the clipped robust term relu(D - c)."""
    return validation.positive_number(clip_value, "clip_value", allow_zero=True)


def check_label_smoothing(label_smoothing):
    """`label_smoothing` in [0, 1)."""
    value = validation.positive_number(
        label_smoothing, "label_smoothing", allow_zero=True
    )
    if value >= 1.0:
        raise ValueError(
            f"`label_smoothing` must lie in [0, 1), got {label_smoothing!r}."
        )
    return value


def _safe_sqrt(value):
    """sqrt(max(v, 0)), continued linearly below a tiny floor.

    sqrt has an infinite derivative at 0, which becomes NaN when multiplied by
    the zero gradient of a distance between identical distributions. Below
    `_SQRT_FLOOR` (1e-12) the value is v / sqrt(floor) instead: continuous,
    within 1e-6 of sqrt(v), with a finite derivative. Rounding noise that
    makes a divergence slightly negative is clipped to 0.
    """
    value = ops.maximum(value, 0.0)
    above = value > _SQRT_FLOOR
    root = ops.sqrt(ops.where(above, value, 1.0))
    return ops.where(above, root, value / math.sqrt(_SQRT_FLOOR))


def _kl(p, log_p, log_q):
    return ops.sum(p * (log_p - log_q), axis=-1)


def _lp_norm(difference, order):
    """||d||_p over the last axis, scaled by max|d| against underflow.

    ||d||_p = m * (sum_k (|d_k| / m)^p)^(1/p) with m = max_k |d_k|: the sum is
    >= 1 whenever d != 0, so the root is differentiable there, and a zero
    difference gives 0 with a zero (not NaN) gradient.
    """
    magnitude = ops.abs(difference)
    if order == 1.0:
        return ops.sum(magnitude, axis=-1)
    largest = ops.max(magnitude, axis=-1)
    if math.isinf(order):
        return largest
    nonzero = largest > 0
    scale = ops.where(nonzero, largest, 1.0)
    total = ops.sum(ops.power(magnitude / ops.expand_dims(scale, -1), order), axis=-1)
    total = ops.where(nonzero, total, 1.0)
    return largest * ops.power(total, 1.0 / order)


def _distance(p, log_p, q, log_q, name):
    """Per-sample D(p, q) from probabilities and their logarithms."""
    if name == "se":
        return ops.sum(ops.square(p - q), axis=-1)
    if name in ("js", "sqrt_js"):
        # With m = (p + q) / 2: log p - log m = log 2 - softplus(log q - log p),
        # from the log-ratio only: no log(0), no cancellation of large logs,
        # and exactly 0 for identical inputs.
        ratio = log_q - log_p
        value = 0.5 * ops.sum(
            p * (math.log(2.0) - ops.softplus(ratio))
            + q * (math.log(2.0) - ops.softplus(-ratio)),
            axis=-1,
        )
        return value if name == "js" else _safe_sqrt(value)
    if name == "l1_squared":
        return ops.square(ops.sum(ops.abs(p - q), axis=-1))
    if name == "kl":
        return _kl(p, log_p, log_q)
    if name == "sqrt_kl":
        return _safe_sqrt(_kl(p, log_p, log_q))
    if name == "reverse_sqrt_kl":
        return _safe_sqrt(_kl(q, log_q, log_p))
    order = math.inf if name == "linf" else float(name[1:])
    return _lp_norm(p - q, order)


def probability_distance(p, q, distance="se"):
    """Per-sample distance between two probability vectors, as used by SCORE.

    With p the reference distribution (SCORE: p(.|x), natural) and q the
    compared one (SCORE: p(.|x*), adversarial), summing over the last axis:

        se:              sum_k (p_k - q_k)^2
        js:              JS(p, q) = (KL(p || m) + KL(q || m)) / 2,  m = (p + q) / 2
        sqrt_js:         sqrt(JS(p, q))
        l1_squared:      (sum_k |p_k - q_k|)^2
        kl:              KL(p || q) = sum_k p_k (log p_k - log q_k)
        sqrt_kl:         sqrt(KL(p || q))
        reverse_sqrt_kl: sqrt(KL(q || p))
        "l<p>" or p:     ||p - q||_p = (sum_k |p_k - q_k|^p)^(1/p), p >= 1
                         ("linf": max_k |p_k - q_k|)

    Natural logarithms. Logarithms of probabilities are taken as
    log(max(p, 1e-30)), so zero probabilities give finite values; the square
    roots have finite gradients at 0 (identical inputs). From logits,
    `score_loss` computes the logarithms with log-softmax instead.

    Args:
        p: (..., classes) probabilities (rows summing to 1).
        q: (..., classes) probabilities, same shape.
        distance: a name in `SCORE_DISTANCES`, "l<p>" (e.g. "l1", "l2",
            "l4", "linf") or a number p >= 1.

    Returns:
        (...,) float32 distances.

    Example:
    >>> p = keras.ops.softmax(model(x)); q = keras.ops.softmax(model(x_adv))
    >>> kr.losses.probability_distance(p, q, "sqrt_js")   # shape (batch,)
    """
    name = canonical_distance(distance)
    p, q = common._float(p, "p"), common._float(q, "q")
    if len(p.shape) < 1 or not common.same_shape(tuple(p.shape), tuple(q.shape)):
        raise ValueError(
            "`p` and `q` must be probability vectors of one shape (..., classes), "
            f"got shapes {tuple(p.shape)} and {tuple(q.shape)}."
        )
    log_p = ops.log(ops.maximum(p, _LOG_FLOOR))
    log_q = ops.log(ops.maximum(q, _LOG_FLOOR))
    return _distance(p, log_p, q, log_q, name)


def _check_number(value, check):
    # Python values are validated; tensors are the caller's responsibility.
    return check(value) if common.is_python_value(value) else value


def score_loss(
    y_true,
    logits_natural,
    logits_adversarial,
    beta=3.0,
    distance="se",
    clip_value=0.0,
    label_smoothing=0.0,
    sample_weight=None,
):
    """SCORE objective (Pang et al., 2022), as the reference `trades_loss_LSE`.

    TRADES with both terms measured between probabilities instead of with
    cross-entropy and KL:

        L = (1/B) sum_i [ ||p(.|x_i) - y~_i||_2^2
                          + beta * relu(D(p(.|x_i), p(.|x*_i)) - c) ]

    with p = softmax(f), D the `distance` (`probability_distance`, p(.|x)
    first: "kl" is KL(p(.|x) || p(.|x*)), the TRADES direction and the
    reference's), c = `clip_value` and y~ the label-smoothed target of the
    reference, y~ = (1 - K s / (K - 1)) y + s / (K - 1) for K classes and
    s = `label_smoothing` (the true class keeps 1 - s, every other class gets
    s / (K - 1)). Nothing is stop-gradiented: gradients flow through both
    p(.|x) and p(.|x*). Probabilities and their logarithms come from
    softmax/log-softmax of the float32 logits, so the loss and its gradient
    stay finite for extreme logits.

    Args:
        y_true: labels, integer (batch,) or one-hot/soft (batch, classes).
        logits_natural: f(x), (batch, classes).
        logits_adversarial: f(x*), (batch, classes).
        beta: weight of the robust term, >= 0 (reference 3.0-4.0).
        distance: see `probability_distance`; default "se" (squared L2).
        clip_value: c >= 0; the robust term is relu(D - c). Default 0.
        label_smoothing: s in [0, 1), default 0 (SCORE's setting).
        sample_weight: optional (batch,) weights (sum_i w_i l_i / B).

    `beta`, `clip_value` and `label_smoothing` given as Python numbers are
    checked (ValueError naming the argument); tensors pass unchecked.

    Returns:
        Scalar float32 loss.

    Example:
    >>> loss = kr.losses.score_loss(y, model(x), model(x_adv), beta=3.0)
    >>> loss = kr.losses.score_loss(y, z_nat, z_adv, distance="l1", clip_value=0.1)
    """
    beta = _check_number(
        beta, lambda v: validation.positive_number(v, "beta", allow_zero=True)
    )
    clip_value = _check_number(clip_value, check_clip_value)
    label_smoothing = _check_number(label_smoothing, check_label_smoothing)
    name = canonical_distance(distance)

    logits_natural, logits_adversarial = common.logits_inputs(
        logits_natural=logits_natural, logits_adversarial=logits_adversarial
    )
    common.check_labels(y_true, logits_natural)
    log_natural = ops.log_softmax(logits_natural, axis=-1)
    log_adversarial = ops.log_softmax(logits_adversarial, axis=-1)
    natural, adversarial = ops.exp(log_natural), ops.exp(log_adversarial)
    num_classes = log_natural.shape[-1]
    targets = labels_lib.to_one_hot(y_true, num_classes)
    spread = label_smoothing / (num_classes - 1)
    targets = (1.0 - num_classes * spread) * targets + spread

    natural_term = ops.sum(ops.square(natural - targets), axis=-1)
    robust_term = ops.relu(
        _distance(natural, log_natural, adversarial, log_adversarial, name) - clip_value
    )
    return common.weighted_mean(natural_term + beta * robust_term, sample_weight)
