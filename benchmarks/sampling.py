"""Langevin sampling speed: samples/second and the cost of one SGLD step.

    python benchmarks/sampling.py [--backends tensorflow jax] [--batch 100]

Each backend runs in its own process. The classifier is
`kr.architectures.SmallCNN` on 32x32x3 inputs (random weights: speed does
not depend on them). `LangevinSampler` runs 50 steps of SGLD with momentum
on the joint energy, in batches of `--batch` chains; samples/second is the
best of 3 timed `sample` calls of `--samples` images after a warm-up call
(compilation). "auto" is the default `jit_compile` (TensorFlow: a graph
on CPU, XLA with a GPU; JAX: XLA). The step cost is compared, in the same process and with the
same compilation, with the least any sampler must do per step: one forward
and one input-gradient pass (a compiled `fori_loop` of plain gradient
steps). The ratio SGLD step / (forward + input gradient) should stay within
1.10: momentum, noise and clipping are element-wise.
"""

import argparse
import json
import time

from _workers import jit_configurations
from _workers import print_header
from _workers import run_worker

STEPS = 50


def worker(batch, samples, jit_compile):
    import keras
    import numpy as np
    from keras import ops

    import keras_robust as kr

    keras.utils.set_random_seed(0)
    net = kr.architectures.SmallCNN(10, (32, 32, 3))
    sampler = kr.generation.LangevinSampler(
        net,
        steps=STEPS,
        step_size=1.0,
        momentum=0.9,
        batch_size=batch,
        jit_compile=jit_compile,
        seed=0,
    )
    labels = np.arange(samples) % 10

    def best_of(function, repeats=3):
        function()  # warm-up: compilation
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        return min(times)

    sample_seconds = best_of(lambda: sampler.sample(labels, verbose=0))

    def gradient_steps(forward, x, y, draw_seed):
        energy = sampler._energy_sum(forward, y)

        def body(i, x):
            return x - 1e-6 * kr.backend.input_gradient(energy, x)

        return ops.fori_loop(0, STEPS, body, x)

    reference = kr.backend.compile_attack(
        gradient_steps,
        sampler._forward,
        net.variables,
        None,
        None,
        jit_compile=kr.backend.resolve_jit_compile(jit_compile),
    )
    chain = sampler._compiled_chain(None)
    x0 = ops.convert_to_tensor(
        np.random.default_rng(0).uniform(size=(batch, 32, 32, 3)).astype("float32")
    )
    y0 = ops.convert_to_tensor(labels[:batch].astype("int32"))

    def run(function):
        return lambda: ops.convert_to_numpy(function(x0, y0))

    sgld = best_of(run(chain), repeats=5) / STEPS
    gradient = best_of(run(reference), repeats=5) / STEPS
    print(
        json.dumps(
            {
                "samples_per_s": samples / sample_seconds,
                "sgld_step_s": sgld,
                "gradient_step_s": gradient,
            }
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--jit", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.batch, args.samples, {"auto": "auto", "true": True}[args.jit])
        return

    print(
        f"SmallCNN on 32x32x3, {STEPS} SGLD steps (momentum 0.9), batch "
        f"{args.batch}, {args.samples} samples"
    )
    header = (
        f"{'backend':<12}{'jit':<7}{'samples/s':>11}{'SGLD step (ms)':>16}"
        f"{'fwd+grad (ms)':>15}{'ratio':>8}"
    )
    print_header(header)
    for backend, jit in jit_configurations(args.backends):
        r, error = run_worker(
            __file__,
            backend,
            ["--jit", jit, "--batch", str(args.batch), "--samples", str(args.samples)],
        )
        if error:
            print(f"{backend:<12}{jit:<7}failed: {error}")
            continue
        print(
            f"{backend:<12}{jit:<7}{r['samples_per_s']:>11.1f}"
            f"{1e3 * r['sgld_step_s']:>16.2f}{1e3 * r['gradient_step_s']:>15.2f}"
            f"{r['sgld_step_s'] / r['gradient_step_s']:>8.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
