"""`EnergyPhaseLogger`: the energy gap per epoch and the phases it reveals."""

import csv
import os
import warnings

import keras
import numpy as np

from keras_robust.attacks.base import Attack
from keras_robust.callbacks import common
from keras_robust.callbacks import weight_ema
from keras_robust.callbacks.phases import PhaseRule
from keras_robust.utils import validation
from keras_robust.utils.plotting import require_matplotlib

REQUIRED_KEYS = ("energy_natural", "energy_adversarial")
ON_PHASE3 = ("warn", "stop", "restore_best")
PHASE_COLORS = {1: "#c6dbef", 2: "#c7e9c0", 3: "#fdd0a2"}


class EnergyPhaseLogger(keras.callbacks.Callback):
    """Tracks the energy gap dE = E(x) - E(x*) per epoch and its phases.

    Reads `energy_natural` and `energy_adversarial` (the epoch means of the
    marginal energy E(x) = -logsumexp f(x) over the training samples and their
    adversarial examples), which every `kr.models.RobustModel` logs, and adds
    to the logs, so CSVLogger, TensorBoard and History record them:

    - `energy_gap`: dE of the epoch (the seed paper's quantity);
    - `energy_phase`: 1 (gap moving away from 0), 2 (plateau) or 3
      (divergence from the plateau: robust overfitting), by `PhaseRule`;
    - `val_energy_gap`, when `validation_data` is given: the same gap on
      held-out data under `attack` (default PGD-20 at the model's epsilon).

    When phase 3 starts it warns once and, with `on_phase3="stop"`, stops
    training; with `"restore_best"` it also restores the weights of the epoch
    with the best `monitor` value (like `keras.callbacks.EarlyStopping`).
    With `log_dir`, it writes `energy_phases.csv` every epoch and
    `energy_phases.png` (both energies, the gap, the phase bands) at the end.

    Args:
        log_dir: optional directory for the CSV and the plot.
        rule: a `PhaseRule`, or a dict of its arguments.
        validation_data: optional `(x, y)` or dataset for `val_energy_gap`.
        attack: attack for the held-out gap; default PGD-20.
        on_phase3: "warn", "stop" or "restore_best".
        monitor: log key maximised to pick the best weights.
        verbose: 1 prints a line when the phase changes.

    Example:
    >>> logger = kr.callbacks.EnergyPhaseLogger(log_dir="runs/weat")
    >>> model.fit(x, y, epochs=100, callbacks=[logger])
    >>> logger.plot("gap.png")
    """

    def __init__(
        self,
        log_dir=None,
        rule=None,
        validation_data=None,
        attack=None,
        on_phase3="warn",
        monitor="val_adv_accuracy",
        verbose=1,
    ):
        super().__init__()
        if rule is None:
            rule = PhaseRule()
        elif isinstance(rule, dict):
            rule = PhaseRule(**rule)
        elif not isinstance(rule, PhaseRule):
            raise TypeError(f"`rule` must be a PhaseRule or a dict, got {rule!r}.")
        if attack is not None and not isinstance(attack, Attack):
            raise TypeError(
                f"`attack` must be a kr.attacks.Attack, got {type(attack).__name__}."
            )
        if log_dir is not None and not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"`log_dir` must be a path or None, got {log_dir!r}.")
        self.rule = rule
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.validation_data = validation_data
        self.attack = attack
        self.on_phase3 = validation.one_of(on_phase3, "on_phase3", ON_PHASE3)
        self.monitor = monitor
        self.verbose = verbose
        self.rows = []
        self.phase3_epoch = None
        self._best = (-np.inf, None)

    def on_train_begin(self, logs=None):
        self.rule.reset()
        self.rows = []
        self.phase3_epoch = None
        self._best = (-np.inf, None)

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        missing = [key for key in REQUIRED_KEYS if key not in logs]
        if missing:
            raise ValueError(
                "EnergyPhaseLogger reads `energy_natural` and `energy_adversarial` "
                "from the training logs, which every kr.models.RobustModel (AT, "
                "TRADES, MART, ...) writes; this model logged only "
                f"{sorted(logs)}. Wrap the classifier in a kr.models method."
            )
        row = {
            "epoch": epoch,
            "energy_natural": float(logs["energy_natural"]),
            "energy_adversarial": float(logs["energy_adversarial"]),
        }
        row["energy_gap"] = row["energy_natural"] - row["energy_adversarial"]
        previous_phase = self.rule.phase
        row["energy_phase"] = self.rule.update(row["energy_gap"])
        if self.validation_data is not None:
            row.update(self._held_out_row())
        logs["energy_gap"] = row["energy_gap"]
        logs["energy_phase"] = row["energy_phase"]
        if "val_energy_gap" in row:
            logs["val_energy_gap"] = row["val_energy_gap"]
        self.rows.append(row)
        self._remember_best(logs)
        if self.verbose and row["energy_phase"] != previous_phase:
            print(
                f"\nEpoch {epoch + 1}: energy phase {previous_phase} -> "
                f"{row['energy_phase']} (gap {row['energy_gap']:+.4f})"
            )
        if row["energy_phase"] == 3 and self.phase3_epoch is None:
            self._enter_phase3(epoch)
        if self.log_dir is not None:
            self.write_csv(os.path.join(self.log_dir, "energy_phases.csv"))

    def _held_out_row(self):
        x, y = (
            self.validation_data
            if isinstance(self.validation_data, (tuple, list))
            else (self.validation_data, None)
        )[:2]
        if self.attack is None:
            self.attack = common.default_attack(self.model, None, "EnergyPhaseLogger")
        with weight_ema.ema_weights(self.model):  # the EMA model, if any
            natural, adversarial = common.held_out_energies(
                common.classifier_of(self.model), self.attack, x, y
            )
        return {
            "val_energy_natural": natural,
            "val_energy_adversarial": adversarial,
            "val_energy_gap": natural - adversarial,
        }

    def _remember_best(self, logs):
        if self.on_phase3 != "restore_best" or self.monitor not in logs:
            return
        value = float(logs[self.monitor])
        if value > self._best[0]:
            with weight_ema.ema_weights(self.model):
                self._best = (value, self.model.get_weights())

    def _enter_phase3(self, epoch):
        self.phase3_epoch = self.rule.phase_starts[3]
        warnings.warn(
            f"Energy phase 3 from epoch {self.phase3_epoch + 1} (detected at epoch "
            f"{epoch + 1}): the energy gap left its plateau "
            f"({self.rule.plateau_level:+.4f}), the sign of robust overfitting. "
            "Robust accuracy on held-out data (kr.callbacks.RobustValidation) "
            "tells whether to stop.",
            stacklevel=2,
        )
        if self.on_phase3 in ("stop", "restore_best"):
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.on_phase3 == "restore_best" and self.phase3_epoch is not None:
            if self._best[1] is not None:
                self.model.set_weights(self._best[1])
            else:
                warnings.warn(
                    f"EnergyPhaseLogger could not restore weights: `{self.monitor}` "
                    "was never logged (pass validation_data to fit, or set "
                    "`monitor`).",
                    stacklevel=2,
                )
        if self.log_dir is not None and self.rows:
            try:
                self.plot(os.path.join(self.log_dir, "energy_phases.png"))
            except ImportError as error:
                # The trained model and the CSV matter more than the figure.
                warnings.warn(f"No energy plot written: {error}", stacklevel=2)

    def write_csv(self, path):
        """Writes one row per epoch: energies, gap, phase (and held-out gap)."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fields = list(self.rows[0]) if self.rows else ["epoch"]
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self.rows)

    def plot(self, path=None):
        """Plots both energies, the gap and the phase bands; returns the figure."""
        return plot_energy_phases(self.rows, self.rule.plateau_level, path)


def plot_energy_phases(rows, plateau_level=None, path=None):
    """The figure of `EnergyPhaseLogger`: energies (top), gap and phases (bottom).

    Args:
        rows: per-epoch dicts with `epoch`, `energy_natural`,
            `energy_adversarial`, `energy_gap`, `energy_phase` (and optionally
            the `val_` versions).
        plateau_level: optional horizontal line on the gap panel.
        path: optional file to save the figure to (PNG, PDF, ...).

    Returns:
        The matplotlib figure.
    """
    plt = require_matplotlib()
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    if not rows:
        top.set_title("no epochs recorded yet")
    epochs = np.array([row["epoch"] + 1 for row in rows])
    for key, label, style in (
        ("energy_natural", "E(x) train", "-"),
        ("energy_adversarial", "E(x*) train", "-"),
        ("val_energy_natural", "E(x) held-out", "--"),
        ("val_energy_adversarial", "E(x*) held-out", "--"),
    ):
        if rows and key in rows[0]:
            top.plot(epochs, [row[key] for row in rows], style, label=label)
    top.set_ylabel("mean marginal energy")
    for key, label, style in (
        ("energy_gap", "dE = E(x) - E(x*) train", "k-"),
        ("val_energy_gap", "dE held-out", "k--"),
    ):
        if rows and key in rows[0]:
            bottom.plot(epochs, [row[key] for row in rows], style, label=label)
    if plateau_level is not None:
        bottom.axhline(plateau_level, color="grey", lw=0.8, ls=":", label="plateau")
    bottom.axhline(0.0, color="grey", lw=0.5)
    for phase in (1, 2, 3):
        members = [row["epoch"] + 1 for row in rows if row["energy_phase"] == phase]
        if members:
            for axis in (top, bottom):
                axis.axvspan(
                    min(members) - 0.5,
                    max(members) + 0.5,
                    color=PHASE_COLORS[phase],
                    alpha=0.6,
                    lw=0,
                    label=f"phase {phase}" if axis is bottom else None,
                )
    bottom.set_xlabel("epoch")
    bottom.set_ylabel("energy gap")
    for axis in (top, bottom):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8, loc="best")
    figure.tight_layout()
    if path is not None:
        directory = os.path.dirname(os.path.abspath(os.fspath(path)))
        os.makedirs(directory, exist_ok=True)
        figure.savefig(path, dpi=120)
    return figure
