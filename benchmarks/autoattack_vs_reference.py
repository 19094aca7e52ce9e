"""Our AutoAttack against an independent port of the reference, on the same weights.

    python benchmarks/autoattack_vs_reference.py [--examples 450]
        [--methods AT TRADES] [--norms linf l2 l1] [--backends torch jax tensorflow]
        [--fra31 PATH] [--seeds N]

For each training method and threat model, a SmallCNN 32-64-128 is trained
once on scikit-learn's digits (15 epochs of PGD-5, step epsilon / 4, Adam
2e-3, batch 64, seed 0; L-inf epsilon 0.2, L2 epsilon 1.0; TRADES beta 6)
and its weights are saved. Each backend's worker then loads those weights
and attacks the first `--examples` held-out digits, all in one batch, with
`kr.evaluation.AutoAttack(version="standard", seed=0)` twice: the first call
includes compilation ("cold"), the second runs the compiled attacks
("warm"). The torch worker also attacks the very same Keras model (on
Keras' torch backend a Keras model is a `torch.nn.Module`) with
torchattacks 3.5.1, a PyTorch port of fra31/auto-attack that nobody here
wrote, with the reference's standard budgets set explicitly (torchattacks'
own defaults are 10 iterations): APGD-CE and APGD-T 100 iterations, 9
targets, FAB-T 100 iterations, 9 targets, Square 5,000 queries, p_init 0.8,
`resc_schedule=False` (AutoAttack's Square), seed 0, each attack on the
points every earlier one missed (torchattacks' MultiAttack, timed per
stage here).

With `--fra31 PATH` (a checkout of github.com/fra31/auto-attack, the
authors' own code) a second reference runs too: that package's
`AutoAttack(norm, eps, version="standard", seed=0, device="cpu")
.run_standard_evaluation` on the same model, one batch, its per-stage
accuracies and times read from its log. torchattacks has no L1 APGD or
Square, so `--norms l1` needs `--fra31` (and compares with it alone): the
L1 rows attack the L2-trained weights (our PGD training has no L1 form) at
L1 epsilon 2.0.

With `--seeds N` (N > 1) ours on every backend and fra31 (`--fra31`) also
run with seeds 1, ..., N-1 (ours: one more call each, compiled), and a
second table gives each one's accuracy after every stage over seeds
0, ..., N-1 (minimum, maximum): how far the random starts alone move
each implementation, against which the differences of the first table
read. (torchattacks draws the same torch numbers as fra31: seed 0 only.)

The table gives, per stage, the robust accuracy of each and the wall time
(seconds) of each stage. torchattacks installs apart, without its pinned
dependencies (torch is already there; it imports nothing else at import):
`pip install --no-deps torchattacks==3.5.1`. Training runs on torch, and
`--backends` must include torch, where the reference runs.
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _workers import print_header  # noqa: E402
from _workers import run_worker  # noqa: E402

EPSILON = {"linf": 0.2, "l2": 1.0, "l1": 2.0}
# The norm the weights attacked at each norm were trained at.
TRAINING_NORM = {"linf": "linf", "l2": "l2", "l1": "l2"}
STAGES = ("clean", "apgd-ce", "apgd-t", "fab-t", "square")
REFERENCES = ("torchattacks", "fra31")
FRA31_NORMS = {"linf": "Linf", "l2": "L2", "l1": "L1"}
TORCHATTACKS_NORMS = ("linf", "l2")


def train(method, norm, path):
    import keras

    import keras_robust as kr

    (x, y), _ = kr.datasets.load_digits()
    keras.utils.set_random_seed(0)
    net = kr.architectures.SmallCNN(10, (8, 8, 1))
    epsilon = EPSILON[norm]
    options = {"beta": 6.0} if method == "TRADES" else {}
    model = getattr(kr.models, method)(
        net,
        epsilon=epsilon,
        norm=norm,
        step_size=epsilon / 4,
        steps=5,
        seed=0,
        **options,
    )
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(x, y, batch_size=64, epochs=15, verbose=0)
    net.save_weights(path)
    return {}


class _Timed:
    """An attack whose calls add their wall time to `seconds[name]`."""

    def __init__(self, name, attack, seconds):
        self._name, self._attack, self._seconds = name, attack, seconds

    def __getattr__(self, attribute):
        return getattr(self._attack, attribute)

    def __call__(self, *args):
        import keras

        start = time.perf_counter()
        # JAX returns before the attack has run (asynchronous dispatch): the
        # stage's time must include waiting for its result.
        result = keras.tree.map_structure(
            keras.ops.convert_to_numpy, self._attack(*args)
        )
        self._seconds[self._name] = (
            self._seconds.get(self._name, 0.0) + time.perf_counter() - start
        )
        return result


def ours(x, y, net, norm, seed=0, calls=2):
    import keras_robust as kr
    from keras_robust.evaluation.autoattack import run_cascade

    autoattack = kr.evaluation.AutoAttack(EPSILON[norm], norm=norm, seed=seed)
    runs = []
    for _ in range(calls):
        seconds = {}

        def timed(num_classes, seconds=seconds):
            attacks = autoattack.attacks(num_classes)
            return {name: _Timed(name, a, seconds) for name, a in attacks.items()}

        _, after = run_cascade(timed, net, x, y)
        runs.append(
            {
                "accuracy": {k: float(v.mean()) for k, v in after.items()},
                "seconds": seconds,
            }
        )
    return runs


def channels_first(net):
    """The Keras NHWC classifier behind the references' NCHW interface."""
    import torch

    class ChannelsFirst(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, images):
            return self.net(images.permute(0, 2, 3, 1), training=False)

    return ChannelsFirst(net).eval()


