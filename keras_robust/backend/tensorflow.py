"""TensorFlow plumbing: `GradientTape` training step and input gradients."""

import keras
import tensorflow as tf

from keras_robust.backend.guarded_steps import GuardedSteps
from keras_robust.backend.guarded_steps import perturb_weights
from keras_robust.backend.guarded_steps import restore_weights


def input_gradient(fn, x):
    """Gradient of the scalar `fn(x)` with respect to the tensor `x`.

    A dedicated tape that watches only `x` is cheap and nests inside the
    weight tape, `tf.function(jit_compile=True)` and `tf.while_loop`.
    Inputs that do not reach the value get a zero gradient, not `None`.
    """
    x = tf.convert_to_tensor(x)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        value = fn(x)
    return tape.gradient(value, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)


def input_gradient_with_aux(fn, x):
    """(d value / dx, aux) for `fn(x) -> (scalar value, aux)`, in one pass.

    `aux` (e.g. the logits) is returned as computed, without gradient.
    """
    x = tf.convert_to_tensor(x)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        value, aux = fn(x)
    gradient = tape.gradient(
        value, x, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    return gradient, tf.nest.map_structure(tf.stop_gradient, aux)


def weight_gradient(fn, values):
    """Gradients of the scalar `fn(values)` with respect to a list of tensors."""
    values = [tf.convert_to_tensor(v) for v in values]
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(values)
        value = fn(values)
    return tape.gradient(
        value, values, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )


def weight_jvp(fn, values, tangents):
    """(fn(values), d fn(values + t tangents) / dt at t = 0): forward mode.

    `tf.autodiff.ForwardAccumulator` carries the tangents through the
    forward pass (no backward pass), also inside `tf.function` and XLA.
    """
    values = [tf.convert_to_tensor(v) for v in values]
    tangents = [tf.cast(t, v.dtype) for t, v in zip(tangents, values)]
    with tf.autodiff.ForwardAccumulator(values, tangents) as accumulator:
        output = fn(values)
    tangent = accumulator.jvp(
        output, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    return output, tangent


def replica_mean(values):
    """The mean of each of `values` over the replicas of a `tf.distribute` strategy.

    Inside a replica context with more than one replica the values are
    all-reduced (each replica's share is a mean over its slice of the
    global batch, so their mean is the global batch's); elsewhere they are
    returned as they are.
    """
    values = list(values)
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1 or not values:
        return values
    return list(context.all_reduce(tf.distribute.ReduceOp.MEAN, values))


def is_tracing(x):
    del x
    return not tf.executing_eagerly()


def fori_loop(lower, upper, body, init):
    """`keras.ops.fori_loop`: variables a body advances are assigned in place."""
    return keras.ops.fori_loop(lower, upper, body, init)


def while_loop(cond, body, loop_vars, maximum_iterations=None):
    """`keras.ops.while_loop` (see `fori_loop`)."""
    return keras.ops.while_loop(cond, body, loop_vars, maximum_iterations)


def resolve_jit_compile(jit_compile):
    """`"auto"`: XLA only with a GPU (XLA:CPU convolutions are ~2x slower)."""
    if jit_compile == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return bool(jit_compile)


def use_fast_compiling_random():
    """Nothing to do: TensorFlow's random kernels compile no program per shape."""
    return False


# A first attack call of at least this many loop iterations is compiled.
FIRST_CALL_COMPILE_ITERATIONS = 100


def compiles_first_attack_call(iterations):
    """Whether a first call of `iterations` loop iterations is compiled.

    Op by op, each TensorFlow op costs tens of microseconds of dispatch, so
    a long call is dominated by it; building the graph costs about 1.5 s.
    First calls on a digits SmallCNN (64 / 450 images, 2-core AMD EPYC,
    2026-12-07, op by op against compiled): PGD-20 0.45 / 0.88 s against
    2.0 / 2.2 s; APGD-100 2.4 / 4.0 s against 1.5 / 2.8 s; APGD-T (9
    targets x 100 steps) 25 / 40 s against 2.5 / 7.3 s; FAB-T (9 x 100, 64
    images) 58 s against 5.3 s. Hence compiled from 100 iterations on. From
    the second call on, one graph serves every batch whatever the length.
    """
    return iterations >= FIRST_CALL_COMPILE_ITERATIONS


def compile_function(fn, jit_compile=True):
    return tf.function(fn, jit_compile=jit_compile, reduce_retracing=True)


def compile_attack(perturb, forward, variables, seed, draw_seed, jit_compile=False):
    """`call(x, y) -> x_adv` running `perturb` as one TensorFlow graph.

    By default a graph, not XLA: its random draws match eager ones for the
    same seed. `jit_compile=True` compiles it with XLA.
    """
    del variables, seed  # A graph reads variables and seed state directly.
    return tf.function(
        lambda x, y: perturb(forward, x, y, draw_seed),
        jit_compile=jit_compile,
        reduce_retracing=True,
    )


class RobustTrainer(GuardedSteps, keras.Model):
    """`train_step`/`test_step` for `RobustModel` on TensorFlow.

    The attack runs before the weight tape opens, so its K forward/backward
    passes are never recorded for the weight gradient. A batch with NaN/Inf
    values takes the other branch of a `tf.cond`, which only counts it.

    Under a `tf.distribute` strategy (`MirroredStrategy`,
    `MultiWorkerMirroredStrategy`) each replica gets a slice of the global
    batch (docs/scaling_out.md):

    - the loss is divided by the number of replicas before the gradient,
      since the optimizer sums the replicas' gradients: the update is the
      one-device update on the global batch;
    - the finiteness flag is all-reduced first, so that every replica
      trains or every replica skips (a skip counts once, on replica 0);
    - the `tf.cond` is taken in cross-replica context (inside `merge_call`,
      as Keras' `LossScaleOptimizer` does), because `optimizer.apply`
      synchronises the replicas with `merge_call`, which a `tf.cond` branch
      in replica context must not do (strategies that need no `merge_call`
      keep the cond in replica context);
    - two failures of Keras 3.15's `fit` under `MultiWorkerMirroredStrategy`
      (keras-team/keras#20585) are worked around: the symbolic build from
      the first distributed batch, and the cross-worker reduction of the
      step's scalar logs.

    Without a strategy the step is the plain `tf.cond` above.
    """

    def _guarded_step(self, step, data):
        """`step(x, y, sample_weight)` if the batch is finite, else a skip."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        finite = self.batch_is_finite(x, y, sample_weight)
        if not tf.distribute.has_strategy():
            return tf.cond(
                finite,
                lambda: step(x, y, sample_weight),
                lambda: self.count_skipped_batches(True),
            )
        # Under a strategy: one decision for the global batch.
        finite = _on_all_replicas(finite)
        if _supports_no_merge_call():
            logs = tf.cond(
                finite, lambda: step(x, y, sample_weight), self._count_skip_once
            )
        else:

            def cross_replica_cond(strategy, finite, x, y, sample_weight):
                finite = strategy.experimental_local_results(finite)[0]
                tf.cond(
                    finite,
                    lambda: _for_each_replica(strategy, step, x, y, sample_weight),
                    lambda: _for_each_replica(strategy, self._count_skip_once),
                )

            tf.distribute.get_replica_context().merge_call(
                cross_replica_cond, args=(finite, x, y, sample_weight)
            )
            logs = self.get_metrics_result()
        if _is_multi_worker(tf.distribute.get_strategy()):
            # Keras reduces each log across workers with
            # `strategy.reduce("MEAN", value, axis=0)`, which needs an axis.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # A private hook of Keras' TensorFlow trainer (keras/src/backend/
        # tensorflow/trainer.py, same signature in Keras 3.11.0 to 3.15.1).
        # Keras 3.15 builds from the first batch, reduced across replicas by
        # one `strategy.reduce` call over the whole (x, y) structure, which
        # `MultiWorkerMirroredStrategy` rejects (keras-team/keras#20585).
        # Building needs shapes only: the first local replica's slice does.
        strategy = self.distribute_strategy
        if iterator is not None and isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy
        ):
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda value: strategy.experimental_local_results(value)[0],
                    next(batches),
                )
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _count_skip_once(self):
        """Counts a skipped global batch on the first replica only."""
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return self.count_skipped_batches(tf.equal(replica, 0))

    def _train_on_batch(self, x, y, sample_weight):
        x_adv = tf.nest.map_structure(
            tf.stop_gradient, self.generate_adversarial(x, y, training=True)
        )
        variables = self.trainable_variables
        unperturbed = perturb_weights(
            variables, self.weight_perturbation(x, x_adv, y, sample_weight)
        )
        with tf.GradientTape() as tape:
            loss, logits = self.compute_robust_loss(
                x, x_adv, y, sample_weight, training=True
            )
            scaled_loss = self.optimizer.scale_loss(_per_replica_share(loss))
        gradients = tape.gradient(scaled_loss, variables)
        restore_weights(variables, unperturbed)
        self.optimizer.apply(gradients, variables)
        return self.compute_robust_metrics(x, y, loss, logits, sample_weight)

    def _test_on_batch(self, x, y, sample_weight):
        x_adv = tf.nest.map_structure(
            tf.stop_gradient, self.generate_adversarial(x, y, training=False)
        )
        loss, logits = self.compute_robust_loss(
            x, x_adv, y, sample_weight, training=False
        )
        return self.compute_robust_metrics(x, y, loss, logits, sample_weight)


def _supports_no_merge_call():
    """Whether the current strategy may update variables without `merge_call`.

    Private TensorFlow API, as Keras' own optimizer and `LossScaleOptimizer`
    use it (checked with TensorFlow 2.21 and Keras 3.11.0 to 3.15.1).
    """
    return tf.__internal__.distribute.strategy_supports_no_merge_call()


def _is_multi_worker(strategy):
    """A `MultiWorkerMirroredStrategy` over several workers.

    `extended._in_multi_worker_mode()` is private TensorFlow API, Keras' own
    test in its TensorFlow trainer (checked with Keras 3.11.0 to 3.15.1).
    """
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )


def _on_all_replicas(finite):
    """True on every replica iff the flag is true on every replica."""
    not_finite = tf.cast(tf.logical_not(finite), tf.float32)
    total = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, not_finite
    )
    return tf.equal(total, 0.0)


def _for_each_replica(strategy, fn, *args):
    """Runs `fn(*args)` on every replica (from cross-replica context)."""

    def run(*replica_args):
        fn(*replica_args)  # Only its variable updates matter here.

    strategy.extended.call_for_each_replica(run, args=args)


def _per_replica_share(loss):
    """`loss` / replicas: the optimizer sums the replicas' gradients.

    Each replica's loss is a mean over its slice of the batch, so the sum of
    the divided gradients is the gradient of the global-batch mean.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas == 1:
        return loss
    return loss * tf.cast(1.0 / replicas, loss.dtype)


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
