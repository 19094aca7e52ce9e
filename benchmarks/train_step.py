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

The second table prices the state-of-the-art pieces against plain TRADES
(issue 19): "AWP" is TRADES with `awp=kr.models.AWP(5e-3)` (one more
forward-backward pass of the objective per step), "cons" TRADES with
`consistency_weight=1` (the same 2B-image batch cost as TRADES on 2B, so it
is timed on the same B images, split as two views: only the JS term is
extra), "EMA" TRADES with `use_ema=True` and `kr.callbacks.WeightEMA`.
"""

import argparse
import json

from _workers import jit_configurations
from _workers import print_header
from _workers import run_worker
from _workers import timed_fit

STEPS_PER_EPOCH = 8
METHODS = (
    "clean",
    "AT",
    "TRADES",
    "TRADES joint",
    "TRADES AWP",
    "TRADES cons",
    "TRADES EMA",
)


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
        elif method == "TRADES AWP":
            model = kr.models.TRADES(net, steps=steps, seed=0, awp=kr.models.AWP(5e-3))
        elif method == "TRADES cons":
            model = kr.models.TRADES(net, steps=steps, seed=0, consistency_weight=1.0)
        elif method == "TRADES EMA":
            model = kr.models.TRADES(net, steps=steps, seed=0)
        else:
            model = getattr(kr.models, method)(net, steps=steps, seed=0)
        ema = method == "TRADES EMA"
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9, use_ema=ema),
            jit_compile=jit_compile,
            **compile_kwargs,
        )
        callbacks = [kr.callbacks.WeightEMA(0.995)] if ema else []
        epoch_times = timed_fit(model, x, y, batch, epochs=4, callbacks=callbacks)
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
    rows = []
    for backend, jit in jit_configurations(args.backends):
        r, error = run_worker(
            __file__,
            backend,
            ["--jit", jit, "--batch", str(args.batch), "--steps", str(k)],
        )
        if error:
            print(f"{backend:<12}{jit:<6}failed: {error}")
            continue
        clean, at, trades, joint, awp, cons, ema = (r[m]["step_s"] for m in METHODS)
        rows.append((backend, jit, trades, awp, cons, ema))
        print(
            f"{backend:<12}{jit:<6}{clean:>9.4f}{at:>9.4f}{trades:>9.4f}{joint:>9.4f}"
            f"{at / ((k + 1) * clean):>17.2f}{trades / ((k + 2) * clean):>21.2f}"
            f"{r['AT']['first_epoch_s']:>18.1f}",
            flush=True,
        )
    print("\nstate-of-the-art pieces on TRADES; seconds per step and ratio to TRADES")
    print_header(
        f"{'backend':<12}{'jit':<6}{'TRADES':>9}{'AWP':>9}{'cons':>9}{'EMA':>9}"
        f"{'AWP/T':>8}{'cons/T':>8}{'EMA/T':>8}"
    )
    for backend, jit, trades, awp, cons, ema in rows:
        print(
            f"{backend:<12}{jit:<6}{trades:>9.4f}{awp:>9.4f}{cons:>9.4f}{ema:>9.4f}"
            f"{awp / trades:>8.2f}{cons / trades:>8.2f}{ema / trades:>8.2f}"
        )


if __name__ == "__main__":
    main()
