"""Crafts x* with fixed weights under the current backend; writes it to argv[1].

Run by `test_cross_backend.py` once per backend, in a fresh process each.
"""

import sys

import numpy as np

import keras_robust as kr
from tests.helpers import tiny_cnn
from tests.helpers import to_numpy


def main(path):
    (x, y), _ = kr.datasets.load_digits()
    x, y = x[:32], y[:32]
    model = tiny_cnn()
    model.build((None, 8, 8, 1))
    rng = np.random.default_rng(0)
    model.set_weights(
        [rng.normal(scale=0.2, size=w.shape).astype("float32") for w in model.weights]
    )
    results = {}
    # Deterministic starts only: the backends' random streams differ. The KL
    # and SE losses have a zero gradient at x' = x, so they need a random start.
    for loss in ("ce", "cw"):
        attack = kr.attacks.PGD(
            0.2, step_size=0.05, steps=10, loss=loss, random_start="none"
        )
        results[loss] = to_numpy(attack(model, x, y))
    targeted = kr.attacks.PGD(
        0.2, step_size=0.05, steps=10, targeted=True, random_start="none"
    )
    results["targeted"] = to_numpy(targeted(model, x, (y + 1) % 10))
    results["l2"] = to_numpy(
        kr.attacks.PGD(1.0, step_size=0.25, steps=10, norm="l2", random_start="none")(
            model, x, y
        )
    )
    np.savez(path, **results)


if __name__ == "__main__":
    main(sys.argv[1])
