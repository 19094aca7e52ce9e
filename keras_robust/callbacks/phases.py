"""The three phases of adversarial training, read off the energy gap.

The seed paper tracks dE_t = mean E(x) - mean E(x*) over the training samples
of epoch t and draws, by eye, three phases: (1) dE moves away from 0,
(2) it plateaus, (3) it departs from the plateau again (for PGD-AT it
collapses), which coincides with robust overfitting. There is no published
detection rule; this module defines one, with every threshold exposed:

- Phase 1 -> 2 when, over the last `window` epochs, the least-squares slope
  of dE has magnitude <= `plateau_slope` per epoch (the gap stopped moving).
  The plateau level is then the running mean of dE over the plateau epochs.
- Phase 2 -> 3 when dE differs from the plateau level by more than
  `divergence` for `patience` consecutive epochs. Phase 3 is final.

Epochs before the first full window are phase 1.
"""

import numpy as np

from keras_robust.utils import validation


class PhaseRule:
    """Streaming phase detector; feed it one energy gap per epoch.

    Args:
        window: epochs in the slope fit that detects the plateau (>= 2).
        plateau_slope: max |slope| of the gap per epoch on a plateau.
        divergence: |gap - plateau level| that counts as leaving it.
        patience: consecutive diverging epochs before phase 3 starts.

    Example:
    >>> rule = PhaseRule()
    >>> phases = [rule.update(gap) for gap in gaps]
    """

    def __init__(self, window=5, plateau_slope=0.01, divergence=0.15, patience=2):
        self.window = validation.positive_integer(window, "window")
        if self.window < 2:
            raise ValueError(f"`window` must be an integer >= 2, got {window!r}.")
        self.plateau_slope = validation.positive_number(plateau_slope, "plateau_slope")
        self.divergence = validation.positive_number(divergence, "divergence")
        self.patience = validation.positive_integer(patience, "patience")
        self.reset()

    def reset(self):
        self.gaps = []
        self.phase = 1
        self.plateau_values = []
        self.diverging_epochs = 0
        self.phase_starts = {1: 0}

    @property
    def plateau_level(self):
        return float(np.mean(self.plateau_values)) if self.plateau_values else None

    def update(self, gap):
        """Adds one epoch's gap; returns the phase (1, 2 or 3) of that epoch."""
        gap = _as_float(gap, "gap")
        self.gaps.append(gap)
        epoch = len(self.gaps) - 1
        if self.phase == 1 and len(self.gaps) >= self.window:
            recent = np.asarray(self.gaps[-self.window :])
            slope = np.polyfit(np.arange(self.window), recent, 1)[0]
            if abs(slope) <= self.plateau_slope:
                self.phase = 2
                self.phase_starts[2] = epoch - self.window + 1
                self.plateau_values = list(recent)
                return self.phase
        elif self.phase == 2:
            if abs(gap - self.plateau_level) > self.divergence:
                self.diverging_epochs += 1
                if self.diverging_epochs >= self.patience:
                    self.phase = 3
                    self.phase_starts[3] = epoch - self.patience + 1
            else:
                self.diverging_epochs = 0
                self.plateau_values.append(gap)
        return self.phase

    def get_config(self):
        return {
            "window": self.window,
            "plateau_slope": self.plateau_slope,
            "divergence": self.divergence,
            "patience": self.patience,
        }


def detect_phases(gaps, **rule_kwargs):
    """Phase (1, 2, 3) of every epoch of a whole gap curve; see `PhaseRule`.

    Phases are reported as the streaming rule saw them epoch by epoch, so an
    epoch inside the window that first revealed the plateau stays phase 1.
    """
    rule = PhaseRule(**rule_kwargs)
    if isinstance(gaps, (str, bytes)) or not hasattr(gaps, "__iter__"):
        raise TypeError(f"`gaps` must be a sequence of numbers, got {gaps!r}.")
    return [rule.update(_as_float(gap, "gaps")) for gap in gaps]


def _as_float(value, name):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must hold numbers, got {value!r}.") from None
