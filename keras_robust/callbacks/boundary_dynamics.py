"""`BoundaryDynamics`: margins and margin speeds of a probe set, epoch by epoch."""

import csv
import os

import keras
import numpy as np

from keras_robust.analysis import margins as margins_lib
from keras_robust.utils import data as data_lib
from keras_robust.utils import validation
from keras_robust.utils.plotting import require_matplotlib


class BoundaryDynamics(keras.callbacks.Callback):
    """Logs DyART's decision-boundary dynamics of a fixed probe set during `fit`.

    Every `every` epochs, at the epoch's end, it computes for each probe
    point its margin R (distance to the closest boundary point) and speed
    dR/dt under the gradient-descent direction of the model's own training
    objective (on the first `direction_batch_size` probe points; see
    `kr.analysis.margin_speeds`), and adds to the logs (so History,
    CSVLogger and TensorBoard record them):

    - `boundary_mean_margin`: mean R over the correct points;
    - `boundary_vulnerable_fraction`: share of the probe points with a
      boundary closer than `threshold`;
    - `boundary_conflicting_fraction`: share of those vulnerable points
      whose margin shrinks (dR/dt < 0), DyART's "conflicting dynamics".

    `results` keeps each measured epoch's `kr.analysis.MarginSpeeds`. With
    `log_dir` it writes `boundary_dynamics.csv` (one row per point and
    epoch) and, at the end of training, `boundary_dynamics.png`: speed
    against margin at the last measured epoch and the conflicting fraction
    per epoch.

    Args:
        x_probe: probe inputs in [0, 1], (n, ...).
        y_probe: their integer or one-hot labels.
        every: measure every `every` epochs (>= 1).
        threshold: margin below which a point is vulnerable (default: the
            model's `epsilon`, else 0.1).
        norm: "linf" or "l2" (default: the model's `norm`, else "linf").
        temperature: None (hard logit margin) or the soft margin's t.
        search_steps: boundary-search iterations.
        direction_batch_size: probe points of the update direction's batch.
        log_dir: optional directory for the CSV and the plot.

    Example:
    >>> dynamics = kr.callbacks.BoundaryDynamics(x_test[:500], y_test[:500], log_dir="runs/at")
    >>> model.fit(x, y, epochs=30, callbacks=[dynamics])
    >>> dynamics.history["boundary_conflicting_fraction"]
    """

    def __init__(
        self,
        x_probe,
        y_probe,
        every=1,
        threshold=None,
        norm=None,
        temperature=None,
        search_steps=20,
        direction_batch_size=128,
        log_dir=None,
    ):
        super().__init__()
        self.every = validation.positive_integer(every, "every")
        self.threshold = (
            None
            if threshold is None
            else validation.positive_number(threshold, "threshold")
        )
        self.norm = None if norm is None else validation.norm_name(norm)
        self.temperature = temperature
        self.search_steps = validation.positive_integer(search_steps, "search_steps")
        self.direction_batch_size = validation.positive_integer(
            direction_batch_size, "direction_batch_size"
        )
        if log_dir is not None and not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"`log_dir` must be a path or None, got {log_dir!r}.")
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        validation.check_data(x_probe, y_probe)
        self.x_probe = np.asarray(x_probe, dtype="float32")
        self.y_probe = np.asarray(y_probe)
        if len(self.x_probe) == 0:
            raise ValueError("`x_probe` is empty: pass at least one probe point.")
        self.results = {}
        self.history = {}
        self._function = None

    def set_model(self, model):
        super().set_model(model)
        classifier = data_lib.classifier_of(model)
        # Checked here, when `fit` starts, before any epoch runs.
        self.x_probe, self.y_probe = margins_lib.check_probe(
            self.x_probe, self.y_probe, classifier, name="x_probe"
        )
        if self.threshold is None:
            self.threshold = float(getattr(model, "epsilon", None) or 0.1)
        if self.norm is None:
            self.norm = getattr(model, "norm", "linf")
        self._function = margins_lib.MarginSpeedFunction(
            classifier,
            norm=self.norm,
            temperature=self.temperature,
            search_steps=self.search_steps,
            batch_size=min(256, len(self.x_probe)),
        )

    def on_train_begin(self, logs=None):
        self.results, self.history = {}, {}
        if self.log_dir is not None:
            os.makedirs(self.log_dir, exist_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        count = self.direction_batch_size
        direction = margins_lib.training_direction(
            self.model, self.x_probe[:count], self.y_probe[:count]
        )
        result = self._function(self.x_probe, self.y_probe, direction)
        self.results[epoch] = result
        summary = result.summary(self.threshold)
        row = {
            "boundary_mean_margin": summary["mean_margin"],
            "boundary_vulnerable_fraction": summary["vulnerable"] / len(result),
            "boundary_conflicting_fraction": summary["conflicting_fraction"],
        }
        row = {k: float("nan") if v is None else float(v) for k, v in row.items()}
        self.history.setdefault("epoch", []).append(epoch)
        for key, value in row.items():
            self.history.setdefault(key, []).append(value)
        if logs is not None:
            logs.update(row)
        if self.log_dir is not None:
            self._append_csv(epoch, result)

    def _append_csv(self, epoch, result):
        path = os.path.join(self.log_dir, "boundary_dynamics.csv")
        new = len(self.results) == 1  # the first measured epoch of this fit
        with open(path, "w" if new else "a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["epoch", "point", "correct", "margin", "speed"])
            for index in range(len(result)):
                writer.writerow(
                    [
                        epoch,
                        index,
                        int(result.correct[index]),
                        "" if np.isnan(result.margin[index]) else result.margin[index],
                        "" if np.isnan(result.speed[index]) else result.speed[index],
                    ]
                )

    def on_train_end(self, logs=None):
        if self.log_dir is not None and self.results:
            self.plot(os.path.join(self.log_dir, "boundary_dynamics.png"))

    def plot(self, path=None):
        """Speed against margin (last measured epoch) and the conflicting fraction."""
        if not self.results:
            raise ValueError("BoundaryDynamics has measured no epoch yet.")
        plt = require_matplotlib()
        figure, (scatter, line) = plt.subplots(1, 2, figsize=(9, 3.4))
        last = max(self.results)
        result = self.results[last]
        vulnerable = result.vulnerable(self.threshold)
        safe = result.found & ~vulnerable
        scatter.scatter(
            result.margin[safe],
            result.speed[safe],
            s=6,
            c="#9ecae1",
            label="margin >= threshold",
        )
        scatter.scatter(
            result.margin[vulnerable],
            result.speed[vulnerable],
            s=8,
            c="#e6550d",
            label="vulnerable",
        )
        scatter.axhline(0.0, color="black", linewidth=0.6)
        scatter.axvline(self.threshold, color="grey", linewidth=0.6, linestyle="--")
        scatter.set_xlabel(f"margin R ({result.norm})")
        scatter.set_ylabel("speed dR/dt")
        scatter.set_title(f"epoch {last + 1}")
        scatter.legend(fontsize=7)
        epochs = np.asarray(self.history["epoch"]) + 1
        line.plot(epochs, self.history["boundary_conflicting_fraction"], marker="o")
        line.set_ylim(0.0, 1.0)
        line.set_xlabel("epoch")
        line.set_ylabel("vulnerable points with dR/dt < 0")
        line.set_title("conflicting dynamics")
        figure.tight_layout()
        if path is None:
            return figure
        figure.savefig(path, dpi=120)
        plt.close(figure)
        return path
