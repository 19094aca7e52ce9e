"""JAX plumbing: a stateless training step around backend-free method code.

During `fit`, Keras keeps the model state outside the variables (they are
purged) and hands it to the step. We run the method's ordinary Keras code
(`self.classifier(x, training=True)`, seed generators, metrics) inside a
`keras.StatelessScope` that maps every variable to its value in that state,
and read the updated values back from the scope.
"""

import os

import jax
import jax.numpy as jnp
import keras

from keras_robust.utils import random_state


def input_gradient(fn, x):
    """Gradient of the scalar `fn(x)` with respect to the array `x`."""
    return jax.grad(fn)(x)


def input_gradient_with_aux(fn, x):
    """(d value / dx, aux) for `fn(x) -> (scalar value, aux)`, in one pass."""
    return jax.grad(fn, has_aux=True)(x)


def weight_gradient(fn, values):
    """Gradients of the scalar `fn(values)` with respect to a list of arrays."""
    return list(jax.grad(fn)(list(values)))


def weight_jvp(fn, values, tangents):
    """(fn(values), d fn(values + t tangents) / dt at t = 0): forward mode."""
    return jax.jvp(lambda v: fn(list(v)), (list(values),), (list(tangents),))


def is_tracing(x):
    return isinstance(x, jax.core.Tracer)


def resolve_jit_compile(jit_compile):
    del jit_compile  # JAX always compiles with XLA.
    return True


def use_fast_compiling_random():
    """Switches JAX to its classic threefry random bits, process-wide.

    JAX's default since 0.5, `jax_threefry_partitionable=True`, lowers every
    random draw to a larger program. On a 2-core AMD EPYC, 2026-12-02, XLA:CPU
    compiled a `jax.random.normal` of a conv kernel's shape in 1.2-3 s with it
    and in 0.3-0.5 s without; building a 10-layer WideResNet took 15 s
    against 2.6 s (docs/backends.md). Both are
    deterministic per seed; the streams differ, and the partitionable one
    is the one to keep for random draws sharded over many devices.

    Left alone when the user set `JAX_THREEFRY_PARTITIONABLE` themselves.
    The `keras-robust` command calls it; a library import does not, since it
    changes the random numbers of every JAX program in the process.

    Returns:
        True if the setting was changed.
    """
    if "JAX_THREEFRY_PARTITIONABLE" in os.environ:
        return False
    jax.config.update("jax_threefry_partitionable", False)
    return True


def compiles_first_attack_call(iterations):
    """True: an attack's first call on a model is compiled at once, however
    many loop `iterations` it runs.

    Running it eagerly gains nothing on JAX: its `fori_loop`s trace and
    compile their bodies anyway, at every call. Compiling the whole call
    took 2.3 s against 4.2 s eagerly for a first PGD-5 call on 50 digits
    (2-core AMD EPYC, 2026-12-07), and every later call reuses it (0.03 s).
    """
    del iterations
    return True


def compile_function(fn, jit_compile=True):
    del jit_compile  # JAX always compiles with XLA.
    return jax.jit(fn)


def compile_attack(perturb, forward, variables, seed, draw_seed, jit_compile=False):
    """`call(x, y) -> x_adv` running `perturb` under one `jax.jit`.

    The weights are arguments of the compiled function, not constants, so
    one compilation serves every later call, whatever the weights are then.
    A `SeedGenerator` seed is threaded through as state and advanced.
    """
    del jit_compile  # JAX always compiles with XLA.
    if variables is None:
        return None
    variables = list(variables)
    seed_variables = (
        [seed.state] if isinstance(seed, keras.random.SeedGenerator) else []
    )
    # What a call advances: the attack's seed and a randomized model's own.
    advanced = [
        index
        for index, variable in enumerate(variables + seed_variables)
        if index >= len(variables) or random_state.is_random_state(variable)
    ]

    @jax.jit
    def stateless(values, seed_values, x, y):
        x_adv, new_values = _run_stateless(
            lambda: perturb(forward, x, y, draw_seed),
            variables + seed_variables,
            list(values) + list(seed_values),
        )
        return x_adv, [new_values[index] for index in advanced]

    def call(x, y):
        all_variables = variables + seed_variables
        x_adv, new_values = stateless(
            [v.value for v in variables], [v.value for v in seed_variables], x, y
        )
        for index, value in zip(advanced, new_values):
            all_variables[index].assign(value)
        return x_adv

    return call


