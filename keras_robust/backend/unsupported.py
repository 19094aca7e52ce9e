"""Placeholders for the Keras backends keras_robust does not run on (NumPy, OpenVINO).

Pure functions (`kr.losses`, `kr.energy`) work on every backend; anything that
needs an input gradient or a custom training step raises a clear error here.
"""

import keras


def _unsupported(what):
    return NotImplementedError(
        f"{what} is not available on the Keras backend "
        f"'{keras.backend.backend()}' yet. keras_robust runs on "
        "KERAS_BACKEND=tensorflow, jax and torch; set one of them "
        "before importing keras (e.g. `export KERAS_BACKEND=jax`)."
    )


def input_gradient(fn, x):
    raise _unsupported("The input gradient needed by attacks")


def input_gradient_with_aux(fn, x):
    raise _unsupported("The input gradient needed by attacks")


def weight_gradient(fn, values):
    raise _unsupported("The weight gradient needed by AWP")


def weight_jvp(fn, values, tangents):
    raise _unsupported("The weight-space derivative needed by kr.analysis")


def is_tracing(x):
    return False


def resolve_jit_compile(jit_compile):
    return False


def compile_attack(perturb, forward, variables, seed, draw_seed, jit_compile=False):
    return None


def use_fast_compiling_random():
    return False


def fori_loop(lower, upper, body, init):
    """`keras.ops.fori_loop`: variables a body advances are assigned in place."""
    return keras.ops.fori_loop(lower, upper, body, init)


def while_loop(cond, body, loop_vars, maximum_iterations=None):
    """`keras.ops.while_loop` (see `fori_loop`)."""
    return keras.ops.while_loop(cond, body, loop_vars, maximum_iterations)


def compiles_first_attack_call(iterations):
    """False: nothing is compiled."""
    del iterations
    return False


def compile_function(fn, jit_compile=True):
    raise _unsupported("Compiling attacks")


class RobustTrainer(keras.Model):
    def __init__(self, *args, **kwargs):
        raise _unsupported("Adversarial training (kr.models)")


def replica_mean(values):
    """`values` as they are: no replicas."""
    return list(values)


def global_rng_state():
    """None: Keras draws from `SeedGenerator`s and NumPy here, not from a
    global generator of the backend."""
    return None


def set_global_rng_state(state):
    """Nothing to restore (see `global_rng_state`)."""
    del state


__all__ = [
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
]
