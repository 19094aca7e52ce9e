"""TensorFlow plumbing: `GradientTape` training step and input gradients."""

import keras
import tensorflow as tf


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


def is_tracing(x):
    del x
    return not tf.executing_eagerly()


def resolve_jit_compile(jit_compile):
    """`"auto"`: XLA only with a GPU (XLA:CPU convolutions are ~2x slower)."""
    if jit_compile == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return bool(jit_compile)


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


class RobustTrainer(keras.Model):
    """`train_step`/`test_step` for `RobustModel` on TensorFlow.

    The attack runs before the weight tape opens, so its K forward/backward
    passes are never recorded for the weight gradient. A batch with NaN/Inf
    values takes the other branch of a `tf.cond`, which only counts it.
    """

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        return tf.cond(
            self.batch_is_finite(x, y, sample_weight),
            lambda: self._train_on_batch(x, y, sample_weight),
            lambda: self.count_skipped_batches(True),
        )

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        return tf.cond(
            self.batch_is_finite(x, y, sample_weight),
            lambda: self._test_on_batch(x, y, sample_weight),
            lambda: self.count_skipped_batches(True),
        )

    def _train_on_batch(self, x, y, sample_weight):
        x_adv = tf.nest.map_structure(
            tf.stop_gradient, self.generate_adversarial(x, y, training=True)
        )
        with tf.GradientTape() as tape:
            loss, logits = self.compute_robust_loss(
                x, x_adv, y, sample_weight, training=True
            )
            scaled_loss = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
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
