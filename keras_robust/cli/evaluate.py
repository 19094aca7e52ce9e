"""`keras-robust evaluate`: robustness of a saved model on the test split."""

import os

from keras_robust import attacks
from keras_robust import evaluation
from keras_robust.cli import data
from keras_robust.cli import defaults
from keras_robust.cli import zoo_source
from keras_robust.cli.errors import as_usage_errors
from keras_robust.cli.output import print_outputs
from keras_robust.cli.output import print_settings

APGD_STEPS = 100


def evaluation_attacks(name, epsilon, seed):
    """The `attacks` argument of `evaluate_robustness` for an `--attack` name.

    Args:
        name: one of `defaults.EVAL_ATTACKS`.
        epsilon: L-inf radius.
        seed: seed of the attacks.

    Returns:
        "standard", "plus", "fast", or a `{name: attack}` cascade.
    """
    if name == "pgd20":
        return {"pgd-20": attacks.PGD.for_evaluation(epsilon, seed=seed)}
    if name == "apgd":
        return {"apgd-ce": attacks.APGD(epsilon, steps=APGD_STEPS, seed=seed)}
    if name == "autoattack":
        return "standard"
    if name == "autoattack-plus":
        return "plus"
    if name == "autoattack-fast":
        return "fast"
    raise ValueError(f"unknown evaluation attack {name!r}")


def robustness_report(
    model, x, y, epsilon, attack, seed, checks, batch_size, verbose, state_path=None
):
    """`kr.evaluation.evaluate_robustness` with the CLI's attack names."""
    return evaluation.evaluate_robustness(
        model,
        x,
        y,
        epsilon=epsilon,
        attacks=evaluation_attacks(attack, epsilon, seed),
        batch_size=batch_size,
        seed=seed,
        checks=checks,
        verbose=min(verbose, 1),
        state_path=state_path,
    )


def run(args):
    """Loads the model, evaluates it, prints the report; 0 on success."""
    info = defaults.DATASETS[args.dataset]
    with as_usage_errors():
        zoo_source.check_evaluable(args)
        model, description = zoo_source.load_classifier(args)
        data.check_model_fits(model, args.dataset)
        epsilon = args.epsilon
        source = "--epsilon"
        if epsilon is None:
            epsilon = zoo_source.zoo_epsilon(args)
            source = "the leaderboard's epsilon"
        if epsilon is None:
            epsilon = data.model_epsilon(model)
            source = "the model's training epsilon"
        if epsilon is None:
            epsilon, source = info.epsilon, f"the {args.dataset} default"
        x_test, y_test = data.arrays(
            args.dataset, "test", args.data_dir, limit=args.n_samples
        )
        for path in (args.out, args.resume):
            if path is not None:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    print_settings(
        "evaluate",
        [
            ("model", description),
            ("data", f"{args.dataset} test split, {len(x_test)} images"),
            ("attack", f"{args.attack}, L-inf epsilon {epsilon:.6g} ({source})"),
        ],
    )
    report = robustness_report(
        model,
        x_test,
        y_test,
        epsilon,
        args.attack,
        args.seed,
        not args.no_checks,
        args.batch_size,
        args.verbose,
        state_path=args.resume,
    )
    print(report)
    if args.out is not None:
        report.to_json(args.out)
        print_outputs([("report", args.out)])
    return 0
