"""Plot the SAT activations and their derivatives, computed by the layers themselves.

    python examples/plot_sat_activations.py [--out docs/img/sat_activations.png]

Values come from `kr.layers.activation_layer(name)` and derivatives from the
backend's automatic differentiation of that layer, so the plot shows what
the library computes (SmoothGradReLU: ReLU values, sigmoid(10 x) gradient).
"""

import argparse

import keras
import numpy as np

import keras_robust as kr
from keras_robust.utils.plotting import require_matplotlib

NAMES = (
    "relu",
    "silu",
    "gelu",
    "elu",
    "softplus",
    "mish",
    "parametric_softplus",
    "smooth_relu",
    "smooth_grad_relu",
)


def values_and_derivatives(name, x):
    layer = kr.layers.activation_layer(name)
    inputs = keras.ops.convert_to_tensor(x)
    values = keras.ops.convert_to_numpy(layer(inputs))
    derivatives = kr.backend.input_gradient(lambda v: keras.ops.sum(layer(v)), inputs)
    return values, keras.ops.convert_to_numpy(derivatives)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/img/sat_activations.png")
    args = parser.parse_args()
    plt = require_matplotlib()
    x = np.linspace(-3.0, 3.0, 1201, dtype="float32")
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in NAMES:
        values, derivatives = values_and_derivatives(name, x)
        style = {"linestyle": "--"} if name in ("relu", "smooth_grad_relu") else {}
        if name != "smooth_grad_relu":  # its values are ReLU's
            left.plot(x, values, label=name, **style)
        right.plot(x, derivatives, label=name, **style)
    left.set(title="f(x)", xlabel="x", ylim=(-1.2, 3.0))
    right.set(
        title="df/dx (what attacks and updates see)", xlabel="x", ylim=(-0.2, 1.2)
    )
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.axhline(0, color="black", linewidth=0.5)
    right.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
