"""Time and robust accuracy of PGD-20, APGD-CE and AutoAttack on a digits model.

    KERAS_BACKEND=tensorflow python benchmarks/evaluation.py [--epochs 30]

Trains a SmallCNN 32-64-128 with PGD-AT on scikit-learn's digits (L-inf
epsilon 0.2, PGD-10 step 0.05, Adam 2e-3, batch 64), then evaluates the
450 held-out digits at epsilon 0.2 with each attack through
`kr.evaluation.evaluate_robustness` (sanity checks off, so the time is the
attack's; compilation included). The last row runs the checks as well.
"""

import argparse
import time

import keras

import keras_robust as kr

EPSILON = 0.2


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    (x, y), (x_test, y_test) = kr.datasets.load_digits()
    keras.utils.set_random_seed(0)
    net = kr.architectures.SmallCNN(10, (8, 8, 1))
    model = kr.models.AT(net, epsilon=EPSILON, step_size=EPSILON / 4, steps=10, seed=0)
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        steps_per_execution=kr.backend.steps_per_execution(11),
    )
    model.fit(x, y, batch_size=64, epochs=args.epochs, verbose=0)
    evaluations = {
        "PGD-20 (step eps/4)": [kr.attacks.PGD(EPSILON, steps=20, seed=0)],
        "APGD-CE (100)": [kr.attacks.APGD(EPSILON, steps=100, seed=0)],
        "AutoAttack fast": "fast",
        "AutoAttack standard": "standard",
    }
    print(
        f"backend {keras.backend.backend()}, {len(x_test)} test digits, eps {EPSILON}"
    )
    print(
        f"{'evaluation':28s} {'clean':>6s} {'robust':>7s} {'seconds':>8s}  per attack"
    )
    for checks in (False, True):
        for name, attacks in evaluations.items():
            if checks and attacks != "standard":
                continue
            start = time.perf_counter()
            report = kr.evaluation.evaluate_robustness(
                model,
                x_test,
                y_test,
                epsilon=EPSILON,
                attacks=attacks,
                batch_size=512,
                checks=checks,
                verbose=0,
            )
            seconds = time.perf_counter() - start
            label = name + (" + checks" if checks else "")
            steps = ", ".join(f"{k} {v:.3f}" for k, v in report.attack_accuracy.items())
            print(
                f"{label:28s} {report.clean_accuracy:6.3f} "
                f"{report.robust_accuracy:7.3f} {seconds:8.1f}  {steps}",
                flush=True,
            )
            if checks:
                print(report)


if __name__ == "__main__":
    main()
