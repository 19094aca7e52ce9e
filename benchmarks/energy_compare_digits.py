"""Energies of standard, AT and TRADES models side by side (docs/zoo.md).

    KERAS_BACKEND=tensorflow python benchmarks/energy_compare_digits.py [--epochs 20] [--plot docs/img/zoo_energy_digits.png]

Trains SmallCNN 32-64-128 on scikit-learn's digits (Adam 2e-3, batch 64,
seed 0) with plain cross-entropy, PGD-AT and TRADES (beta 6) at L-inf
epsilon 0.2 (training attack: 10 steps of 0.05), then prints
`kr.energy.compare_models` on the held-out split: accuracy, mean marginal
energy E(x) and its mean shift E(x*) - E(x) under untargeted and targeted
PGD-10 (step 0.05) at the same epsilon.
"""

import argparse
import time

import keras

import keras_robust as kr

EPSILON = 0.2


def train(method, x, y, epochs, seed):
    keras.utils.set_random_seed(seed)
    net = kr.architectures.SmallCNN(num_classes=10, input_shape=(8, 8, 1))
    if method == "standard":
        model = net
        model.compile(
            optimizer=keras.optimizers.Adam(2e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    else:
        cls = {"AT": kr.models.AT, "TRADES": kr.models.TRADES}[method]
        kwargs = {"beta": 6.0} if method == "TRADES" else {}
        model = cls(net, epsilon=EPSILON, step_size=EPSILON / 4, steps=10, **kwargs)
        model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    return net


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()
    (x_train, y_train), (x_test, y_test) = kr.datasets.load_digits()
    models = {}
    for method in ("standard", "AT", "TRADES"):
        start = time.perf_counter()
        models[method] = train(method, x_train, y_train, args.epochs, args.seed)
        print(f"trained {method} in {time.perf_counter() - start:.0f} s")
    comparison = kr.energy.compare_models(
        models, x_test, y_test, epsilon=EPSILON, seed=args.seed
    )
    print(
        f"\n{keras.backend.backend()}, digits test split ({len(x_test)} images), "
        f"{args.epochs} epochs, seed {args.seed}, L-inf epsilon {EPSILON}; "
        "energies E(x) = -logsumexp f(x):"
    )
    print(comparison)
    if args.plot:
        kr.energy.plot_model_comparison(comparison, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
