"""The one place in keras_robust that knows which Keras backend runs.

Everything outside this package is written in `keras.ops`, `keras.random` and
Keras layers. This package supplies, per backend:

- `RobustTrainer`: a `keras.Model` base class whose `train_step`/`test_step`
  run the backend-independent hooks of `kr.models.RobustModel` (craft x*,
  compute the objective, update metrics) with the backend's own gradient
  machinery (TensorFlow `GradientTape`, JAX stateless `jax.grad`, PyTorch
  `backward()` after an attack using `torch.autograd.grad`). They
  also run data-parallel: under `keras.distribution.DataParallel` on JAX
  (one program over the global batch, nothing to add) and under
  `tf.distribute` strategies on TensorFlow (per-replica loss scaling, one
  NaN/Inf skip decision for all replicas); see docs/scaling_out.md.
- `input_gradient(fn, x)`: the gradient of a scalar function with respect to
  an input tensor (Keras 3 has no backend-agnostic reverse-mode `grad`).
- `input_gradient_with_aux(fn, x)`: the same for `fn(x) -> (value, aux)`,
  returning `(gradient, aux)` from one forward pass (attacks that also need
  the logits at the point they differentiate, such as APGD).
- `weight_gradient(fn, values)`: the gradients of a scalar function with
  respect to a list of weight values (AWP's ascent step, run on values
  mapped into a `StatelessScope`, so no variable's state changes).
- `replica_mean(values)`: the mean of a list of tensors over the replicas
  of a `tf.distribute` strategy, from inside its replica context (AWP's
  ascent gradient, which must be the global batch's on every replica); the
  values themselves elsewhere (one device, or JAX's `DataParallel`, whose
  program already runs on the global batch).
- `weight_jvp(fn, values, tangents)`: `(fn(values), J tangents)`, the
  forward-mode derivative of `fn` along a direction in weight space (one
  pass for a whole batch of per-sample outputs: `kr.analysis.margin_speeds`).
- `is_tracing(x)`: whether `x` is symbolic (inside a compiled function), so
  that value checks only run where data is concrete. On PyTorch also inside
  an eager robust step (its batch was checked before the run, as compiled
  steps are) and under `torch.compile`.
- `compile_attack(perturb, forward, variables, seed, draw_seed,
  jit_compile=False)`: an eager attack call (or Langevin chain) compiled once
  and reused (weights passed as arguments on JAX), so attacking batch after
  batch does not re-trace the loop; TensorFlow uses XLA when `jit_compile`.
- `compiles_first_attack_call(iterations)`: whether an attack's first call
  on a model, of `iterations` loop iterations (`Attack.iterations`), is
  compiled at once (always on JAX, where running it eagerly compiles its
  loops anyway; from 100 iterations on TensorFlow, where a long call op by
  op is dominated by dispatch) or runs eagerly, compiled from the second
  call on.
- `fori_loop(lower, upper, body, init)` / `while_loop(cond, body,
  loop_vars, maximum_iterations=None)`: `keras.ops`' loops, which on JAX
  also carry the seed-generator states of the stateless scope they run in,
  so that a randomized model (noise at inference) can be called in a loop
  body; attacks and samplers loop with these.
- `resolve_jit_compile(jit_compile)`: what `jit_compile="auto"` means here
  (Keras' rule: JAX always XLA; TensorFlow XLA only with a GPU).
- `global_rng_state()` / `set_global_rng_state(state)`: the state (JSON
  data) of a backend's global random generator that Keras itself draws
  from, for exact resumption: PyTorch's (shuffling, unseeded `Dropout`);
  None / nothing elsewhere, where Keras draws from `SeedGenerator`s and
  NumPy.
- `steps_per_execution(steps)`: the `steps_per_execution` to pass to
  `compile` for `steps` fused steps: `steps` itself, except on PyTorch,
  whose Keras trainer runs one step per call (and rejects more).
- `compile_function(fn, jit_compile=True)`: compile a function such as an
  attack call (`tf.function` / `jax.jit`), for tests and one-off use. Under
  `jax.jit` the weights `fn` reads are frozen into the compiled function:
  after the model changes, compile again (attack calls themselves already
  reuse a compiled function that takes the weights as arguments).
  Random draws are identical eagerly and compiled, except under TensorFlow's
  XLA, whose random kernels produce other numbers than its eager/graph ones
  for the same seed (deterministic attacks still agree).
"""

import keras

BACKEND = keras.backend.backend()
SUPPORTED_BACKENDS = ("tensorflow", "jax", "torch")

# The names every backend module defines (tests/backend/test_interface.py
# checks that each module has exactly these, as Keras' own backend modules
# share one set of names).
INTERFACE = (
    "RobustTrainer",
    "compile_attack",
    "compile_function",
    "compiles_first_attack_call",
    "fori_loop",
    "global_rng_state",
    "input_gradient",
    "input_gradient_with_aux",
    "is_tracing",
    "replica_mean",
    "resolve_jit_compile",
    "set_global_rng_state",
    "use_fast_compiling_random",
    "while_loop",
    "weight_gradient",
    "weight_jvp",
)

if BACKEND == "tensorflow":
    from keras_robust.backend.tensorflow import *  # noqa: F403
elif BACKEND == "jax":
    from keras_robust.backend.jax import *  # noqa: F403
elif BACKEND == "torch":
    from keras_robust.backend.torch import *  # noqa: F403
else:
    from keras_robust.backend.unsupported import *  # noqa: F403


def steps_per_execution(steps):
    """`steps` for `model.compile(steps_per_execution=...)`; 1 on PyTorch.

    Fusing several training steps in one compiled call saves the per-call
    overhead of TensorFlow and JAX; Keras' PyTorch trainer runs eagerly and
    accepts only 1.

    Example:

    ```python
    model.compile(optimizer="adam", steps_per_execution=kr.backend.steps_per_execution(11))
    ```
    """
    return 1 if BACKEND == "torch" else steps


__all__ = ["BACKEND", "SUPPORTED_BACKENDS", *INTERFACE, "steps_per_execution"]
