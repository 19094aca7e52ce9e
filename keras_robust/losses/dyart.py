"""DyART objective (Xu et al., 2023): soft logit margin and margin weights."""

from keras import ops

from keras_robust.losses import common
from keras_robust.utils import labels as labels_lib

_MASKED = -1e30


def soft_margin(logits, y_true, temperature=5.0):
    """Soft logit margin of the true class, per sample.

        phi_t(x) = f_y(x) - (1/t) log sum_{j != y} exp(t f_j(x))

    The smooth maximum over the other classes is an upper bound of their
    maximum within log(K - 1) / t, so phi_t is a lower bound of the hard
    margin m = f_y - max_{j != y} f_j:

        m - log(K - 1) / t <= phi_t <= m.

    `temperature` t is an INVERSE temperature: the larger it is, the closer
    phi_t is to the hard margin; `temperature=None` gives the hard margin
    itself (the limit t -> inf). phi_t > 0 implies a correct prediction.

    Args:
        logits: (batch, classes) logits, classes >= 2.
        y_true: integer labels (batch,) or one-hot labels (batch, classes)
            (dense labels use their argmax).
        temperature: t > 0 (default 5.0, DyART's), or None.

    Returns:
        (batch,) float32 margins.

    Example:
    >>> phi = kr.losses.soft_margin(net(x), y, temperature=5.0)
    >>> correct = phi > 0
    """
    if temperature is not None:
        temperature = common.checked_number(temperature, "temperature")
    (logits,) = common.logits_inputs(logits=logits)
    common.check_labels(y_true, logits)
    num_classes = logits.shape[-1]
    mask = labels_lib.to_one_hot(
        labels_lib.to_indices(y_true, num_classes), num_classes
    )
    return soft_margin_of_mask(logits, mask, temperature)


def soft_margin_of_mask(logits, mask, temperature):
    """`soft_margin` from a one-hot `mask` of the true classes, unchecked.

    For code that has validated its labels once and differentiates the
    margin many times (forward-mode transforms cannot read values back).
    """
    true_logit = ops.sum(mask * logits, axis=-1)
    others = ops.where(mask > 0, _MASKED, logits)
    if temperature is None:
        return true_logit - ops.max(others, axis=-1)
    # The same phi_t, computed around m = max_{j != y} f_j (held constant:
    # phi_t does not depend on it):
    #     phi_t = (f_y - m) - (1/t) log sum_{j != y} exp(t (f_j - m)).
    # f_y - logsumexp(t f_j) / t would subtract two float32 numbers of the
    # size of the logits after rounding (an error of ~1e-3 at logits of 1e4);
    # here the logsumexp lies in [0, log(K - 1)] and f_y - m is one rounding.
    top = ops.stop_gradient(ops.max(others, axis=-1))
    gaps = temperature * (logits - ops.expand_dims(top, -1))
    gaps = ops.where(mask > 0, _MASKED, gaps)
    return (true_logit - top) - ops.logsumexp(gaps, axis=-1) / temperature


def dyart_margin_weights(radius, grad_l1, alpha=3.0, r0=16 / 255):
    """DyART weights of the boundary points, from the implicit-function theorem.

    For a boundary point x^ of x (phi(x^) = 0) at L-inf distance
    R = ||x^ - x||_inf, the derivative of the margin R with respect to the
    weights theta is dR/dtheta = grad_theta phi(x^) / ||grad_x phi(x^)||_1
    (the L1 norm is the dual of L-inf). Ascending h(R) with
    h'(r) = exp(-alpha r) 1[r < r0] therefore ascends

        sum_i w_i phi(x^_i),   w_i = sg[h'(R_i) / ||grad_x phi(x^_i)||_1],

    which favours small margins (exp(-alpha R)) and ignores points already
    farther than r0. Points with a zero input gradient (no usable boundary
    point) get weight 0.

    Args:
        radius: (batch,) margins R = ||x^ - x||_inf.
        grad_l1: (batch,) ||grad_x phi(x^)||_1 (for L2 geometry, pass the L2
            norm: the dual of L2 is L2).
        alpha: decay rate >= 0 of h', default 3.0.
        r0: cut-off radius > 0, default 16/255.

    Returns:
        (batch,) float32 weights, stop-gradiented.

    Example:
    >>> w = kr.losses.dyart_margin_weights(radius, grad_l1, alpha=3.0, r0=16/255)
    """
    alpha = common.checked_number(alpha, "alpha", allow_zero=True)
    r0 = common.checked_number(r0, "r0")
    radius = common._float(radius, "radius")
    grad_l1 = common._float(grad_l1, "grad_l1")
    if len(radius.shape) != 1 or not common.same_shape(
        tuple(radius.shape), tuple(grad_l1.shape)
    ):
        raise ValueError(
            "`radius` and `grad_l1` must be (batch,) vectors of one shape, got "
            f"shapes {tuple(radius.shape)} and {tuple(grad_l1.shape)}."
        )
    usable = ops.logical_and(radius < r0, grad_l1 > 0)
    safe_norm = ops.where(grad_l1 > 0, grad_l1, 1.0)
    weights = ops.where(usable, ops.exp(-alpha * radius) / safe_norm, 0.0)
    return ops.stop_gradient(weights)


def dyart_loss(
    y_true,
    logits_natural,
    logits_boundary,
    margin_weights,
    lam=1000.0,
    temperature=5.0,
    sample_weight=None,
):
    """DyART objective: natural cross-entropy plus the boundary term.

        L = (1/B) sum_i CE(f(x_i), y_i)  -  lam (1/B) sum_{i kept} w_i phi_t(x^_i)

    B is the FULL batch size (samples without a kept boundary point count in
    B and contribute only their CE), w_i are `dyart_margin_weights` (pass 0
    for samples without a kept boundary point) and phi_t is `soft_margin`.
    The gradient of the boundary term flows through phi_t(x^_i) into the
    weights only: x^ and w are constants. With `sample_weight` s, both terms
    are weighted: (1/B) sum_i s_i [CE_i - lam w_i phi_t(x^_i)].

    Args:
        y_true: labels, integer (batch,) or one-hot (batch, classes).
        logits_natural: f(x), (batch, classes).
        logits_boundary: f(x^), (batch, classes); any finite logits where the
            weight is 0 (e.g. f(x)).
        margin_weights: (batch,) weights w_i >= 0, 0 where no boundary point
            was kept; stop-gradiented here.
        lam: weight >= 0 of the boundary term, default 1000 (the reference's
            CIFAR-10 value, `lambda` in the paper).
        temperature: inverse temperature t > 0 of the soft margin, default 5.
        sample_weight: optional (batch,) weights.

    Returns:
        Scalar float32 loss.

    Example:
    >>> loss = kr.losses.dyart_loss(y, net(x, training=True),
    ...                             net(x_hat, training=True), weights, lam=1000.0)
    """
    lam = common.checked_number(lam, "lam", allow_zero=True)
    temperature = common.checked_number(temperature, "temperature")
    logits_natural, logits_boundary = common.logits_inputs(
        logits_natural=logits_natural, logits_boundary=logits_boundary
    )
    margin_weights = common.check_per_sample(
        margin_weights, "margin_weights", logits_natural.shape[0]
    )
    weights = ops.stop_gradient(ops.reshape(margin_weights, (-1,)))
    phi = soft_margin(logits_boundary, y_true, temperature)
    boundary = ops.where(weights > 0, weights * phi, 0.0)
    per_sample = common._cross_entropy(y_true, logits_natural) - lam * boundary
    return common.weighted_mean(per_sample, sample_weight)