def fra31_reference(x, y, net, norm, checkout, seed=0):
    """The authors' AutoAttack on the same model: stages and times from its log."""
    import re

    import torch

    sys.path.insert(0, checkout)
    from autoattack import AutoAttack

    model = channels_first(net)
    images = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(y.astype("int64"))
    with tempfile.TemporaryDirectory() as folder:
        log = os.path.join(folder, "log.txt")
        adversary = AutoAttack(
            model,
            norm=FRA31_NORMS[norm],
            eps=EPSILON[norm],
            version="standard",
            seed=seed,
            device="cpu",
            log_path=log,
        )
        start = time.perf_counter()
        adversary.run_standard_evaluation(images, labels, bs=len(x))
        total = time.perf_counter() - start
        with open(log) as file:
            text = file.read()
    accuracy = {
        "clean": float(re.search(r"initial accuracy: ([\d.]+)%", text)[1]) / 100
    }
    seconds, before = {}, 0.0
    for name, percent, elapsed in re.findall(
        r"robust accuracy after ([\w-]+): ([\d.]+)% \(total time ([\d.]+) s\)", text
    ):
        stage = name.lower()
        accuracy[stage] = float(percent) / 100
        seconds[stage] = float(elapsed) - before
        before = float(elapsed)
    # The log stops at the stage that breaks every point; later ones add 0.
    for stage in STAGES[1:]:
        accuracy.setdefault(stage, accuracy[STAGES[STAGES.index(stage) - 1]])
    # Checks and set-up before the first attack, in the first stage's time.
    seconds[STAGES[1]] = seconds.get(STAGES[1], 0.0) + total - before
    return {"accuracy": accuracy, "seconds": seconds}


def torchattacks_line_up(model, norm_name, epsilon, seed=0):
    """torchattacks' attacks at AutoAttack-standard's budgets.

    torchattacks' own `AutoAttack` keeps its attacks' default 10 steps
    (fra31's standard runs 100), so the line-up is built here.
    """
    import torchattacks

    common = {"norm": norm_name, "eps": epsilon, "seed": seed}
    return {
        "apgd-ce": torchattacks.APGD(model, steps=100, loss="ce", **common),
        "apgd-t": torchattacks.APGDT(model, steps=100, n_classes=10, **common),
        "fab-t": torchattacks.FAB(
            model, steps=100, multi_targeted=True, n_classes=10, **common
        ),
        "square": torchattacks.Square(
            model, n_queries=5000, p_init=0.8, resc_schedule=False, **common
        ),
    }


