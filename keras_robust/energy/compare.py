"""Energies of several models side by side: natural, untargeted, targeted attacks."""

import json

import numpy as np

from keras_robust import attacks as attack_lib
from keras_robust.energy.report import attack_energy_report
from keras_robust.utils import validation
from keras_robust.utils.plotting import require_matplotlib

DEFAULT_STEPS = 10


class ModelComparison:
    """`EnergyReport`s of several models on the same inputs and attacks.

    Attributes:
        reports: {model name: `kr.energy.EnergyReport`}, each with the
            "natural" inputs and one entry per attack.
    """

    def __init__(self, reports):
        self.reports = reports

    @property
    def attack_names(self):
        first = next(iter(self.reports.values()))
        return [name for name in first.energies if name != "natural"]

    def summary(self, kind="marginal"):
        """{model: {inputs: {"accuracy", "mean", "median", "shift"}}}.

        `shift` is the mean of E(x*) - E(x) over the same samples (0 for
        the natural inputs): how far the attack moves the energy.
        """
        _check_kind(kind)
        table = {}
        for model_name, report in self.reports.items():
            natural = report.energies["natural"][kind]
            rows = {}
            for inputs, values in report.energies.items():
                energy = values[kind]
                rows[inputs] = {
                    "accuracy": float(np.mean(values["correct"])),
                    "mean": float(np.mean(energy)),
                    "median": float(np.median(energy)),
                    "shift": float(np.mean(energy - natural)),
                }
            table[model_name] = rows
        return table

    def to_json(self, path=None, kind="marginal"):
        text = json.dumps(self.summary(kind), indent=2)
        if path is not None:
            with open(path, "w") as handle:
                handle.write(text)
        return text

    def table(self, kind="marginal"):
        """The comparison as text: a row per model, columns per input kind."""
        summary = self.summary(kind)
        symbol = "E(x)" if kind == "marginal" else "E(x,y)"
        names = ["natural", *self.attack_names]
        header = f"{'model':<20}" + "".join(
            f"{name[:10] + ' acc':>16}{'mean ' + symbol:>14}"
            + ("" if name == "natural" else f"{'shift':>9}")
            for name in names
        )
        lines = [header]
        for model_name, rows in summary.items():
            line = f"{model_name[:19]:<20}"
            for name in names:
                row = rows[name]
                line += f"{row['accuracy']:>16.3f}{row['mean']:>14.3f}"
                if name != "natural":
                    line += f"{row['shift']:>9.3f}"
            lines.append(line)
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    __repr__ = __str__


def compare_models(
    models, x, y=None, attacks=None, epsilon=8 / 255, batch_size=256, seed=0
):
    """Natural, untargeted- and targeted-adversarial energies of several models.

    The analysis of Mirza et al.'s third claim: robust classifiers smooth
    the energy landscape, i.e. attacks move their marginal energy
    E(x) = -log sum_k exp f(x)_k much less than a standard model's
    (`shift` = mean of E(x*) - E(x)). Every model sees the same inputs; the
    targeted attack's targets are drawn with the same `seed` for each model.

    Args:
        models: {name: classifier returning logits (or a
            `kr.models.RobustModel`)}, or a list of models (named by
            `model.name`).
        x: images in the models' input range, or a dataset of (x, y).
        y: integer or one-hot labels.
        attacks: {name: kr.attacks.Attack}; None gives
            {"untargeted": PGD-10, "targeted": targeted PGD-10} at
            `epsilon` (L-inf, step epsilon / 4, random start).
        epsilon: L-inf radius of the default attacks.
        batch_size: batch size.
        seed: seed of the default attacks and of the targets.

    Returns:
        A `ModelComparison`; `print(comparison)` shows the table,
        `plot_model_comparison(comparison)` the histograms.

    Example:
    >>> comparison = kr.energy.compare_models(
    ...     {"standard": standard, "AT": at, "TRADES": trades}, x_test, y_test,
    ...     epsilon=0.2)
    >>> print(comparison)
    """
    if isinstance(models, dict):
        named = dict(models)
    elif isinstance(models, (list, tuple)):
        named = {}
        for model in models:
            name = getattr(model, "name", None)
            if name in named:
                raise ValueError(
                    f"Two models are named {name!r}: pass a dict {{name: model}}."
                )
            named[name] = model
    else:
        raise TypeError(
            "`models` must be a dict {name: model} or a list of models, got "
            f"{type(models).__name__}."
        )
    if not named:
        raise ValueError("`models` is empty.")
    if attacks is None:
        epsilon = validation.positive_number(epsilon, "epsilon")
        step = epsilon / 4
        attacks = {
            "untargeted": attack_lib.PGD(
                epsilon, step_size=step, steps=DEFAULT_STEPS, seed=seed
            ),
            "targeted": attack_lib.PGD(
                epsilon,
                step_size=step,
                steps=DEFAULT_STEPS,
                targeted=True,
                seed=seed,
            ),
        }
    reports = {
        name: attack_energy_report(
            model, x, y, attacks=attacks, batch_size=batch_size, seed=seed
        )
        for name, model in named.items()
    }
    return ModelComparison(reports)


def plot_model_comparison(comparison, path=None, kind="marginal", bins=40):
    """One panel per model: histograms of natural and attacked energies.

    Args:
        comparison: a `ModelComparison`.
        path: optional file to save the figure to.
        kind: "marginal" (E(x)) or "joint" (E(x, y), y the true label).
        bins: histogram bins (shared edges within a panel).

    Returns:
        The matplotlib figure.
    """
    _check_kind(kind)
    plt = require_matplotlib()
    names = list(comparison.reports)
    figure, axes = plt.subplots(
        1, len(names), figsize=(4 * len(names), 3.2), squeeze=False
    )
    label = "E(x)" if kind == "marginal" else "E(x, y)"
    for axis, model_name in zip(axes[0], names):
        energies = comparison.reports[model_name].energies
        values = {inputs: part[kind] for inputs, part in energies.items()}
        edges = np.histogram_bin_edges(np.concatenate(list(values.values())), bins)
        for inputs, energy in values.items():
            axis.hist(energy, bins=edges, alpha=0.5, density=True, label=inputs)
        axis.set_title(model_name)
        axis.set_xlabel(label)
        axis.legend(fontsize=8)
    axes[0][0].set_ylabel("density")
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure


def _check_kind(kind):
    if kind not in ("marginal", "joint"):
        raise ValueError(f"`kind` must be 'marginal' or 'joint', got {kind!r}.")
