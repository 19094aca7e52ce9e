"""Callbacks for robust training: energy phases, robust validation, boundary
dynamics, resumption, weight EMA."""

from keras_robust.callbacks.backup_and_restore import BackupAndRestore
from keras_robust.callbacks.boundary_dynamics import BoundaryDynamics
from keras_robust.callbacks.energy_phase_logger import EnergyPhaseLogger
from keras_robust.callbacks.energy_phase_logger import plot_energy_phases
from keras_robust.callbacks.phases import PhaseRule
from keras_robust.callbacks.phases import detect_phases
from keras_robust.callbacks.robust_validation import RobustValidation
from keras_robust.callbacks.weight_ema import WeightEMA

__all__ = [
    "BackupAndRestore",
    "BoundaryDynamics",
    "EnergyPhaseLogger",
    "PhaseRule",
    "RobustValidation",
    "WeightEMA",
    "detect_phases",
    "plot_energy_phases",
]
