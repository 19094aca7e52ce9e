"""Analysis tools of the seed papers: boundary dynamics, input gradients, energy paths.

- `margin_speeds`: each point's margin to the decision boundary and the
  speed at which a weight update moves it (DyART's boundary dynamics);
  `kr.callbacks.BoundaryDynamics` logs them during `fit`.
- `input_gradients` / `save_input_gradient_grid`: the loss's input
  gradients and a picture of them (robust models' look like digits).
- `energy_along` / `plot_energy_along`: marginal and joint energies along
  attack and random directions, with a roughness number per model.
"""

from keras_robust.analysis.energy_path import EnergyPath
from keras_robust.analysis.energy_path import energy_along
from keras_robust.analysis.energy_path import plot_energy_along
from keras_robust.analysis.gradients import gradient_images
from keras_robust.analysis.gradients import input_gradients
from keras_robust.analysis.gradients import save_input_gradient_grid
from keras_robust.analysis.margins import MarginSpeedFunction
from keras_robust.analysis.margins import MarginSpeeds
from keras_robust.analysis.margins import margin_speeds
from keras_robust.analysis.margins import training_direction

__all__ = [
    "EnergyPath",
    "MarginSpeedFunction",
    "MarginSpeeds",
    "energy_along",
    "gradient_images",
    "input_gradients",
    "margin_speeds",
    "plot_energy_along",
    "save_input_gradient_grid",
    "training_direction",
]