def torchattacks_cascade(model, images, labels, attacks, sync=lambda: None):
    """Each attack on the points still robust: ({stage: accuracy}, {stage: s})."""
    import torch

    with torch.no_grad():
        robust = model(images).argmax(1) == labels
    accuracy = {"clean": float(robust.float().mean())}
    seconds = {}
    for stage, attack in attacks.items():
        remaining = torch.nonzero(robust).flatten()
        start = time.perf_counter()
        if len(remaining):
            found = attack(images[remaining], labels[remaining])
            with torch.no_grad():
                broken = model(found).argmax(1) != labels[remaining]
            robust[remaining[broken]] = False
        sync()
        seconds[stage] = time.perf_counter() - start
        accuracy[stage] = float(robust.float().mean())
    return accuracy, seconds


def reference(x, y, net, norm):
    import torch

    model = channels_first(net)
    attacks = torchattacks_line_up(model, FRA31_NORMS[norm], EPSILON[norm])
    images = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(y.astype("int64"))
    accuracy, seconds = torchattacks_cascade(model, images, labels, attacks)
    return {"accuracy": accuracy, "seconds": seconds}


def attack(path, norm, examples, with_reference, fra31, seeds=1):
    import keras

    import keras_robust as kr

    _, (x_test, y_test) = kr.datasets.load_digits()
    x, y = x_test[:examples].astype("float32"), y_test[:examples]
    net = kr.architectures.SmallCNN(10, (8, 8, 1))
    net.load_weights(path)
    result = {"backend": keras.backend.backend()}
    result["cold"], result["warm"] = ours(x, y, net, norm)
    if with_reference and norm in TORCHATTACKS_NORMS:
        result["torchattacks"] = reference(x, y, net, norm)
    if with_reference and fra31:
        result["fra31"] = fra31_reference(x, y, net, norm, fra31)
    if seeds > 1:
        # Accuracies per seed: ours (compiled by now), and fra31's.
        spread = {"ours": [result["warm"]["accuracy"]]}
        for seed in range(1, seeds):
            spread["ours"].append(ours(x, y, net, norm, seed, calls=1)[0]["accuracy"])
        if with_reference and fra31:
            spread["fra31"] = [result["fra31"]["accuracy"]] + [
                fra31_reference(x, y, net, norm, fra31, seed)["accuracy"]
                for seed in range(1, seeds)
            ]
        result["seed_spread"] = spread
    return result


def worker(arguments):
    task, *rest = arguments
    if task == "train":
        method, norm, path = rest
        result = train(method, norm, path)
    else:
        path, norm, examples, with_reference, fra31, seeds = rest
        result = attack(
            path, norm, int(examples), with_reference == "1", fra31, int(seeds)
        )
    print(json.dumps(result))


