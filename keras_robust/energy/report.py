"""How attacks move the energies: distributions on natural vs attacked inputs."""

import json

import keras
import numpy as np

from keras_robust.attacks.base import Attack
from keras_robust.losses.energies import joint_energy
from keras_robust.losses.energies import marginal_energy
from keras_robust.utils import validation
from keras_robust.utils.data import classifier_of
from keras_robust.utils.data import integer_labels
from keras_robust.utils.data import iterate_batches
from keras_robust.utils.labels import random_wrong_labels
from keras_robust.utils.plotting import require_matplotlib

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _summary(values):
    summary = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    for q, value in zip(QUANTILES, np.quantile(values, QUANTILES)):
        summary[f"q{int(round(q * 100)):02d}"] = float(value)
    return summary


class EnergyReport:
    """Per-sample energies of natural and attacked inputs, with summaries.

    Attributes:
        energies: {"natural": {...}, attack name: {...}}, each with numpy
            arrays "marginal" (E(x)), "joint" (E(x, y), y the true label) and
            "correct" (whether the classifier is right on that input).
    """

    def __init__(self, energies):
        self.energies = energies

    def summary(self):
        """{name: {"marginal": stats, "joint": stats, "accuracy": float}}."""
        return {
            name: {
                "marginal": _summary(values["marginal"]),
                "joint": _summary(values["joint"]),
                "accuracy": float(np.mean(values["correct"])),
            }
            for name, values in self.energies.items()
        }

    def to_json(self, path=None):
        text = json.dumps(self.summary(), indent=2)
        if path is not None:
            with open(path, "w") as handle:
                handle.write(text)
        return text

    def __str__(self):
        lines = [
            f"{'inputs':<16}{'acc':>7}{'mean E(x)':>11}{'median':>9}"
            f"{'mean E(x,y)':>13}{'median':>9}"
        ]
        for name, stats in self.summary().items():
            lines.append(
                f"{name:<16}{stats['accuracy']:>7.3f}"
                f"{stats['marginal']['mean']:>11.3f}{stats['marginal']['q50']:>9.3f}"
                f"{stats['joint']['mean']:>13.3f}{stats['joint']['q50']:>9.3f}"
            )
        return "\n".join(lines)

    __repr__ = __str__


def _energies(classifier, x, labels):
    logits = classifier(x, training=False)
    return {
        "marginal": keras.ops.convert_to_numpy(marginal_energy(logits)),
        "joint": keras.ops.convert_to_numpy(joint_energy(logits, labels)),
        "correct": keras.ops.convert_to_numpy(logits).argmax(-1) == labels,
    }


def attack_energy_report(model, x, y=None, attacks=None, batch_size=256, seed=0):
    """Energies E(x) and E(x, y) on natural inputs and under each attack.

    Untargeted attacks get the true labels. Targeted attacks get, per sample,
    a target drawn uniformly among the wrong classes (numpy, `seed`); the
    joint energy is always taken at the true label.

    Args:
        model: a classifier returning logits, or a `kr.models.RobustModel`
            (its classifier is used, in inference mode).
        x: images, or a dataset of `(x, y)` batches (then `y=None`).
        y: integer or one-hot labels.
        attacks: {name: kr.attacks.Attack}.
        batch_size: batch size for arrays.
        seed: seed of the target draws of targeted attacks.

    Returns:
        An `EnergyReport`; `print(report)` shows a table.

    Example:
    >>> report = kr.energy.attack_energy_report(
    ...     model, x_test, y_test,
    ...     attacks={"PGD-20": kr.attacks.PGD(8/255, steps=20)})
    >>> print(report)
    """
    attacks = {} if attacks is None else attacks
    if not isinstance(attacks, dict):
        raise TypeError(
            "`attacks` must be a dict {name: kr.attacks.Attack}, got "
            f"{type(attacks).__name__}."
        )
    for name, attack in attacks.items():
        if not isinstance(attack, Attack):
            raise TypeError(
                f"`attacks[{name!r}]` must be a kr.attacks.Attack, got "
                f"{type(attack).__name__}."
            )
        if name == "natural":
            raise ValueError(
                "`attacks` cannot use the name 'natural': it is reserved for "
                "the clean inputs."
            )
    batch_size = validation.positive_integer(batch_size, "batch_size")
    validation.check_data(x, y)
    rng = np.random.default_rng(validation.non_negative_integer(seed, "seed"))
    classifier = classifier_of(model)
    collected = {name: [] for name in ["natural", *attacks]}
    for x_batch, y_batch in iterate_batches(x, y, batch_size):
        # Floating and finite; the attacks check their own clip range.
        validation.check_images(x_batch, -np.inf, np.inf)
        num_classes = validation.check_logits(classifier(x_batch, training=False))
        validation.check_labels(y_batch, num_classes, batch_size=len(x_batch))
        labels = integer_labels(y_batch)
        collected["natural"].append(_energies(classifier, x_batch, labels))
        for name, attack in attacks.items():
            attack_labels = labels
            if attack.targeted:
                num_classes = classifier(x_batch[:1], training=False).shape[-1]
                attack_labels = random_wrong_labels(labels, num_classes, rng)
            x_adv = attack(classifier, x_batch, attack_labels)
            collected[name].append(_energies(classifier, x_adv, labels))
    if not collected["natural"]:
        raise ValueError("attack_energy_report got no data.")
    energies = {
        name: {
            key: np.concatenate([part[key] for part in parts])
            for key in ("marginal", "joint", "correct")
        }
        for name, parts in collected.items()
    }
    return EnergyReport(energies)


def plot_energy_histograms(report, path=None, kind="marginal", bins=40):
    """Histograms of natural vs attacked energies, one panel per attack.

    Args:
        report: an `EnergyReport`.
        path: optional file to save the figure to.
        kind: "marginal" (E(x), the paper's figure) or "joint" (E(x, y)).
        bins: histogram bins.

    Returns:
        The matplotlib figure.
    """
    if kind not in ("marginal", "joint"):
        raise ValueError(f"`kind` must be 'marginal' or 'joint', got {kind!r}.")
    plt = require_matplotlib()
    names = [name for name in report.energies if name != "natural"]
    panels = max(1, len(names))
    figure, axes = plt.subplots(1, panels, figsize=(4 * panels, 3.2), squeeze=False)
    natural = report.energies["natural"][kind]
    label = "E(x)" if kind == "marginal" else "E(x, y)"
    for axis, name in zip(axes[0], names or [None]):
        values = [natural] + ([report.energies[name][kind]] if name else [])
        edges = np.histogram_bin_edges(np.concatenate(values), bins=bins)
        axis.hist(natural, bins=edges, alpha=0.55, density=True, label="natural")
        if name:
            axis.hist(
                report.energies[name][kind],
                bins=edges,
                alpha=0.55,
                density=True,
                label=name,
            )
        axis.set_xlabel(label)
        axis.set_title(name or "natural")
        axis.legend(fontsize=8)
    axes[0][0].set_ylabel("density")
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure
