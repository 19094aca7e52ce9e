"""The energy landscape along attack directions: "smoother" as a number.

The energy-based reading of robustness (Mirza et al. 2024, "Shedding More
Light on Robust Classifiers under the lens of Energy-based Models") finds
that robust classifiers have a smoother energy landscape around the data.
`energy_along` measures it: for each input x and direction d (the
untargeted PGD perturbation, a targeted one, a random corner of the ball)
it evaluates the marginal energy E(x) = -logsumexp f(x) and the joint
energy E(x, y) = -f_y(x) at x + t d for t in [0, 1] (clipped to the input
box), and summarises each path by its mean absolute energy change per unit
of epsilon,

    roughness = (1 / epsilon) * sum_k |E(x + t_{k+1} d) - E(x + t_k d)|,

the path's total variation divided by its length in epsilon.
"""

import json

import numpy as np

from keras_robust import attacks as attack_lib
from keras_robust.losses.energies import joint_energy
from keras_robust.losses.energies import marginal_energy
from keras_robust.utils import data as data_lib
from keras_robust.utils import validation
from keras_robust.utils.labels import random_wrong_labels
from keras_robust.utils.plotting import require_matplotlib

DIRECTIONS = ("untargeted", "targeted", "random")
KINDS = ("marginal", "joint")


class EnergyPath:
    """Energies along straight paths from each input.

    Attributes:
        steps: (points,) the path parameters t in [0, 1].
        epsilon: the radius the directions were drawn at.
        energies: {direction: {"marginal", "joint": (n, points) arrays,
            "correct": (n, points) bool}}.
    """

    def __init__(self, steps, epsilon, energies):
        self.steps = np.asarray(steps, dtype="float64")
        self.epsilon = float(epsilon)
        self.energies = energies

    @property
    def directions(self):
        return list(self.energies)

    def roughness(self, kind="marginal"):
        """{direction: (n,) mean |dE| per unit of epsilon along each path}."""
        kind = validation.one_of(kind, "kind", KINDS)
        return {
            name: np.sum(np.abs(np.diff(values[kind], axis=1)), axis=1) / self.epsilon
            for name, values in self.energies.items()
        }

    def summary(self, kind="marginal"):
        """{direction: mean roughness, mean energy at t=0 and t=1, accuracy at t=1}."""
        roughness = self.roughness(kind)
        return {
            name: {
                "roughness": float(np.mean(roughness[name])),
                "energy_start": float(np.mean(values[kind][:, 0])),
                "energy_end": float(np.mean(values[kind][:, -1])),
                "accuracy_end": float(np.mean(values["correct"][:, -1])),
            }
            for name, values in self.energies.items()
        }

    def to_json(self, path=None, kind="marginal"):
        text = json.dumps(
            {"epsilon": self.epsilon, "kind": kind, "summary": self.summary(kind)},
            indent=2,
        )
        if path is not None:
            with open(path, "w") as handle:
                handle.write(text)
        return text

    def __repr__(self):
        rows = ", ".join(
            f"{name} {row['roughness']:.3f}" for name, row in self.summary().items()
        )
        return f"EnergyPath(epsilon={self.epsilon}, marginal roughness: {rows})"


def _direction_attacks(epsilon, norm, steps, seed):
    step_size = 2.5 * epsilon / steps
    return {
        "untargeted": attack_lib.PGD(
            epsilon, norm=norm, steps=steps, step_size=step_size, seed=seed
        ),
        "targeted": attack_lib.PGD(
            epsilon,
            norm=norm,
            steps=steps,
            step_size=step_size,
            targeted=True,
            seed=seed,
        ),
    }


def _random_direction(shape, epsilon, norm, rng):
    if norm == "linf":
        return epsilon * rng.choice([-1.0, 1.0], size=shape).astype("float32")
    noise = rng.standard_normal(shape).astype("float32")
    flat = noise.reshape(len(noise), -1)
    return (
        epsilon
        * noise
        / np.linalg.norm(flat, axis=1).reshape((-1,) + (1,) * (noise.ndim - 1))
    ).astype("float32")


