"""Decision-boundary dynamics: each point's margin and the speed it changes at.

DyART (Xu et al., ICLR 2023, "Exploring and Exploiting Decision Boundary
Dynamics for Adversarial Robustness") reads adversarial training through the
motion of the decision boundary. For a correctly classified point x with
margin function phi(., theta) > 0 (here the logit margin
f_y - max_{j != y} f_j, or DyART's soft margin), let x^ be the closest point
with phi(x^) = 0 and R = ||x^ - x|| its margin. When the weights move along
v (theta(t) = theta + t v), the implicit function theorem applied to
phi(x^(t), theta(t)) = 0 at the closest point gives the margin's speed

    dR/dt = (grad_theta phi(x^) . v) / ||grad_x phi(x^)||_*

with ||.||_* the dual norm of the threat model's (L1 for L-inf, L2 for L2).
A positive speed means the boundary moves away from x. The numerator, for
every probe point at once, is one forward-mode product (`kr.backend.weight_jvp`)
of the batch of margins phi(x^_i, theta) along v; the denominator comes from
one input-gradient pass. x^ is found by `kr.attacks.boundary_search` (FAB on
the scalar phi, ending with a bisection onto the boundary).

The formula is first order and holds where the closest point is interior
to the input box and the margin is differentiable there (for the hard
logit margin: a unique runner-up class at x^), as the paper assumes.
"""

import json

import keras
import numpy as np
from keras import ops

from keras_robust import backend
from keras_robust.attacks import norms
from keras_robust.attacks.boundary import boundary_search
from keras_robust.attacks.boundary import margin_and_gradient
from keras_robust.losses.dyart import soft_margin_of_mask
from keras_robust.utils import data as data_lib
from keras_robust.utils import labels as labels_lib
from keras_robust.utils import validation


class MarginSpeeds:
    """Margins and margin speeds of a set of points (numpy arrays).

    Attributes:
        margin: (n,) distance R from each point to its closest boundary
            point (NaN where none was found or the point is misclassified).
        speed: (n,) dR/dt under the weight direction (NaN where `margin` is).
        correct: (n,) bool, phi(x) > 0 (the point is classified correctly).
        found: (n,) bool, a boundary point was found for a correct point.
        boundary: (n, ...) the closest boundary points x^ (x itself where
            `found` is False).
        norm: "linf" or "l2".
    """

    def __init__(self, margin, speed, correct, found, norm, boundary=None):
        self.boundary = boundary
        self.margin = np.asarray(margin, dtype="float64")
        self.speed = np.asarray(speed, dtype="float64")
        self.correct = np.asarray(correct, dtype=bool)
        self.found = np.asarray(found, dtype=bool)
        self.norm = norm

    def __len__(self):
        return len(self.margin)

    def vulnerable(self, threshold):
        """(n,) bool: points with a boundary closer than `threshold`."""
        threshold = validation.positive_number(threshold, "threshold")
        return self.found & (np.nan_to_num(self.margin, nan=np.inf) < threshold)

    def conflicting_fraction(self, threshold):
        """Share of the vulnerable points whose margin shrinks (speed < 0).

        NaN when no point is vulnerable. DyART's "conflicting dynamics":
        adversarial training pushes the boundary away from some vulnerable
        points and towards others at the same time.
        """
        vulnerable = self.vulnerable(threshold)
        if not vulnerable.any():
            return float("nan")
        return float(np.mean(self.speed[vulnerable] < 0))

    def summary(self, threshold):
        """Counts, mean margin and speed, and the conflicting fraction."""
        found = self.found
        return {
            "points": len(self),
            "correct": int(self.correct.sum()),
            "found": int(found.sum()),
            "vulnerable": int(self.vulnerable(threshold).sum()),
            "mean_margin": float(np.mean(self.margin[found])) if found.any() else None,
            "mean_speed": float(np.mean(self.speed[found])) if found.any() else None,
            "conflicting_fraction": self.conflicting_fraction(threshold),
            "threshold": float(threshold),
            "norm": self.norm,
        }

    def to_json(self, path=None, threshold=None):
        record = {
            "margin": _nan_to_none(self.margin),
            "speed": _nan_to_none(self.speed),
            "correct": self.correct.tolist(),
            "found": self.found.tolist(),
            "norm": self.norm,
        }
        if threshold is not None:
            record["summary"] = self.summary(threshold)
        text = json.dumps(record)
        if path is not None:
            with open(path, "w") as handle:
                handle.write(text)
        return text

    def __repr__(self):
        found = self.found
        return (
            f"MarginSpeeds({len(self)} points, {int(found.sum())} with a boundary "
            f"point; mean margin {np.mean(self.margin[found]) if found.any() else 'n/a'})"
        )


