"""Compile time against the attack's K, and peak memory of a training step.

    python benchmarks/step_cost.py [--backends tensorflow jax]

1. Compile time of kr.models.AT's training step (SmallCNN, batch 128,
   32x32x3) for K = 5 and K = 50 attack steps. JAX: the time of
   `jax.jit(model.train_step).lower(state, data).compile()`, the function
   Keras' `fit` compiles. TensorFlow (a graph on CPU, no XLA): the time
   to trace the same `train_step` into a graph (`get_concrete_function`).
   Both after a K = 1 warm-up that pays the process's one-time costs. The attack loop is
   a `keras.ops.fori_loop`, so the compiled program (and its compile time)
   must not grow with K: the ratio K=50 / K=5 should stay within 1.5.
2. Peak memory (JAX only: XLA reports it exactly): the temporary buffers
   (`memory_analysis().temp_size_in_bytes`) of the compiled training step
   of a clean model and of AT (K = 10) and TRADES. The attack must not keep
   K activation graphs alive, so AT / clean should stay within 1.3. The
   step compiled here is the model's own `train_step(state, data)`, the
   function Keras' `fit` compiles.

Each backend runs in its own process; the parent prints the tables.
"""

import argparse
import json
import statistics
import time

from _workers import print_header
from _workers import run_worker

BATCH = 128


def _data(batch=BATCH, steps=4):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(batch * steps, 32, 32, 3)).astype("float32")
    return x, rng.integers(0, 10, size=len(x))


def _model(method, steps):
    import keras

    import keras_robust as kr

    keras.utils.set_random_seed(0)
    net = kr.architectures.SmallCNN(10, (32, 32, 3))
    if method == "clean":
        net.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return net
    model = getattr(kr.models, method)(net, steps=steps, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    return model


def step_seconds(steps):
    """Median `fit` step time of AT after its first (compiling) step."""
    import keras

    x, y = _data()
    model = _model("AT", steps)
    times = []

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[StepTimer()],
    )
    return statistics.median(times[1:])


def lower_train_step(method, steps):
    """(jax.jit(train_step), its lowered form) for one batch, model built."""
    import jax
    import keras
    import numpy as np

    model = _model(method, steps)
    x, y = _data(steps=1)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # builds everything
    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )
    data = (keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(np.int32(y)))
    return jax.jit(model.train_step).lower(state, data)


def tf_trace_seconds(steps):
    """Time to trace AT's `train_step` into a TensorFlow graph."""
    import numpy as np
    import tensorflow as tf

    model = _model("AT", steps)
    x, y = _data(steps=1)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # builds everything
    data = (tf.constant(x), tf.constant(np.int32(y)))
    start = time.perf_counter()
    tf.function(model.train_step).get_concrete_function(data)
    return time.perf_counter() - start


def jax_compile_seconds(steps):
    lowered = lower_train_step("AT", steps)
    start = time.perf_counter()
    lowered.compile()
    return time.perf_counter() - start


def step_temp_bytes(method, steps=10):
    """Temporary bytes of the compiled `train_step` (JAX)."""
    compiled = lower_train_step(method, steps).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def worker():
    import keras

    results = {"backend": keras.backend.backend(), "compile": {}}
    # Before any timed `fit` (whose compilations JAX could reuse), after a
    # warm-up that pays the process's one-time costs.
    measure = jax_compile_seconds if results["backend"] == "jax" else tf_trace_seconds
    measure(1)
    compile_times = {steps: measure(steps) for steps in (5, 50)}
    for steps in (5, 50):
        step_s = step_seconds(steps)
        results["compile"][steps] = {
            "compile_s": compile_times[steps],
            "step_s": step_s,
        }
    if results["backend"] == "jax":
        results["temp_bytes"] = {
            method: step_temp_bytes(method) for method in ("clean", "AT", "TRADES")
        }
    print(json.dumps(results))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    results = {}
    for backend in args.backends:
        result, error = run_worker(__file__, backend, [])
        if result is None:
            print(f"{backend}: failed: {error}")
            continue
        results[backend] = result

    print_header(
        f"{'backend':<11} {'compile K=5 s':>14} {'compile K=50 s':>15} {'ratio':>6} "
        f"{'step K=5 s':>11} {'step K=50 s':>12}"
    )
    for backend, result in results.items():
        five, fifty = result["compile"]["5"], result["compile"]["50"]
        print(
            f"{backend:<11} {five['compile_s']:>14.2f} {fifty['compile_s']:>15.2f} "
            f"{fifty['compile_s'] / five['compile_s']:>6.2f} "
            f"{five['step_s']:>11.3f} {fifty['step_s']:>12.3f}"
        )
    if "jax" in results:
        memory = results["jax"]["temp_bytes"]
        print()
        print_header(f"{'JAX train_step temporaries':<27} {'MiB':>8} {'/ clean':>8}")
        for method, size in memory.items():
            print(f"{method:<27} {size / 2**20:>8.1f} {size / memory['clean']:>8.2f}")


if __name__ == "__main__":
    main()