def print_table(method, norm, results, examples):
    print()
    print_header(
        f"{method}, {norm} epsilon {EPSILON[norm]}, {examples} digits: "
        "robust accuracy after each stage (seconds of the stage)"
    )
    columns, references = [], []
    for result in results:
        columns.append((f"{result['backend']} cold", result["cold"]))
        columns.append((f"{result['backend']} warm", result["warm"]))
        references += [(name, result[name]) for name in REFERENCES if name in result]
    ours_count = len(columns)
    columns += references
    print(f"{'stage':8s} " + " ".join(f"{label:>24s}" for label, _ in columns))
    for stage in STAGES:
        cells = []
        for _, run in columns:
            seconds = run["seconds"].get(stage)
            time_text = "" if seconds is None else f" ({seconds:7.1f} s)"
            cells.append(f"{run['accuracy'][stage]:.4f}{time_text}".rjust(24))
        print(f"{stage:8s} " + " ".join(cells))
    totals = [sum(run["seconds"].values()) for _, run in columns]
    print(f"{'total s':8s} " + " ".join(f"{t:24.1f}" for t in totals))
    for reference_name, reference_run in references:
        reference_final = reference_run["accuracy"]["square"]
        reference_total = sum(reference_run["seconds"].values())
        for label, run in columns[:ours_count]:
            worst = max(
                abs(run["accuracy"][s] - reference_run["accuracy"][s]) for s in STAGES
            )
            print(
                f"{label}: final {run['accuracy']['square'] - reference_final:+.4f} "
                f"against {reference_name}, largest stage difference {worst:.4f}, "
                f"time {sum(run['seconds'].values()) / reference_total:.2f}x"
            )
    spreads = []
    for result in results:
        for name, runs in result.get("seed_spread", {}).items():
            label = result["backend"] if name == "ours" else name
            spreads.append((label, runs))
    if spreads:
        print()
        print_header(
            f"the same, seeds 0-{len(spreads[0][1]) - 1}: robust accuracy after "
            "each stage, lowest - highest over the seeds"
        )
        print(f"{'stage':8s} " + " ".join(f"{label:>16s}" for label, _ in spreads))
        for stage in STAGES:
            cells = []
            for _, runs in spreads:
                values = [run[stage] for run in runs]
                cells.append(f"{min(values):.4f}-{max(values):.4f}".rjust(16))
            print(f"{stage:8s} " + " ".join(cells))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=argparse.REMAINDER)
    parser.add_argument("--examples", type=int, default=450)
    parser.add_argument("--methods", nargs="+", default=["AT", "TRADES"])
    parser.add_argument(
        "--norms", nargs="+", choices=tuple(EPSILON), default=["linf", "l2"]
    )
    parser.add_argument("--backends", nargs="+", default=["torch", "jax", "tensorflow"])
    parser.add_argument(
        "--fra31",
        default="",
        help="a checkout of fra31/auto-attack: its AutoAttack runs as a second reference",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="also run ours and fra31 with seeds 1..N-1 and print their spread",
    )
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker)
        return
    if "torch" not in args.backends:
        parser.error("--backends must include torch: the reference runs there.")
    if "l1" in args.norms and not args.fra31:
        parser.error("--norms l1 needs --fra31: torchattacks has no L1 APGD or Square.")
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}.")
    if args.fra31 and not os.path.isdir(os.path.join(args.fra31, "autoattack")):
        parser.error(f"--fra31 {args.fra31!r} is not a fra31/auto-attack checkout.")
    script = os.path.abspath(__file__)
    with tempfile.TemporaryDirectory() as folder:
        for method in args.methods:
            for norm in args.norms:
                trained_at = TRAINING_NORM[norm]
                path = os.path.join(folder, f"{method}-{trained_at}.weights.h5")
                result, error = (
                    ({}, None)
                    if os.path.exists(path)
                    else run_worker(
                        script, "torch", ["train", method, trained_at, path]
                    )
                )
                if result is None:
                    sys.exit(f"training {method} {norm} failed: {error}")
                results = []
                for backend in args.backends:
                    result, error = run_worker(
                        script,
                        backend,
                        [
                            "attack",
                            path,
                            norm,
                            str(args.examples),
                            "1" if backend == "torch" else "0",
                            os.path.abspath(args.fra31) if args.fra31 else "",
                            str(args.seeds),
                        ],
                        error_chars=2000,
                    )
                    if result is None:
                        sys.exit(
                            f"{backend} worker failed (a worker killed for memory "
                            f"leaves no error; try fewer --examples): {error}"
                        )
                    results.append(result)
                print_table(method, norm, results, args.examples)


if __name__ == "__main__":
    main()
