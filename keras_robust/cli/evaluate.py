"""`keras-robust evaluate`: robustness of a saved model on the test split."""

import os

from keras_robust import attacks
from keras_robust import evaluation
from keras_robust.cli import data
from keras_robust.cli import defaults
from keras_robust.cli import zoo_source
from keras_robust.cli.errors import UsageError
from keras_robust.cli.errors import as_usage_errors
from keras_robust.cli.output import print_outputs
from keras_robust.cli.output import print_settings

APGD_STEPS = 100
NORM_NAMES = {"linf": "L-inf", "l2": "L2", "l1": "L1"}


# --attack names of AutoAttack versions (--version picks one for "autoattack").
AUTOATTACK_VERSIONS = {
    "autoattack": "standard",
    "autoattack-plus": "plus",
    "autoattack-fast": "fast",
}


def evaluation_attacks(name, epsilon, seed, norm="linf", version=None):
    """The `attacks` argument of `evaluate_robustness` for an `--attack` name.

    Args:
        name: one of `defaults.EVAL_ATTACKS`.
        epsilon: radius of the threat model.
        seed: seed of the attacks.
        norm: "linf", "l2" or "l1".
        version: with name "autoattack" only, the AutoAttack version
            ("standard", "plus", "rand" or "fast"; default "standard").

    Returns:
        A `kr.evaluation.AutoAttack`, or a `{name: attack}` cascade.

    Raises:
        ValueError: `version` with another attack, or an attack without a
            form for `norm` (PGD and the L1 norm).
    """
    if version is not None and name != "autoattack":
        raise ValueError(
            f"--version picks the AutoAttack version of --attack autoattack; "
            f"--attack {name} has none"
        )
    if name == "pgd20":
        return {"pgd-20": attacks.PGD.for_evaluation(epsilon, norm=norm, seed=seed)}
    if name == "apgd":
        return {
            "apgd-ce": attacks.APGD(epsilon, steps=APGD_STEPS, norm=norm, seed=seed)
        }
    if name in AUTOATTACK_VERSIONS:
        return evaluation.AutoAttack(
            epsilon, norm, version=version or AUTOATTACK_VERSIONS[name], seed=seed
        )
    raise ValueError(f"unknown evaluation attack {name!r}")


def robustness_report(
    model,
    x,
    y,
    epsilon,
    attack,
    seed,
    checks,
    batch_size,
    verbose,
    state_path=None,
    norm="linf",
    version=None,
):
    """`kr.evaluation.evaluate_robustness` with the CLI's attack names."""
    return evaluation.evaluate_robustness(
        model,
        x,
        y,
        epsilon=epsilon,
        norm=norm,
        attacks=evaluation_attacks(attack, epsilon, seed, norm, version),
        batch_size=batch_size,
        seed=seed,
        checks=checks,
        verbose=min(verbose, 1),
        state_path=state_path,
    )


def threat_model(args, model):
    """(norm, epsilon, where the epsilon comes from) of an `evaluate` run.

    The norm is --norm, else the --zoo leaderboard's, else a kr.models
    model's training norm, else L-inf. The epsilon is --epsilon, else the
    leaderboard's or the model's training epsilon when their norm is the
    one evaluated, else the data set's L-inf default.

    Raises:
        UsageError: no epsilon is known for the norm.
    """
    norm = args.norm
    if norm is None and args.zoo is not None:
        norm = args.threat_model.lower()
    if norm is None:
        norm = getattr(model, "norm", None) if data.model_epsilon(model) else None
    norm = norm or "linf"
    if args.epsilon is not None:
        return norm, args.epsilon, "--epsilon"
    if args.zoo is not None and args.threat_model.lower() == norm:
        epsilon = zoo_source.zoo_epsilon(args)
        if epsilon is not None:
            return norm, epsilon, "the leaderboard's epsilon"
    epsilon = data.model_epsilon(model)
    if epsilon is not None and getattr(model, "norm", "linf") == norm:
        return norm, epsilon, "the model's training epsilon"
    if norm == "linf":
        info = defaults.DATASETS[args.dataset]
        return norm, info.epsilon, f"the {args.dataset} default"
    raise UsageError(f"--norm {norm} needs --epsilon (the defaults are L-inf radii)")


def run(args):
    """Loads the model, evaluates it, prints the report; 0 on success."""
    with as_usage_errors():
        if args.zoo is not None:  # known before the (large) checkpoint loads
            norm, epsilon, source = threat_model(args, None)
        model, description = zoo_source.load_classifier(args)
        data.check_model_fits(model, args.dataset)
        if args.zoo is None:
            norm, epsilon, source = threat_model(args, model)
        # Attacks without a form for the norm are refused before any data loads.
        evaluation_attacks(args.attack, epsilon, args.seed, norm, args.version)
        x_test, y_test = data.arrays(
            args.dataset, "test", args.data_dir, limit=args.n_samples
        )
        for path in (args.out, args.resume):
            if path is not None:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    attack_name = args.attack + (f" {args.version}" if args.version else "")
    print_settings(
        "evaluate",
        [
            ("model", description),
            ("data", f"{args.dataset} test split, {len(x_test)} images"),
            (
                "attack",
                f"{attack_name}, {NORM_NAMES[norm]} epsilon {epsilon:.6g} ({source})",
            ),
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
        norm=norm,
        version=args.version,
    )
    print(report)
    if args.out is not None:
        report.to_json(args.out)
        print_outputs([("report", args.out)])
    return 0
