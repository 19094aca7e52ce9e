"""`keras-robust analyze`: boundary margins, input gradients or energy paths of a model."""

import json
import os
import time

from keras_robust import analysis
from keras_robust.cli import data
from keras_robust.cli import defaults
from keras_robust.cli import zoo_source
from keras_robust.cli.errors import as_usage_errors
from keras_robust.cli.output import print_outputs
from keras_robust.cli.output import print_settings

WHAT = ("margins", "gradients", "energy")
GRADIENT_IMAGES = 16


def run(args):
    """Loads the model and the test images, runs the analysis; 0 on success."""
    info = defaults.DATASETS[args.dataset]
    with as_usage_errors():
        model, description = zoo_source.load_classifier(args)
        data.check_model_fits(model, args.dataset)
        x, y = data.arrays(args.dataset, "test", args.data_dir, limit=args.n_samples)
        os.makedirs(args.out, exist_ok=True)
    epsilon = args.epsilon or getattr(model, "epsilon", None) or info.epsilon
    print_settings(
        "analyze",
        [
            ("model", description),
            ("analysis", args.what),
            ("inputs", f"the first {len(x)} {args.dataset} test images"),
            ("epsilon", f"{epsilon:g} (L-inf)"),
        ],
    )
    start = time.perf_counter()
    outputs = RUNNERS[args.what](model, x, y, epsilon, args)
    print(f"Done in {time.perf_counter() - start:.1f} s.")
    print_outputs(outputs)
    return 0


def _margins(model, x, y, epsilon, args):
    result = analysis.margin_speeds(model, x, y)
    summary = result.summary(threshold=epsilon)
    mean = summary["mean_margin"]
    print(
        f"{summary['found']} of {summary['correct']} correct points have a "
        f"boundary point within the search; mean margin "
        f"{'n/a' if mean is None else f'{mean:.4f}'}; {summary['vulnerable']} "
        f"closer than {epsilon:g}, of which a share "
        f"{summary['conflicting_fraction']:.3f} move closer under a training step."
    )
    json_path = os.path.join(args.out, "margins.json")
    result.to_json(json_path, threshold=epsilon)
    plot_path = os.path.join(args.out, "margins.png")
    _plot_margins(result, epsilon, plot_path)
    return [("margins", json_path), ("plot", plot_path)]


def _plot_margins(result, threshold, path):
    from keras_robust.utils.plotting import require_matplotlib

    plt = require_matplotlib()
    figure, (histogram, scatter) = plt.subplots(1, 2, figsize=(9, 3.4))
    found = result.found
    histogram.hist(result.margin[found], bins=30, color="#6baed6")
    histogram.axvline(threshold, color="grey", linestyle="--", linewidth=0.8)
    histogram.set_xlabel(f"margin R ({result.norm})")
    histogram.set_ylabel("points")
    scatter.scatter(result.margin[found], result.speed[found], s=6)
    scatter.axhline(0.0, color="black", linewidth=0.6)
    scatter.axvline(threshold, color="grey", linestyle="--", linewidth=0.8)
    scatter.set_xlabel(f"margin R ({result.norm})")
    scatter.set_ylabel("speed dR/dt (one gradient step)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _gradients(model, x, y, epsilon, args):
    del epsilon
    count = min(GRADIENT_IMAGES, len(x))
    gradients = analysis.input_gradients(model, x[:count], y[:count])
    path = os.path.join(args.out, "gradients.png")
    analysis.save_input_gradient_grid(x[:count], gradients, path)
    print(f"Input gradients of the cross-entropy of {count} test images.")
    return [("gradient grid", path)]


def _energy(model, x, y, epsilon, args):
    path = analysis.energy_along(model, x, y, epsilon=epsilon, seed=args.seed)
    summary = path.summary()
    for name, row in summary.items():
        print(
            f"  {name:<11} mean |dE|/eps {row['roughness']:.3f}, E(x) "
            f"{row['energy_start']:.3f} -> {row['energy_end']:.3f}, accuracy at "
            f"the end {row['accuracy_end']:.3f}"
        )
    json_path = os.path.join(args.out, "energy_along.json")
    with open(json_path, "w") as handle:
        json.dump(
            {"marginal": summary, "joint": path.summary("joint"), "epsilon": epsilon},
            handle,
            indent=2,
        )
    plot_path = os.path.join(args.out, "energy_along.png")
    analysis.plot_energy_along(path, plot_path)
    return [("energy summary", json_path), ("plot", plot_path)]


RUNNERS = {"margins": _margins, "gradients": _gradients, "energy": _energy}
