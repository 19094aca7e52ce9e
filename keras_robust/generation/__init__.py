"""Generation from robust classifiers read as energy-based models.

`LangevinSampler` runs compiled SGLD (with momentum) on a classifier's joint
or marginal energy from a class-wise start (`PCAInitializer`,
`GaussianInitializer`, `UniformInitializer`); `save_image_grid` writes a
sample sheet.
"""

from keras_robust.generation.image_grid import image_grid
from keras_robust.generation.image_grid import save_image_grid
from keras_robust.generation.initializers import GaussianInitializer
from keras_robust.generation.initializers import Initializer
from keras_robust.generation.initializers import PCAInitializer
from keras_robust.generation.initializers import UniformInitializer
from keras_robust.generation.initializers import load_initializer
from keras_robust.generation.langevin import LangevinSampler

__all__ = [
    "GaussianInitializer",
    "Initializer",
    "LangevinSampler",
    "PCAInitializer",
    "UniformInitializer",
    "image_grid",
    "load_initializer",
    "save_image_grid",
]
