"""Robustness evaluation: the AutoAttack protocol and a report with sanity flags."""

from keras_robust.evaluation.autoattack import AutoAttack
from keras_robust.evaluation.autoattack import run_cascade
from keras_robust.evaluation.evaluate import evaluate_robustness
from keras_robust.evaluation.report import Flag
from keras_robust.evaluation.report import RobustnessReport

__all__ = [
    "AutoAttack",
    "Flag",
    "RobustnessReport",
    "evaluate_robustness",
    "run_cascade",
]
