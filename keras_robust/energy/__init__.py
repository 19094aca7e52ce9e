"""Energies of a classifier read as an energy-based model, and their analysis.

A classifier with logits f(x) defines the joint energy E(x, y) = -f(x)_y and
the marginal energy E(x) = -log sum_k exp f(x)_k. See `energies` for the
definitions and the TRADES decomposition (they live with the losses, in
`keras_robust.losses.energies`: WEAT's loss weighs samples by the marginal
energy, and the losses sit below the attacks that this package's reports
run), `report` for the energy analysis of attacks.
"""

from keras_robust.energy.compare import ModelComparison
from keras_robust.energy.compare import compare_models
from keras_robust.energy.compare import plot_model_comparison
from keras_robust.energy.report import EnergyReport
from keras_robust.energy.report import attack_energy_report
from keras_robust.energy.report import plot_energy_histograms
from keras_robust.losses.energies import joint_energy
from keras_robust.losses.energies import marginal_energy
from keras_robust.losses.energies import trades_decomposition

__all__ = [
    "EnergyReport",
    "ModelComparison",
    "attack_energy_report",
    "compare_models",
    "joint_energy",
    "marginal_energy",
    "plot_energy_histograms",
    "plot_model_comparison",
    "trades_decomposition",
]
