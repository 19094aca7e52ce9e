"""The analysis tools on digits: boundary dynamics of AT vs DyART, gradients, energy paths.

    KERAS_BACKEND=jax python benchmarks/analysis_digits.py [--epochs 15] [--probe 300] [--img-dir docs/img]

Trains SmallCNN 32-64-128 on scikit-learn's digits (Adam 2e-3, batch 64,
seed 0) with PGD-AT (L-inf epsilon 0.2, PGD-5 of step 0.05) and with DyART
(the same epsilon, r0 0.4, lambda 100, 5 search steps, the settings of
tests/models/test_dyart.py's digits run), each with
`kr.callbacks.BoundaryDynamics` on the first `--probe` test images
(threshold: epsilon). Prints per epoch the share of vulnerable probe points
(margin < epsilon) and, among them, the share whose margin shrinks under a
training step (the "conflicting" fraction), then the energy-path roughness
(`kr.analysis.energy_along`, mean |dE| per unit of epsilon) of a standard
network and the AT network, and the cost of `margin_speeds` on 1,000 points
against one training epoch of AT. With --img-dir it writes the dynamics
plots, the input-gradient grids and the energy-path plot (docs/analysis.md).
"""

import argparse
import os
import time

import keras
import numpy as np

import keras_robust as kr

EPSILON = 0.2


def build(method, x, y, seed):
    keras.utils.set_random_seed(seed)
    net = kr.architectures.SmallCNN(num_classes=10, input_shape=(8, 8, 1))
    if method == "standard":
        net.compile(
            optimizer=keras.optimizers.Adam(2e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return net
    if method == "AT":
        model = kr.models.AT(
            net, epsilon=EPSILON, step_size=EPSILON / 4, steps=5, seed=seed
        )
    else:
        model = kr.models.DyART(
            net, epsilon=EPSILON, search_steps=5, r0=0.4, lam=100.0, seed=seed
        )
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--probe", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--img-dir", default=None)
    args = parser.parse_args()
    (x, y), (xt, yt) = kr.datasets.load_digits()
    probe = (xt[: args.probe], yt[: args.probe])
    print(
        f"backend {keras.backend.backend()}, {args.epochs} epochs, {args.probe} probe points"
    )
    trained = {}
    for method in ("AT", "DyART"):
        model = build(method, x, y, args.seed)
        dynamics = kr.callbacks.BoundaryDynamics(*probe, threshold=EPSILON)
        start = time.perf_counter()
        model.fit(
            x, y, batch_size=64, epochs=args.epochs, callbacks=[dynamics], verbose=0
        )
        seconds = time.perf_counter() - start
        trained[method] = model
        history = dynamics.history
        print(f"\n{method} ({seconds:.0f} s with the callback)")
        print("epoch  vulnerable  conflicting  mean margin")
        for i, epoch in enumerate(history["epoch"]):
            print(
                f"{epoch + 1:>5}  {history['boundary_vulnerable_fraction'][i]:>10.3f}"
                f"  {history['boundary_conflicting_fraction'][i]:>11.3f}"
                f"  {history['boundary_mean_margin'][i]:>11.4f}"
            )
        conflicting = np.nanmean(history["boundary_conflicting_fraction"])
        print(f"mean conflicting fraction over epochs: {conflicting:.3f}")
        if args.img_dir:
            os.makedirs(args.img_dir, exist_ok=True)
            dynamics.plot(
                os.path.join(args.img_dir, f"boundary_dynamics_{method.lower()}.png")
            )

    standard = build("standard", x, y, args.seed)
    standard.fit(x, y, batch_size=64, epochs=30, verbose=0)
    robust = trained["AT"].classifier
    paths = {}
    for name, net in (("standard", standard), ("AT", robust)):
        paths[name] = kr.analysis.energy_along(net, xt[:300], yt[:300], epsilon=EPSILON)
        rows = ", ".join(
            f"{direction} {row['roughness']:.2f}"
            for direction, row in paths[name].summary().items()
        )
        print(f"energy roughness (mean |dE(x)| per unit epsilon) of {name}: {rows}")
    if args.img_dir:
        kr.analysis.plot_energy_along(
            paths, os.path.join(args.img_dir, "energy_along_digits.png")
        )
        for name, net in (("standard", standard), ("at", robust)):
            gradients = kr.analysis.input_gradients(net, xt[:10], yt[:10])
            kr.analysis.save_input_gradient_grid(
                xt[:10],
                gradients,
                os.path.join(args.img_dir, f"input_gradients_{name}.png"),
            )

    # Cost: margin_speeds on 1,000 points against one AT epoch (both warm).
    model = trained["AT"]
    function = kr.analysis.MarginSpeedFunction(model.classifier, batch_size=250)
    direction = kr.analysis.training_direction(model, x[:128], y[:128])
    points = np.concatenate([xt, xt])[:1000], np.concatenate([yt, yt])[:1000]
    function(*points, direction)  # compile
    start = time.perf_counter()
    function(*points, direction)
    analysis_seconds = time.perf_counter() - start
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # warm
    start = time.perf_counter()
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    epoch_seconds = time.perf_counter() - start
    print(
        f"\nmargin_speeds on 1,000 points (20 search + 16 bisection steps): "
        f"{analysis_seconds:.2f} s; one AT epoch ({len(x)} images, PGD-5): "
        f"{epoch_seconds:.2f} s; ratio {analysis_seconds / epoch_seconds:.2f}"
    )


if __name__ == "__main__":
    main()