def _run_stateless(fn, variables, values, collect_losses=False):
    """Runs `fn()` with `variables` bound to `values`; returns (out, new values).

    `collect_losses=True` where `fn` computes the objective: a stateless
    scope drops `add_loss` terms (activity regularizers) unless it collects
    them (Keras' own JAX trainer asks for them with
    `stateless_call(..., return_losses=True)`), and the objective reads them
    back through `Layer.losses`.
    """
    mapping = list(zip(variables, values))
    states = [v for v in variables if random_state.is_random_state(v)]
    with keras.StatelessScope(
        state_mapping=mapping, collect_losses=collect_losses
    ) as scope:
        _CARRIED.append((scope, states))
        try:
            outputs = fn()
        finally:
            _CARRIED.pop()
    new_values = []
    for variable, value in zip(variables, values):
        new_value = scope.get_current_value(variable)
        new_values.append(value if new_value is None else new_value)
    return outputs, new_values


# (scope, seed-generator states) of the innermost `_run_stateless`: the loops
# below carry those states. A state that a loop body advances (a randomized
# model's noise) is a tracer of that body, and leaks if the scope keeps it.
_CARRIED = []


def fori_loop(lower, upper, body, init):
    """`keras.ops.fori_loop` that also carries the scope's random states."""
    if not _CARRIED or not _CARRIED[-1][1]:
        return jax.lax.fori_loop(lower, upper, body, init)
    scope, states = _CARRIED[-1]

    def carrying(i, carry):
        values, inner = carry
        _bind(scope, states, values)
        inner = body(i, inner)
        return _current(scope, states), inner

    values, out = jax.lax.fori_loop(
        lower, upper, carrying, (_current(scope, states), init)
    )
    _bind(scope, states, values)
    return out


def while_loop(cond, body, loop_vars, maximum_iterations=None):
    """`keras.ops.while_loop` that also carries the scope's random states."""
    if not _CARRIED or not _CARRIED[-1][1]:
        return keras.ops.while_loop(cond, body, loop_vars, maximum_iterations)
    scope, states = _CARRIED[-1]
    is_tuple = isinstance(loop_vars, (tuple, list))
    inner = tuple(loop_vars) if is_tuple else (loop_vars,)

    def carrying_cond(values, *args):
        _bind(scope, states, values)
        return cond(*args)

    def carrying_body(values, *args):
        _bind(scope, states, values)
        out = body(*args)
        out = tuple(out) if is_tuple else (out,)
        return (_current(scope, states), *out)

    values, *out = keras.ops.while_loop(
        carrying_cond,
        carrying_body,
        (_current(scope, states), *inner),
        maximum_iterations,
    )
    _bind(scope, states, values)
    return tuple(out) if is_tuple else out[0]


def _current(scope, states):
    return [scope.get_current_value(v) for v in states]


def _bind(scope, states, values):
    for variable, value in zip(states, values):
        scope.add_update((variable, value))


def _perturbed(values, perturbation):
    if perturbation is None:
        return values
    return [v if p is None else v + p for v, p in zip(values, perturbation)]


def _keep_if(finite, new, old):
    """`new` where the batch was finite, else `old` (elementwise select)."""
    return jax.tree.map(
        lambda n, o: jnp.where(finite, n, o),
        [list(part) for part in new],
        [list(part) for part in old],
    )


