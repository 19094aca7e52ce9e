"""Square alone, with AutoAttack's settings, against two references, seed by seed.

    KERAS_BACKEND=torch python benchmarks/square_vs_reference.py
        [--method TRADES] [--examples 450] [--seeds 4] [--fra31 PATH]

Trains the SmallCNN of `autoattack_vs_reference.py` (same recipe, L-inf
epsilon 0.2), keeps the held-out digits among the first `--examples` that
our APGD-CE (100 steps, seed 0) leaves correctly classified, and attacks
those points with three Square attacks set as AutoAttack's standard version
builds its Square (5,000 queries, p_init 0.8, margin loss, one restart, the
non-rescaled p schedule), once per seed:

- ours: `kr.attacks.Square(0.2, queries=5000, p_init=0.8, schedule="autoattack")`;
- torchattacks 3.5.1: `Square(n_queries=5000, p_init=0.8, resc_schedule=False)`;
- fra31 (with `--fra31`, a checkout of github.com/fra31/auto-attack):
  `SquareAttack(norm="Linf", n_queries=5000, p_init=0.8, resc_schedule=False)`.

The references attack the same Keras model object (on the torch backend a
Keras model is a `torch.nn.Module`), so the script runs on torch only. Each
row gives the points broken and the wall time. The cascade hides most of
Square's strength (it runs last, on what APGD-T and FAB-T left); alone, on
more points, a difference in the search shows. Seeds draw different numbers
in each code, so compare the spread over seeds, not a seed's row.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _workers import print_header  # noqa: E402

EPSILON = 0.2
QUERIES = 5000
P_INIT = 0.8


def points_left_by_apgd(net, x, y):
    import keras

    import keras_robust as kr

    apgd = kr.attacks.APGD(EPSILON, norm="linf", steps=100, loss="ce", seed=0)
    x_adv = keras.ops.convert_to_numpy(apgd(net, x, y))
    clean = keras.ops.convert_to_numpy(net(x)).argmax(1)
    adversarial = keras.ops.convert_to_numpy(net(x_adv)).argmax(1)
    keep = (clean == y) & (adversarial == y)
    return x[keep], y[keep]


def broken_by(predict, images, labels, make_attack, seed):
    """(points broken, seconds) of one reference attack on NCHW tensors."""
    import torch

    attack = make_attack(seed)
    start = time.perf_counter()
    with torch.no_grad():
        found = attack(images, labels)
        broken = int((predict(found).argmax(1) != labels).sum())
    return broken, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="TRADES", choices=("AT", "TRADES"))
    parser.add_argument("--examples", type=int, default=450)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--fra31", default="", help="a checkout of fra31/auto-attack")
    args = parser.parse_args()
    if os.environ.get("KERAS_BACKEND") != "torch":
        parser.error("run with KERAS_BACKEND=torch: the references run on torch.")
    if args.fra31 and not os.path.isdir(os.path.join(args.fra31, "autoattack")):
        parser.error(f"--fra31 {args.fra31!r} is not a fra31/auto-attack checkout.")

    import keras
    import torch
    import torchattacks
    from autoattack_vs_reference import channels_first
    from autoattack_vs_reference import train

    import keras_robust as kr

    _, (x_test, y_test) = kr.datasets.load_digits()
    x, y = x_test[: args.examples].astype("float32"), y_test[: args.examples]
    net = kr.architectures.SmallCNN(10, (8, 8, 1))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "weights.weights.h5")
        train(args.method, "linf", path)
        net.load_weights(path)
    x, y = points_left_by_apgd(net, x, y)

    model = channels_first(net)
    images = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(y.astype("int64"))
    # AutoAttack's Square, in the keywords both references share.
    settings = {
        "norm": "Linf",
        "eps": EPSILON,
        "n_queries": QUERIES,
        "p_init": P_INIT,
        "resc_schedule": False,
    }
    references = {
        "torchattacks": lambda seed: torchattacks.Square(model, seed=seed, **settings)
    }
    if args.fra31:
        sys.path.insert(0, os.path.abspath(args.fra31))
        from autoattack.square import SquareAttack

        def fra31(seed):
            return SquareAttack(model, seed=seed, device="cpu", **settings).perturb

        references["fra31"] = fra31

    print_header(
        f"Square, AutoAttack's settings, on the {len(x)} of {args.examples} digits "
        f"that APGD-CE left ({args.method} SmallCNN, L-inf {EPSILON}): "
        "points broken (seconds)"
    )
    names = ["ours", *references]
    print(f"{'seed':>4s} " + " ".join(f"{name:>18s}" for name in names))
    totals = {name: [] for name in names}
    for seed in range(args.seeds):
        square = kr.attacks.Square(
            EPSILON, queries=QUERIES, p_init=P_INIT, schedule="autoattack", seed=seed
        )
        start = time.perf_counter()
        found = keras.ops.convert_to_numpy(square(net, x, y))
        ours = int((keras.ops.convert_to_numpy(net(found)).argmax(1) != y).sum())
        cells = [(ours, time.perf_counter() - start)]
        cells += [
            broken_by(model, images, labels, make, seed) for make in references.values()
        ]
        for name, cell in zip(names, cells):
            totals[name].append(cell[0])
        print(
            f"{seed:4d} "
            + " ".join(f"{b:>8d} ({s:6.1f} s)".rjust(18) for b, s in cells)
        )
    print(
        "range "
        + " ".join(f"{min(v):>8d} - {max(v):<6d}".rjust(18) for v in totals.values())
    )


if __name__ == "__main__":
    main()
