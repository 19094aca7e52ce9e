"""The one place in keras_robust that knows which Keras backend runs.

Everything outside this package is written in `keras.ops`, `keras.random` and
Keras layers. This package supplies, per backend:

- `RobustTrainer`: a `keras.Model` base class whose `train_step`/`test_step`
  run the backend-independent hooks of `kr.models.RobustModel` (craft x*,
  compute the objective, update metrics) with the backend's own gradient
  machinery (TensorFlow `GradientTape`, JAX stateless `jax.grad`).
- `input_gradient(fn, x)`: the gradient of a scalar function with respect to
  an input tensor (Keras 3 has no backend-agnostic reverse-mode `grad`).
- `is_tracing(x)`: whether `x` is symbolic (inside a compiled function), so
  that value checks only run where data is concrete.
- `compile_function(fn, jit_compile=True)`: compile a function such as an
  attack call (`tf.function` / `jax.jit`), for evaluation loops and tests.
  Random draws are identical eagerly and compiled, except under TensorFlow's
  XLA, whose random kernels produce other numbers than its eager/graph ones
  for the same seed (deterministic attacks still agree).
"""

import keras

BACKEND = keras.backend.backend()
SUPPORTED_BACKENDS = ("tensorflow", "jax")

if BACKEND == "tensorflow":
    from keras_robust.backend.tensorflow import (
        RobustTrainer,
        compile_function,
        input_gradient,
        is_tracing,
    )
elif BACKEND == "jax":
    from keras_robust.backend.jax import (
        RobustTrainer,
        compile_function,
        input_gradient,
        is_tracing,
    )
else:
    from keras_robust.backend.unsupported import (
        RobustTrainer,
        compile_function,
        input_gradient,
        is_tracing,
    )

__all__ = [
    "BACKEND",
    "SUPPORTED_BACKENDS",
    "RobustTrainer",
    "compile_function",
    "input_gradient",
    "is_tracing",
]
