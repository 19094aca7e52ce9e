"""Cost of TRADES' third, statistics-only forward (`moving_statistics`).

    KERAS_BACKEND=tensorflow python benchmarks/trades_statistics_pass.py [--repeats 3]

Times `fit` epochs of TRADES-10 on scikit-learn's digits (SmallCNN 32-64-128
with BatchNorm, batch 64, 1347 images) with `moving_statistics="reference"`
(x, x*, x: one more forward per step) and `"two_pass"` (x, x*), alternating
the two so that machine load hits both alike; prints the median epoch time
of each and their ratio.
"""

import argparse
import time

import keras
import numpy as np

import keras_robust as kr


def epoch_seconds(moving_statistics, x, y, repeats):
    keras.utils.set_random_seed(0)
    net = kr.architectures.SmallCNN(10, (8, 8, 1), batch_norm=True)
    model = kr.models.TRADES(
        net, epsilon=0.2, step_size=0.05, steps=10, moving_statistics=moving_statistics
    )
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        times.append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    (x, y), _ = kr.datasets.load_digits()
    results = {"reference": [], "two_pass": []}
    for _ in range(args.repeats):
        for mode in results:
            results[mode] += epoch_seconds(mode, x, y, 1)
    medians = {mode: float(np.median(t)) for mode, t in results.items()}
    print(f"backend {keras.backend.backend()}, {args.repeats} repeats")
    for mode, seconds in medians.items():
        print(f"{mode:10s} {seconds:7.2f} s/epoch")
    print(
        f"ratio reference / two_pass: {medians['reference'] / medians['two_pass']:.3f}"
    )


if __name__ == "__main__":
    main()