class RobustTrainer(keras.Model):
    """`train_step`/`test_step` for `RobustModel` on JAX (stateless).

    A batch with NaN/Inf values runs the step like any other, but its new
    state is discarded by an elementwise select (cheaper than `lax.cond`
    around stateful Keras code); only the `skipped_batches` count changes.

    Under `keras.distribution.DataParallel` the step is the same program over
    the global batch, sharded across devices (and processes): its means,
    BatchNorm statistics, random starts and finiteness check are global, as
    on one device, so nothing here depends on the distribution.
    """

    def train_step(self, state, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        finite = self.batch_is_finite(x, y, sample_weight)
        new_state = self._train_on_batch(state, x, y, sample_weight)
        return self._skip_unless(finite, new_state, state)

    def test_step(self, state, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        finite = self.batch_is_finite(x, y, sample_weight)
        new_state = self._test_on_batch(state, x, y, sample_weight)
        return self._skip_unless(finite, new_state, state)

    def _skip_unless(self, finite, new_state, state):
        """(logs, state): `new_state` if `finite`, else `state`, plus the count."""
        state = _keep_if(finite, new_state, state)
        logs, metric_values = _run_stateless(
            lambda: self.count_skipped_batches(jnp.logical_not(finite)),
            self.metrics_variables,
            state[-1],
        )
        return logs, (*state[:-1], metric_values)

    def _train_on_batch(self, state, x, y, sample_weight):
        trainable, non_trainable, optimizer_values, metric_values = state
        model_variables = self.trainable_variables + self.non_trainable_variables
        num_trainable = len(trainable)

        x_adv, model_values = _run_stateless(
            lambda: self.generate_adversarial(x, y, training=True),
            model_variables,
            list(trainable) + list(non_trainable),
        )
        x_adv = jax.lax.stop_gradient(x_adv)
        non_trainable = model_values[num_trainable:]
        # AWP: the gradient is taken at the perturbed weights and applied
        # to the unperturbed ones (None without `awp`).
        perturbation, _ = _run_stateless(
            lambda: self.weight_perturbation(x, x_adv, y, sample_weight),
            model_variables,
            list(trainable) + list(non_trainable),
        )

        def scaled_loss_fn(trainable_values, non_trainable_values):
            def objective():
                loss, logits = self.compute_robust_loss(
                    x, x_adv, y, sample_weight, training=True
                )
                return self.optimizer.scale_loss(loss), (loss, logits)

            (scaled_loss, aux), values = _run_stateless(
                objective,
                model_variables + self.optimizer.variables,
                list(trainable_values)
                + list(non_trainable_values)
                + list(optimizer_values),
                collect_losses=True,
            )
            return scaled_loss, (aux, values[num_trainable : len(model_variables)])

        grad_fn = jax.grad(scaled_loss_fn, has_aux=True)
        gradients, ((loss, logits), non_trainable) = grad_fn(
            _perturbed(trainable, perturbation), non_trainable
        )
        trainable, optimizer_values = self.optimizer.stateless_apply(
            optimizer_values, gradients, trainable
        )
        _, metric_values = _run_stateless(
            lambda: self.compute_robust_metrics(x, y, loss, logits, sample_weight),
            self.metrics_variables,
            metric_values,
        )
        return trainable, non_trainable, optimizer_values, metric_values

    def _test_on_batch(self, state, x, y, sample_weight):
        trainable, non_trainable, metric_values = state
        model_variables = self.trainable_variables + self.non_trainable_variables
        metrics_variables = self.metrics_variables

        def evaluate():
            x_adv = self.generate_adversarial(x, y, training=False)
            loss, logits = self.compute_robust_loss(
                x, x_adv, y, sample_weight, training=False
            )
            return self.compute_robust_metrics(x, y, loss, logits, sample_weight)

        _, values = _run_stateless(
            evaluate,
            model_variables + metrics_variables,
            list(trainable) + list(non_trainable) + list(metric_values),
            collect_losses=True,
        )
        num_model = len(model_variables)
        non_trainable = values[len(trainable) : num_model]
        return trainable, non_trainable, values[num_model:]


def replica_mean(values):
    """`values` as they are: a `DataParallel` program already runs on the global batch."""
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