def _nan_to_none(values):
    return [None if np.isnan(v) else float(v) for v in values]


def check_direction(direction, variables, name="update_direction"):
    """`direction` as a list of float32 tensors shaped like `variables`."""
    if not isinstance(direction, (list, tuple)):
        raise TypeError(
            f"`{name}` must be a list of arrays, one per trainable weight of "
            f"the classifier ({len(variables)}), got {type(direction).__name__}."
        )
    if len(direction) != len(variables):
        raise ValueError(
            f"`{name}` holds {len(direction)} arrays, the classifier has "
            f"{len(variables)} trainable weights: pass one per weight, in "
            "`classifier.trainable_variables` order."
        )
    tensors = []
    for index, (value, variable) in enumerate(zip(direction, variables)):
        tensor = validation.float_tensor(value, f"{name}[{index}]")
        if tuple(tensor.shape) != tuple(variable.shape):
            raise ValueError(
                f"`{name}[{index}]` has shape {tuple(tensor.shape)}, the weight "
                f"{variable.path} has shape {tuple(variable.shape)}."
            )
        tensors.append(tensor)
    return tensors


def training_direction(model, x, y, sample_weight=None):
    """The gradient-descent direction -grad_theta L of the model's objective.

    For a `kr.models` method, L is its own training objective at (x, x*)
    with x* crafted by its training attack (as one `fit` step computes it,
    including regularisation losses, BatchNorm in training mode); for a
    plain classifier, the cross-entropy of its logits. Nothing the model
    holds changes (BatchNorm statistics and seeds are read, not written).

    Args:
        model: a `kr.models` method or a Keras classifier.
        x, y: one batch and its integer or one-hot labels.
        sample_weight: optional (batch,) weights.

    Returns:
        A list of tensors shaped like `classifier.trainable_variables`.
    """
    classifier = data_lib.classifier_of(model)
    x = validation.float_tensor(x, "x")
    variables = list(classifier.trainable_variables)
    values = [v.value for v in variables]
    others = [v for v in model.variables if all(v is not w for w in variables)]
    fixed = [(v, v.value) for v in others]
    robust = classifier is not model
    if robust:
        x_adv = model.generate_adversarial(x, y, training=True)
        x_adv = keras.tree.map_structure(ops.stop_gradient, x_adv)

    def objective(current):
        mapping = list(zip(variables, current)) + fixed
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True):
            if robust:
                loss, _ = model.compute_robust_loss(x, x_adv, y, sample_weight)
                return ops.cast(loss, "float32")
            logits = classifier(x, training=True)
            loss = keras.losses.sparse_categorical_crossentropy(
                ops.convert_to_tensor(data_lib.integer_labels(y)), logits, True
            )
            terms = [ops.cast(term, "float32") for term in classifier.losses]
            return ops.mean(loss) + sum(terms, ops.zeros(()))

    gradients = backend.weight_gradient(objective, values)
    return [-ops.cast(g, "float32") for g in gradients]


