"""Adversarial training on scikit-learn's `digits`, in about a minute or two.

Trains the same small CNN three ways (standard, PGD-AT, TRADES) under an
L-inf threat model of epsilon 0.2 and prints clean and PGD-50 robust test
accuracy. Runs offline: the data ships with scikit-learn.

    KERAS_BACKEND=jax python examples/digits_quickstart.py --epochs 30
"""

import argparse
import time

import keras
import numpy as np

import keras_robust as kr


def build_and_train(method, x, y, epsilon, epochs):
    keras.utils.set_random_seed(0)
    net = kr.architectures.SmallCNN(num_classes=10, input_shape=(8, 8, 1))
    if method == "standard":
        model = net
        model.compile(
            optimizer=keras.optimizers.Adam(2e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    else:
        model = getattr(kr.models, method)(
            net, epsilon=epsilon, step_size=epsilon / 4, steps=10, seed=0
        )
        model.compile(optimizer=keras.optimizers.Adam(2e-3), metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    return net


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="training epochs")
    parser.add_argument("--epsilon", type=float, default=0.2, help="L-inf radius")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["standard", "AT", "TRADES"],
        help="any of: standard AT TRADES MART WEAT",
    )
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test) = kr.datasets.load_digits()
    evaluation = kr.attacks.PGD(args.epsilon, step_size=0.02, steps=50, seed=0)
    print(
        f"digits: {len(x_train)} train / {len(x_test)} test images, "
        f"backend {keras.backend.backend()}, epsilon {args.epsilon}, "
        f"{args.epochs} epochs\n"
    )
    print(f"{'method':<10}{'clean':>8}{'PGD-50':>9}{'train s':>9}")
    for method in args.methods:
        start = time.perf_counter()
        net = build_and_train(method, x_train, y_train, args.epsilon, args.epochs)
        seconds = time.perf_counter() - start
        x_adv = evaluation(net, x_test, y_test)
        clean = np.mean(np.argmax(keras.ops.convert_to_numpy(net(x_test)), 1) == y_test)
        robust = np.mean(np.argmax(keras.ops.convert_to_numpy(net(x_adv)), 1) == y_test)
        print(f"{method:<10}{clean:>8.3f}{robust:>9.3f}{seconds:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
