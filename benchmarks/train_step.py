"""Time per training step: clean vs PGD-AT (K = 10) vs TRADES, per backend.

    python benchmarks/train_step.py [--backends tensorflow jax torch] [--batch 128]

Each backend runs in its own process (Keras fixes the backend at import);
this parent process prints one table, so all ratios come from one run. The
model is `kr.architectures.SmallCNN` on 32x32x3 inputs (random data, 10
classes), batch 128, SGD. A step's time is the best epoch time over the
timed epochs divided by the steps per epoch, after one warm-up epoch that
includes compilation. The ratio AT / ((K+1) x clean) compares an AT step
with K+1 clean steps: the attack's K backward passes need no weight
gradients, so a good implementation stays below 1.0. "TRADES joint" is
TRADES with `joint_forward=True`: f(x) and f(x*) in one pass over 2B images.
"""

import argparse
import json

from _workers import jit_configurations
from _workers import print_header
from _workers import run_worker
from _workers import timed_fit

STEPS_PER_EPOCH = 8
METHODS = ("clean", "AT", "TRADES", "TRADES joint")


def worker(batch, steps, jit_compile):
    import keras
    import numpy as np

    import keras_robust as kr

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(batch * STEPS_PER_EPOCH, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=len(x))

    def time_step(method):
        keras.utils.set_random_seed(0)
        net = kr.architectures.SmallCNN(10, (32, 32, 3))
        compile_kwargs = {}
        if method == "clean":
            model = net
            compile_kwargs = {
                "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            }
        elif method == "TRADES joint":
            model = kr.models.TRADES(net, steps=steps, seed=0, joint_forward=True)
        else:
            model = getattr(kr.models, method)(net, steps=steps, seed=0)
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            jit_compile=jit_compile,
            **compile_kwargs,
        )
        epoch_times = timed_fit(model, x, y, batch, epochs=4)
        return min(epoch_times[1:]) / STEPS_PER_EPOCH, epoch_times[0]

    results = {}
    for method in METHODS:
        step, first_epoch = time_step(method)
        results[method] = {"step_s": step, "first_epoch_s": first_epoch}
    print(json.dumps(results))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="attack steps K")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--jit", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        jit = {"auto": "auto", "true": True, "false": False}[args.jit]
        worker(args.batch, args.steps, jit)
        return

    k = args.steps
    print(f"batch {args.batch}, 32x32x3, SmallCNN, K = {k}; seconds per step")
    header = (
        f"{'backend':<12}{'jit':<6}{'clean':>9}{'AT':>9}{'TRADES':>9}{'joint':>9}"
        f"{'AT/((K+1)clean)':>17}{'TRADES/((K+2)clean)':>21}{'compile+epoch AT':>18}"
    )
    print_header(header)
    for backend, jit in jit_configurations(args.backends):
        r, error = run_worker(
            __file__,
            backend,
            ["--jit", jit, "--batch", str(args.batch), "--steps", str(k)],
        )
        if error:
            print(f"{backend:<12}{jit:<6}failed: {error}")
            continue
        clean, at, trades, joint = (r[m]["step_s"] for m in METHODS)
        print(
            f"{backend:<12}{jit:<6}{clean:>9.4f}{at:>9.4f}{trades:>9.4f}{joint:>9.4f}"
            f"{at / ((k + 1) * clean):>17.2f}{trades / ((k + 2) * clean):>21.2f}"
            f"{r['AT']['first_epoch_s']:>18.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
