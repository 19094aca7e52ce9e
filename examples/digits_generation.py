"""Images from classifiers: a robust and a standard digits model, side by side.

Trains a SmallCNN on scikit-learn's digits twice (plain cross-entropy, and
PGD-AT at L-inf epsilon 0.2), then draws class-conditional samples from
each with `kr.generation.LangevinSampler` (50 SGLD steps on the joint
energy) from two starts: uniform noise and the class-wise PCA start. Prints,
per model and start, the share of samples the model classifies as their
target class and the "digits FID" (Frechet distance to the held-out digits
in pixel space), and writes one sheet of samples (a row per class).

    KERAS_BACKEND=jax python examples/digits_generation.py --out runs/generation
"""

import argparse
import os

import keras
import matplotlib
import numpy as np

import keras_robust as kr

EPSILON = 0.2


def train(method, x, y, epochs):
    keras.utils.set_random_seed(0)
    net = kr.architectures.SmallCNN(10, (8, 8, 1))
    if method == "standard":
        net.compile(
            optimizer=keras.optimizers.Adam(2e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        net.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    else:
        model = kr.models.AT(net, epsilon=EPSILON, step_size=EPSILON / 4, steps=10)
        model.compile(
            optimizer=keras.optimizers.Adam(2e-3),
            steps_per_execution=kr.backend.steps_per_execution(11),
        )
        model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    return net


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/generation", help="output directory")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--per-class", type=int, default=50, help="samples per class")
    parser.add_argument("--shown", type=int, default=8, help="samples per row shown")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--step-size", type=float, default=0.03)
    args = parser.parse_args()
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(args.out, exist_ok=True)

    (x, y), (x_test, _) = kr.datasets.load_digits()
    starts = {
        "uniform noise": kr.generation.UniformInitializer((8, 8, 1)),
        "class PCA": kr.generation.PCAInitializer(0.95, sigma=0.05).fit(x, y),
    }
    labels = np.repeat(np.arange(10), args.per_class)
    flat_test = x_test.reshape(len(x_test), -1)
    figure, axes = plt.subplots(2, 2, figsize=(8, 10))
    print(f"{'model':<10}{'start':<15}{'as target':>10}{'digits FID':>12}")
    for column, method in enumerate(("AT", "standard")):
        net = train(method, x, y, args.epochs)
        for row, (start, initializer) in enumerate(starts.items()):
            sampler = kr.generation.LangevinSampler(
                net,
                steps=args.steps,
                step_size=args.step_size,
                initializer=initializer,
                seed=0,
            )
            images = sampler.sample(labels, seed=0, verbose=0)
            predicted = keras.ops.convert_to_numpy(net(images)).argmax(1)
            fid = kr.metrics.frechet_distance(
                flat_test, images.reshape(len(images), -1)
            )
            name = "robust" if method == "AT" else "standard"
            print(
                f"{name:<10}{start:<15}{np.mean(predicted == labels):>10.3f}{fid:>12.2f}"
            )
            shown = images.reshape(10, args.per_class, 8, 8, 1)[:, : args.shown]
            grid = kr.generation.image_grid(shown.reshape(-1, 8, 8, 1), nrow=args.shown)
            axes[row, column].imshow(grid[..., 0], cmap="gray", vmin=0, vmax=1)
            axes[row, column].set_title(f"{name} model, {start}\ndigits FID {fid:.2f}")
            axes[row, column].set_axis_off()
    figure.tight_layout()
    path = os.path.join(args.out, "generation_digits.png")
    figure.savefig(path, dpi=80)
    print(f"sample sheet: {path}")


if __name__ == "__main__":
    main()
