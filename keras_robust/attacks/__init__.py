"""Adversarial attacks, each called as `attack(model, x, y)`."""

from keras_robust.attacks.apgd import APGD
from keras_robust.attacks.base import Attack
from keras_robust.attacks.boundary import BoundarySearch
from keras_robust.attacks.boundary import boundary_search
from keras_robust.attacks.fab import FAB
from keras_robust.attacks.pgd import FGSM
from keras_robust.attacks.pgd import PGD
from keras_robust.attacks.square import Square

__all__ = [
    "APGD",
    "Attack",
    "BoundarySearch",
    "FAB",
    "FGSM",
    "PGD",
    "Square",
    "boundary_search",
]
