"""Callbacks for robust training: energy phases, robust validation, resumption."""

from keras_robust.callbacks.backup_and_restore import BackupAndRestore
from keras_robust.callbacks.energy_phase_logger import EnergyPhaseLogger
from keras_robust.callbacks.energy_phase_logger import plot_energy_phases
from keras_robust.callbacks.phases import PhaseRule
from keras_robust.callbacks.phases import detect_phases
from keras_robust.callbacks.robust_validation import RobustValidation

__all__ = [
    "BackupAndRestore",
    "EnergyPhaseLogger",
    "PhaseRule",
    "RobustValidation",
    "detect_phases",
    "plot_energy_phases",
]