def energy_along(
    model,
    x,
    y,
    epsilon,
    directions=DIRECTIONS,
    points=11,
    norm="linf",
    attack_steps=10,
    clip_min=0.0,
    clip_max=1.0,
    batch_size=256,
    seed=0,
):
    """Marginal and joint energies along x + t d, t in [0, 1], per direction.

    Args:
        model: a Keras classifier returning logits, or a `kr.models` method.
        x: inputs in [clip_min, clip_max], (n, ...).
        y: integer (n,) or one-hot labels.
        epsilon: the radius of the directions (> 0).
        directions: names among "untargeted" (d = x* - x of PGD), "targeted"
            (PGD towards a wrong class drawn per sample) and "random" (a
            random corner of the L-inf ball, or a random point on the L2
            sphere), or a dict {name: array shaped like x} of directions.
        points: path points, >= 2 (t = 0, 1/(points-1), ..., 1).
        norm: "linf" or "l2", of the attacks and the random direction.
        attack_steps: PGD steps of the attack directions.
        clip_min, clip_max: the input box every path point is clipped to.
        batch_size: inputs per batch.
        seed: seed of the attacks, the targets and the random directions.

    Returns:
        An `EnergyPath`; `.roughness()` and `.summary()` give the numbers,
        `plot_energy_along` the picture.

    Example:
    >>> path = kr.analysis.energy_along(model, x_test[:500], y_test[:500], epsilon=8/255)
    >>> print(path)  # the roughness of each direction
    """
    classifier = data_lib.classifier_of(model)
    epsilon = validation.positive_number(epsilon, "epsilon")
    points = validation.positive_integer(points, "points")
    if points < 2:
        raise ValueError(f"`points` must be an integer >= 2, got {points}.")
    norm = validation.norm_name(norm)
    attack_steps = validation.positive_integer(attack_steps, "attack_steps")
    batch_size = validation.positive_integer(batch_size, "batch_size")
    seed = validation.non_negative_integer(seed, "seed")
    clip_min, clip_max = validation.clip_range(clip_min, clip_max)
    validation.check_data(x, y)
    x = np.asarray(x, dtype="float32")
    validation.check_images(x, clip_min, clip_max)
    y = data_lib.integer_labels(y)
    given = _check_directions(directions, x)
    rng = np.random.default_rng(seed)
    attacks = _direction_attacks(epsilon, norm, attack_steps, seed)
    steps = np.linspace(0.0, 1.0, points)
    collected = {name: [] for name in given}
    for start in range(0, len(x), batch_size):
        x_batch, y_batch = x[start : start + batch_size], y[start : start + batch_size]
        num_classes = validation.check_logits(classifier(x_batch[:1], training=False))
        validation.check_labels(y_batch, num_classes, batch_size=len(x_batch))
        for name, direction in given.items():
            if isinstance(direction, np.ndarray):
                delta = direction[start : start + batch_size]
            elif name == "random":
                delta = _random_direction(x_batch.shape, epsilon, norm, rng)
            else:
                labels = y_batch
                if name == "targeted":
                    labels = random_wrong_labels(y_batch, num_classes, rng)
                x_adv = attacks[name](classifier, x_batch, labels)
                delta = np.asarray(x_adv, dtype="float32") - x_batch
            collected[name].append(
                _path_energies(
                    classifier, x_batch, y_batch, delta, steps, clip_min, clip_max
                )
            )
    energies = {
        name: {
            key: np.concatenate([part[key] for part in parts])
            for key in ("marginal", "joint", "correct")
        }
        for name, parts in collected.items()
    }
    return EnergyPath(steps, epsilon, energies)


def _check_directions(directions, x):
    if isinstance(directions, dict):
        checked = {}
        for name, direction in directions.items():
            array = np.asarray(direction, dtype="float32")
            if array.shape != x.shape:
                raise ValueError(
                    f"`directions[{name!r}]` has shape {array.shape}; a direction "
                    f"per input is shaped like `x`, {x.shape}."
                )
            checked[str(name)] = array
        if not checked:
            raise ValueError("`directions` is empty.")
        return checked
    if isinstance(directions, str):
        directions = (directions,)
    names = tuple(directions)
    for name in names:
        validation.one_of(name, "directions", DIRECTIONS)
    if not names:
        raise ValueError(f"`directions` is empty; choose among {DIRECTIONS}.")
    return {name: name for name in names}


def _path_energies(classifier, x, y, delta, steps, clip_min, clip_max):
    """{"marginal", "joint", "correct": (batch, points)} along x + t delta."""
    from keras import ops

    path = np.clip(
        x[:, None] + steps.reshape((1, -1) + (1,) * (x.ndim - 1)) * delta[:, None],
        clip_min,
        clip_max,
    ).astype("float32")
    batch, points = path.shape[:2]
    flat = path.reshape((batch * points,) + x.shape[1:])
    logits = classifier(flat, training=False)
    labels = np.repeat(y, points)
    marginal = ops.convert_to_numpy(marginal_energy(logits))
    joint = ops.convert_to_numpy(joint_energy(logits, labels))
    correct = ops.convert_to_numpy(logits).argmax(-1) == labels
    return {
        "marginal": marginal.reshape(batch, points),
        "joint": joint.reshape(batch, points),
        "correct": correct.reshape(batch, points),
    }


def plot_energy_along(paths, path=None, kind="marginal"):
    """Mean energy against t * epsilon, one panel per direction, a line per model.

    Args:
        paths: an `EnergyPath`, or {model name: EnergyPath} to compare.
        path: output file (.png, .pdf); None returns the figure.
        kind: "marginal" (E(x)) or "joint" (E(x, y)).

    Returns:
        the path written, or the matplotlib figure.
    """
    kind = validation.one_of(kind, "kind", KINDS)
    if isinstance(paths, EnergyPath):
        paths = {"model": paths}
    plt = require_matplotlib()
    names = list(next(iter(paths.values())).directions)
    figure, axes = plt.subplots(
        1, len(names), figsize=(4 * len(names), 3.2), squeeze=False
    )
    for axis, direction in zip(axes[0], names):
        for model_name, energy_path in paths.items():
            values = energy_path.energies[direction][kind]
            roughness = np.mean(energy_path.roughness(kind)[direction])
            axis.plot(
                energy_path.steps * energy_path.epsilon,
                values.mean(0),
                label=f"{model_name} (|dE|/eps {roughness:.2f})",
            )
        axis.set_title(direction)
        axis.set_xlabel("distance along the direction")
        axis.set_ylabel("mean E(x)" if kind == "marginal" else "mean E(x, y)")
        axis.legend(fontsize=7)
    figure.tight_layout()
    if path is None:
        return figure
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
