"""Analysis tools of the seed papers: boundary dynamics, input gradients, energy paths.

- `margin_speeds`: each point's margin to the decision boundary and the
  speed at which a weight update moves it (DyART's boundary dynamics).
"""

from keras_robust.analysis.margins import MarginSpeedFunction
from keras_robust.analysis.margins import MarginSpeeds
from keras_robust.analysis.margins import margin_speeds
from keras_robust.analysis.margins import training_direction

__all__ = [
    "MarginSpeedFunction",
    "MarginSpeeds",
    "margin_speeds",
    "training_direction",
]
