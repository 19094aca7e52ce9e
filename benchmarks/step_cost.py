"""Compile time against the attack's K, and peak memory of a training step.

    python benchmarks/step_cost.py [--backends tensorflow jax] [--memory-batches 128 512]

1. Compile time of kr.models.AT's training step (SmallCNN, batch 128,
   32x32x3) for K = 5 and K = 50 attack steps. JAX: the time of
   `jax.jit(model.train_step).lower(state, data).compile()`, the function
   Keras' `fit` compiles. TensorFlow (a graph on CPU, no XLA): the time
   to trace the same `train_step` into a graph (`get_concrete_function`).
   Both after a K = 1 warm-up that pays the process's one-time costs. The attack loop is
   a `keras.ops.fori_loop`, so the compiled program (and its compile time)
   must not grow with K: the ratio K=50 / K=5 should stay within 1.5.
2. Peak memory (JAX only) of the compiled training step of a clean model,
   of AT (K = 10) and of TRADES, the model's own `train_step(state, data)`
   that Keras' `fit` compiles. XLA's `memory_analysis()` gives the
   temporaries (`temp_size_in_bytes`: one preallocated block whose size is
   the peak of the buffers live at once under XLA's schedule), arguments,
   outputs and aliased bytes. "peak RSS" is measured: the rise of the
   process's resident memory (VmHWM after resetting it, minus VmRSS before)
   while the compiled step runs once. It adds what XLA's analysis does not
   see (library scratch buffers, thread stacks). The attack must not keep K
   activation graphs alive, so AT / clean should stay within 1.3. Each
   (scheduler, method, batch) runs in its own process, once with XLA:CPU's
   default (concurrency-optimized) scheduler and once with
   `XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false`.

Each backend runs in its own process; the parent prints the tables.
"""

import argparse
import json
import os
import statistics
import time

from _workers import print_header
from _workers import run_worker

BATCH = 128
MEMORY_METHODS = ("clean", "AT", "TRADES")
# The XLA:CPU default is the concurrency-optimized scheduler.
SCHEDULERS = {
    "default": "",
    "memory": "--xla_cpu_enable_concurrency_optimized_scheduler=false",
}


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


def lower_train_step(method, steps, batch=BATCH):
    """(jax.jit(train_step).lower(state, data), state, data), model built."""
    import jax
    import keras
    import numpy as np

    model = _model(method, steps)
    x, y = _data(batch=batch, steps=1)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # builds everything
    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )
    data = (keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(np.int32(y)))
    return jax.jit(model.train_step).lower(state, data), state, data


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
    lowered, _, _ = lower_train_step("AT", steps)
    start = time.perf_counter()
    lowered.compile()
    return time.perf_counter() - start


def _proc_status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def step_memory(method, batch, steps=10):
    """XLA's memory analysis of the compiled `train_step`, and its peak RSS."""
    import gc

    import jax

    lowered, state, data = lower_train_step(method, steps, batch)
    compiled = lowered.compile()
    analysis = compiled.memory_analysis()
    result = {
        "temp": analysis.temp_size_in_bytes,
        "argument": analysis.argument_size_in_bytes,
        "output": analysis.output_size_in_bytes,
        "alias": analysis.alias_size_in_bytes,
        "peak_rss": None,
    }
    jax.block_until_ready((state, data))
    gc.collect()
    try:
        # Writing 5 resets the peak resident set size (VmHWM), Linux >= 4.0.
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return result
    before = _proc_status_kib("VmRSS")
    jax.block_until_ready(compiled(state, data))
    result["peak_rss"] = (_proc_status_kib("VmHWM") - before) * 1024
    return result


def memory_worker(method, batch):
    print(json.dumps(step_memory(method, batch)))


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
    print(json.dumps(results))


def memory_table(batches):
    """{(scheduler, batch): {method: step_memory(...)}}, a process each."""
    table = {}
    saved = os.environ.get("XLA_FLAGS")
    try:
        for scheduler, flag in SCHEDULERS.items():
            os.environ["XLA_FLAGS"] = " ".join(filter(None, [saved, flag]))
            for batch in batches:
                for method in MEMORY_METHODS:
                    result, error = run_worker(
                        __file__, "jax", ["--memory", method, "--batch", str(batch)]
                    )
                    if result is None:
                        print(f"memory {scheduler} {method} {batch}: failed: {error}")
                        continue
                    table.setdefault((scheduler, batch), {})[method] = result
    finally:
        if saved is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = saved
    return table


def print_memory_table(table):
    mib = 2**20
    print_header(
        f"{'scheduler':<10} {'batch':>5} {'method':<7} {'temp MiB':>9} {'/ clean':>8} "
        f"{'args MiB':>9} {'out MiB':>8} {'alias MiB':>10} {'peak RSS MiB':>13} "
        f"{'/ clean':>8}"
    )
    for (scheduler, batch), rows in table.items():
        clean = rows.get("clean")
        for method, row in rows.items():
            temp_ratio = row["temp"] / clean["temp"] if clean else float("nan")
            rss, rss_ratio = "n/a", ""
            if row["peak_rss"] is not None:
                rss = f"{row['peak_rss'] / mib:.1f}"
                if clean and clean["peak_rss"]:
                    rss_ratio = f"{row['peak_rss'] / clean['peak_rss']:.2f}"
            print(
                f"{scheduler:<10} {batch:>5} {method:<7} {row['temp'] / mib:>9.1f} "
                f"{temp_ratio:>8.2f} {row['argument'] / mib:>9.1f} "
                f"{row['output'] / mib:>8.1f} {row['alias'] / mib:>10.1f} "
                f"{rss:>13} {rss_ratio:>8}"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument(
        "--memory-batches",
        nargs="*",
        type=int,
        default=[BATCH],
        help="batch sizes of the JAX memory table (none: skip it)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=BATCH, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory:
        memory_worker(args.memory, args.batch)
        return
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
    if "jax" in args.backends and args.memory_batches:
        print()
        print_memory_table(memory_table(args.memory_batches))


if __name__ == "__main__":
    main()
