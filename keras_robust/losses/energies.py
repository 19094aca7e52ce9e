"""Energies of a classifier read as an energy-based model.

A classifier with logits f(x) defines the joint energy E(x, y) = -f(x)_y and
the marginal energy E(x) = -log sum_k exp f(x)_k (no temperature). Then
cross-entropy is CE(x, y) = E(x, y) - E(x), and the TRADES KL term splits
exactly into a conditional part and a marginal-energy gap:

    KL(p(.|x) || p(.|x*)) = sum_k p(k|x) [E(x*, k) - E(x, k)] + E(x) - E(x*).

Reference: Mirza et al., "Shedding more light on robust classifiers under the
lens of energy-based models" (Prop. 1).
"""

from keras import ops

from keras_robust.losses import common
from keras_robust.utils import labels as labels_lib


def marginal_energy(logits):
    """Per-sample marginal energy E(x) = -logsumexp_k f(x)_k.

    Args:
        logits: (batch, classes) logits.

    Returns:
        (batch,) float32 energies.

    Example:
    >>> kr.energy.marginal_energy([[0.0, 0.0]])  # -log 2
    """
    (logits,) = common.logits_inputs(logits=logits)
    return -_logsumexp(logits)


def _logsumexp(logits):
    """logsumexp over the last axis, with a gradient accurate on every backend.

    m + log sum_k exp(f_k - m), with m = max_k f_k a constant of the
    gradient (stop-gradiented; the identity holds for any constant m, so
    derivatives of every order are exact). The gradient is then
    exp(f_k - m) / sum_j exp(f_j - m), in which f_k - m is exact for every
    f_k within a factor 2 of m (Sterbenz), which covers every class with a
    non-negligible probability at large logits. PyTorch's own `logsumexp`
    backward computes exp(f_k - L) from the float32 output L instead: at
    |L| = 1e4, L carries up to half an ulp (4.9e-4) of rounding, which
    becomes a relative error of up to 4.9e-4 in every probability.
    Infinite maxima are replaced by 0 (as `jax.nn.logsumexp`), so rows with
    -inf or +inf logits give -inf or +inf, not NaN.
    """
    top = ops.stop_gradient(ops.max(logits, axis=-1, keepdims=True))
    top = ops.where(ops.isfinite(top), top, ops.zeros_like(top))
    total = ops.sum(ops.exp(logits - top), axis=-1)
    return ops.squeeze(top, axis=-1) + ops.log(total)


def joint_energy(logits, y):
    """Per-sample joint energy E(x, y) = -f(x)_y.

    Args:
        logits: (batch, classes) logits.
        y: integer labels (batch,) or one-hot labels (batch, classes).

    Returns:
        (batch,) float32 energies.
    """
    (logits,) = common.logits_inputs(logits=logits)
    common.check_labels(y, logits, name="y")
    indices = labels_lib.to_indices(y, logits.shape[-1])
    picked = ops.take_along_axis(logits, ops.expand_dims(indices, -1), axis=-1)
    return -ops.squeeze(picked, axis=-1)


def trades_decomposition(logits_natural, logits_adversarial):
    """Splits KL(p(.|x) || p(.|x*)) into its two energy terms, per sample.

    conditional = sum_k p(k|x) [E(x*, k) - E(x, k)]
    marginal    = E(x) - E(x*)
    conditional + marginal == KL(p(.|x) || p(.|x*)) exactly.

    Args:
        logits_natural: (batch, classes) logits f(x).
        logits_adversarial: (batch, classes) logits f(x*).

    Returns:
        `(conditional, marginal)`, two (batch,) float32 tensors.
    """
    logits_natural, logits_adversarial = common.logits_inputs(
        logits_natural=logits_natural, logits_adversarial=logits_adversarial
    )
    probs = ops.softmax(logits_natural, axis=-1)
    conditional = ops.sum(probs * (logits_natural - logits_adversarial), axis=-1)
    marginal = marginal_energy(logits_natural) - marginal_energy(logits_adversarial)
    return conditional, marginal