class MarginSpeedFunction:
    """Margins and speeds of batches for one classifier, compiled once.

    The compiled function takes the weights as arguments, so calling it
    after training moved them (`kr.callbacks.BoundaryDynamics`, once per
    epoch) reuses the same program. Batches are padded to `batch_size`.

    Args:
        classifier: a Keras classifier returning logits.
        norm: "linf" or "l2".
        temperature: None (the hard logit margin, default) or DyART's
            inverse temperature t of the soft margin `kr.losses.soft_margin`.
        search_steps: FAB iterations of `boundary_search`.
        refine_steps: bisection steps onto the boundary after the search.
        batch_size: points per compiled call.
        clip_min, clip_max: the input box.
    """

    def __init__(
        self,
        classifier,
        norm="linf",
        temperature=None,
        search_steps=20,
        refine_steps=16,
        batch_size=256,
        clip_min=0.0,
        clip_max=1.0,
    ):
        self.classifier = classifier
        self.norm = validation.norm_name(norm)
        self.temperature = (
            None
            if temperature is None
            else validation.positive_number(temperature, "temperature")
        )
        self.search_steps = validation.positive_integer(search_steps, "search_steps")
        self.refine_steps = validation.non_negative_integer(
            refine_steps, "refine_steps"
        )
        self.batch_size = validation.positive_integer(batch_size, "batch_size")
        self.clip_min, self.clip_max = validation.clip_range(clip_min, clip_max)
        self._compiled = backend.compile_function(self._batch, jit_compile=True)

    def _mapping(self, trainable, non_trainable):
        return list(zip(self.classifier.trainable_variables, trainable)) + list(
            zip(self.classifier.non_trainable_variables, non_trainable)
        )

    def _margin(self, z, mask):
        logits = ops.cast(self.classifier(z, training=False), "float32")
        return soft_margin_of_mask(logits, mask, self.temperature)

    def _batch(self, trainable, non_trainable, direction, x, y):
        num_classes = self.classifier.output_shape[-1]
        y = labels_lib.to_one_hot(labels_lib.to_indices(y, num_classes), num_classes)
        with keras.StatelessScope(
            state_mapping=self._mapping(trainable, non_trainable)
        ):
            phi = self._margin(x, y)
            x_hat, found = boundary_search(
                lambda z: self._margin(z, y),
                x,
                steps=self.search_steps,
                norm=self.norm,
                init_radius=0.0,
                clip_min=self.clip_min,
                clip_max=self.clip_max,
                refine_steps=self.refine_steps,
            )
            _, input_gradient = margin_and_gradient(lambda z: self._margin(z, y), x_hat)

        def margin_at_boundary(values):
            mapping = self._mapping(values, non_trainable)
            with keras.StatelessScope(state_mapping=mapping):
                return ops.cast(self._margin(x_hat, y), "float32")

        _, margin_rate = backend.weight_jvp(margin_at_boundary, trainable, direction)
        dual = norms.dual_norm(input_gradient, self.norm)
        speed = margin_rate / ops.maximum(dual, norms.TINY)
        radius = norms.distance(x_hat - x, self.norm)
        valid = ops.logical_and(found, phi > 0)
        return phi > 0, valid, radius, speed, x_hat

    def __call__(self, x, y, direction):
        """`MarginSpeeds` of numpy `x`, `y` under `direction` (list of tensors)."""
        variables = self.classifier.trainable_variables
        direction = check_direction(direction, variables)
        trainable = [v.value for v in variables]
        non_trainable = [v.value for v in self.classifier.non_trainable_variables]
        parts = []
        for start in range(0, len(x), self.batch_size):
            x_batch = x[start : start + self.batch_size]
            y_batch = y[start : start + self.batch_size]
            count = len(x_batch)
            if count < self.batch_size and start > 0:
                # One compiled shape for every batch: repeat the first rows.
                pad = self.batch_size - count
                x_batch = np.concatenate([x_batch, x[:pad]])
                y_batch = np.concatenate([y_batch, y[:pad]])
            outputs = self._compiled(
                trainable,
                non_trainable,
                direction,
                ops.convert_to_tensor(x_batch.astype("float32")),
                ops.convert_to_tensor(y_batch),
            )
            parts.append([ops.convert_to_numpy(o)[:count] for o in outputs])
        correct, valid, radius, speed, boundary = (
            np.concatenate(p) for p in zip(*parts)
        )
        margin = np.where(valid, radius, np.nan)
        speed = np.where(valid, speed, np.nan)
        return MarginSpeeds(margin, speed, correct, valid, self.norm, boundary)


