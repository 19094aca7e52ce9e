"""Smooth Adversarial Training on digits: one network, one budget, each activation.

    KERAS_BACKEND=tensorflow python benchmarks/sat_digits.py [--seeds 0 1] [--epochs 30]
        [--recipe sat|at] [--rows relu silu ...]

Every row trains the same SmallCNN 32-64-128 (activation swapped) with PGD-AT
on scikit-learn's digits: L-inf epsilon 0.2, PGD-10 with step 0.05, Adam 2e-3,
batch 64, the setup of the test suite's robustness tests. `--recipe sat`
(default) is the SAT reference's recipe, `kr.models.AT.sat_recipe`: an
inference-mode attacker, 20% of batches attacked from the clean image, label
smoothing 0.1; `--recipe at` is plain `kr.models.AT` (a batch-statistics
attack from a uniform start, no smoothing). Clean and PGD-50
(step 0.02) accuracy on the held-out split, mean and spread over the seeds.
The SmoothGradReLU rows are the SAT paper's backward-pass ablation: exact ReLU
forward, sigmoid(10 x) backward for the attacker, the weight update, or both.
"""

import argparse
import time

import keras
import numpy as np

import keras_robust as kr

EPSILON = 0.2


def activations():
    return {
        "relu": "relu",
        "silu": "silu",
        "gelu (tanh)": "gelu",
        "elu": "elu",
        "softplus": "softplus",
        "parametric_softplus (10)": "parametric_softplus",
        "smooth_relu (b0 20)": "smooth_relu",
        "relu fwd, smooth bwd: attack": kr.layers.SmoothGradReLU(smooth_for="attack"),
        "relu fwd, smooth bwd: update": kr.layers.SmoothGradReLU(smooth_for="update"),
        "relu fwd, smooth bwd: both": kr.layers.SmoothGradReLU(smooth_for="both"),
    }


def run(activation, seed, epochs, digits, recipe):
    (x, y), (x_test, y_test) = digits
    keras.utils.set_random_seed(seed)
    net = kr.architectures.SmallCNN(10, (8, 8, 1), activation=activation)
    build = kr.models.AT.sat_recipe if recipe == "sat" else kr.models.AT
    model = build(net, epsilon=EPSILON, step_size=EPSILON / 4, steps=10, seed=seed)
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        steps_per_execution=kr.backend.steps_per_execution(11),
    )
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    attack = kr.attacks.PGD(EPSILON, step_size=0.02, steps=50, seed=seed)
    x_adv = attack(net, x_test, y_test)
    predict = lambda images: np.asarray(  # noqa: E731
        keras.ops.convert_to_numpy(net(images))
    ).argmax(1)
    return np.mean(predict(x_test) == y_test), np.mean(predict(x_adv) == y_test)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--recipe", choices=("sat", "at"), default="sat")
    parser.add_argument(
        "--rows", nargs="+", default=None, help="activation labels (default all)"
    )
    args = parser.parse_args()
    digits = kr.datasets.load_digits()
    print(
        f"backend {keras.backend.backend()}, recipe {args.recipe}, "
        f"{args.epochs} epochs, seeds {args.seeds}"
    )
    print(f"{'activation':32s} {'clean':>14s} {'PGD-50':>14s} {'s/run':>7s}")
    for label, activation in activations().items():
        if args.rows and label.split(" (")[0] not in args.rows:
            continue
        start = time.perf_counter()
        results = np.array(
            [
                run(activation, seed, args.epochs, digits, args.recipe)
                for seed in args.seeds
            ]
        )
        seconds = (time.perf_counter() - start) / len(args.seeds)
        mean, spread = results.mean(0), results.std(0)
        print(
            f"{label:32s} {mean[0]:.3f} ± {spread[0]:.3f}  "
            f"{mean[1]:.3f} ± {spread[1]:.3f} {seconds:7.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
