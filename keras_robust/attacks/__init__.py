"""Adversarial attacks, each called as `attack(model, x, y)`."""

from keras_robust.attacks.apgd import APGD
from keras_robust.attacks.base import Attack
from keras_robust.attacks.pgd import FGSM
from keras_robust.attacks.pgd import PGD
from keras_robust.attacks.square import Square

__all__ = [
    "APGD",
    "Attack",
    "FGSM",
    "PGD",
    "Square",
]