def check_probe(x, y, classifier, name="x"):
    """Numpy (x, y) of a probe set, checked against the classifier's input."""
    x = np.asarray(keras.ops.convert_to_numpy(x))
    y = np.asarray(keras.ops.convert_to_numpy(y))
    expected = (
        tuple(classifier.inputs[0].shape[1:]) if _has_inputs(classifier) else None
    )
    if x.ndim < 2 or (expected is not None and tuple(x.shape[1:]) != expected):
        raise ValueError(
            f"`{name}` must be a batch of inputs shaped (n, *{expected}), got "
            f"shape {x.shape}."
        )
    num_classes = classifier.output_shape[-1] if _has_inputs(classifier) else None
    if num_classes is not None:
        validation.check_labels(y, num_classes, name="y", batch_size=len(x))
    elif len(y) != len(x):
        raise ValueError(f"`y` holds {len(y)} labels for {len(x)} inputs.")
    validation.check_images(x, 0.0, 1.0, name=name)
    return x.astype("float32"), y


def _has_inputs(classifier):
    try:
        return bool(classifier.inputs)
    except (AttributeError, ValueError):
        return False


def margin_speeds(
    model,
    x,
    y,
    update_direction=None,
    norm="linf",
    temperature=None,
    search_steps=20,
    refine_steps=16,
    batch_size=256,
    direction_batch_size=128,
):
    """Per-point margin R and its speed dR/dt under a weight-update direction.

    With x^ the closest point where the margin phi changes sign (found by
    `kr.attacks.boundary_search`) and v the direction,

        R = ||x^ - x||,    dR/dt = (grad_theta phi(x^) . v) / ||grad_x phi(x^)||_*

    (dual norm: L1 for "linf", L2 for "l2"); the numerator for all points is
    one forward-mode product along v. See the module docstring.

    Args:
        model: a `kr.models` method or a Keras classifier (logits out), run
            in inference mode.
        x: probe inputs in [0, 1], (n, ...).
        y: their integer (n,) or one-hot (n, classes) labels.
        update_direction: list of arrays, one per
            `classifier.trainable_variables`; default: the gradient-descent
            direction of the model's own training objective on the first
            `direction_batch_size` probe points (`training_direction`), so
            that speeds are per unit of learning rate.
        norm: "linf" or "l2".
        temperature: None (hard logit margin) or the soft margin's t.
        search_steps, refine_steps: of the boundary search.
        batch_size: probe points per compiled call.
        direction_batch_size: points of the default direction's batch.

    Returns:
        A `MarginSpeeds`.

    Example:
    >>> result = kr.analysis.margin_speeds(model, x_test[:1000], y_test[:1000])
    >>> result.conflicting_fraction(threshold=0.1)
    """
    classifier = data_lib.classifier_of(model)
    x, y = check_probe(x, y, classifier)
    variables = classifier.trainable_variables
    if update_direction is None:
        count = validation.positive_integer(
            direction_batch_size, "direction_batch_size"
        )
        update_direction = training_direction(model, x[:count], y[:count])
    direction = check_direction(update_direction, variables)
    function = MarginSpeedFunction(
        classifier,
        norm=norm,
        temperature=temperature,
        search_steps=search_steps,
        refine_steps=refine_steps,
        batch_size=min(batch_size, len(x)),
    )
    return function(x, y, direction)
