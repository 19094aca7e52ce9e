"""Per-sample attack objectives, each to be MAXIMISED by the attacker.

    ce:  CE(f(x'), y)                      targeted: -CE(f(x'), t)
    cw:  max_{j != y} f_j - f_y (margin)   targeted: f_t - max_{j != t} f_j
    kl:  KL(p(.|x) || p(.|x'))             (TRADES; p(.|x) fixed)
    se:  ||p(.|x') - p(.|x)||_2^2          (SCORE; p(.|x) fixed)
    dlr: -(f_y - max_{j != y} f_j) / (f_pi1 - f_pi3 + 1e-12)  (Croce & Hein)
    targeted dlr (APGD-T, needs y and a target t):
         -(f_y - f_t) / (f_pi1 - (f_pi3 + f_pi4) / 2 + 1e-12)

kl and se compare with the prediction on the natural input, which the attack
computes once, without gradient.
"""

from keras import ops

from keras_robust import losses
from keras_robust.utils import labels as labels_lib

UNTARGETED_ONLY = ("kl", "se", "dlr")
NEEDS_NATURAL_LOGITS = ("kl", "se")
ALL = ("ce", "cw", "kl", "se", "dlr")


def margin(labels, logits):
    """f_y - max_{j != y} f_j, per sample."""
    num_classes = logits.shape[-1]
    mask = labels_lib.to_one_hot(
        labels_lib.to_indices(labels, num_classes), num_classes
    )
    true_logit = ops.sum(mask * logits, axis=-1)
    best_other = ops.max(ops.where(mask > 0, -1e30, logits), axis=-1)
    return true_logit - best_other


def objective_fn(name, targeted, labels, natural_logits=None):
    """Returns `fn(logits) -> (batch,)` values to maximise."""
    if name == "ce":
        sign = -1.0 if targeted else 1.0
        return lambda logits: sign * losses.cross_entropy(labels, logits)
    if name == "cw":
        sign = 1.0 if targeted else -1.0
        return lambda logits: sign * margin(labels, ops.cast(logits, "float32"))
    if name == "kl":
        return lambda logits: losses.kl_divergence(natural_logits, logits)
    if name == "se":
        natural_probs = ops.softmax(ops.cast(natural_logits, "float32"), axis=-1)

        def squared_error(logits):
            probs = ops.softmax(ops.cast(logits, "float32"), axis=-1)
            return ops.sum(ops.square(probs - natural_probs), axis=-1)

        return squared_error
    if name == "dlr":

        def dlr(logits):
            if logits.shape[-1] < 3:
                raise ValueError(
                    "loss='dlr' needs at least 3 classes (it uses the third "
                    f"largest logit); the model has {logits.shape[-1]}."
                )
            logits = ops.cast(logits, "float32")
            ranked = ops.sort(logits, axis=-1)
            scale = ranked[:, -1] - ranked[:, -3] + 1e-12
            return -margin(labels, logits) / scale

        return dlr
    raise ValueError(f"Unknown attack loss {name!r}.")


def targeted_dlr(labels, targets):
    """`fn(logits)`: the targeted DLR loss of APGD-T, per sample, to maximise.

    -(f_y - f_t) / (f_pi1 - (f_pi3 + f_pi4) / 2 + 1e-12), with f_pi_k the
    k-th largest logit; needs at least 4 classes.
    """

    def dlr(logits):
        num_classes = logits.shape[-1]
        if num_classes < 4:
            raise ValueError(
                "The targeted DLR loss uses the fourth largest logit: it needs "
                f"at least 4 classes; the model has {num_classes}."
            )
        logits = ops.cast(logits, "float32")
        true_mask = labels_lib.to_one_hot(
            labels_lib.to_indices(labels, num_classes), num_classes
        )
        target_mask = labels_lib.to_one_hot(targets, num_classes)
        ranked = ops.sort(logits, axis=-1)
        scale = ranked[:, -1] - 0.5 * (ranked[:, -3] + ranked[:, -4]) + 1e-12
        gap = ops.sum((true_mask - target_mask) * logits, axis=-1)
        return -gap / scale

    return dlr


def target_picker(clean_logits, targets, restarts):
    """`run -> target labels` of the targeted attacks APGD-T and FAB-T.

    Run r attacks, for every sample, the (r // restarts + 2)-th most likely
    class of the clean input: the runs go through the `targets` most likely
    wrong classes, `restarts` runs each. Untargeted (`targets` None): None.
    """
    if targets is None:
        return lambda run: None
    num_classes = clean_logits.shape[-1]
    if targets > num_classes - 1:
        raise ValueError(
            f"`targets`={targets} exceeds the {num_classes - 1} classes other "
            "than the true one."
        )
    ranking = ops.argsort(clean_logits, axis=-1)  # ascending
    return lambda run: ops.take(ranking, num_classes - 2 - run // restarts, axis=1)


def success(logits, labels, targeted):
    """Per-sample bool: misclassified (untargeted) or classified as target."""
    num_classes = logits.shape[-1]
    predicted = ops.cast(ops.argmax(logits, axis=-1), "int32")
    indices = labels_lib.to_indices(labels, num_classes)
    return (
        ops.equal(predicted, indices) if targeted else ops.not_equal(predicted, indices)
    )
