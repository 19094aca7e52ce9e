"""The energy view of adversarial training on `digits`: gaps, phases, attacks.

Trains PGD-AT, TRADES and WEAT (same network and budget) with
`kr.callbacks.EnergyPhaseLogger`, writes each run's CSV and phase plot, then
reports how untargeted and targeted attacks move the energies of the test
images (`kr.energy.attack_energy_report`) and plots the histograms.

    KERAS_BACKEND=jax python examples/energy_phases_digits.py --out runs/energy
"""

import argparse
import os

import keras

import keras_robust as kr


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/energy", help="output directory")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--epsilon", type=float, default=0.2)
    parser.add_argument("--methods", nargs="+", default=["AT", "TRADES", "WEAT"])
    args = parser.parse_args()

    (x, y), (x_test, y_test) = kr.datasets.load_digits()
    for method in args.methods:
        keras.utils.set_random_seed(0)
        net = kr.architectures.SmallCNN(10, (8, 8, 1))
        model = getattr(kr.models, method)(
            net, epsilon=args.epsilon, step_size=args.epsilon / 4, steps=10, seed=0
        )
        model.compile(
            optimizer=keras.optimizers.Adam(2e-3),
            steps_per_execution=kr.backend.steps_per_execution(11),
        )
        directory = os.path.join(args.out, method.lower())
        logger = kr.callbacks.EnergyPhaseLogger(log_dir=directory, verbose=1)
        model.fit(
            x, y, batch_size=64, epochs=args.epochs, verbose=0, callbacks=[logger]
        )
        last = logger.rows[-1]
        print(
            f"{method}: final gap {last['energy_gap']:+.3f} "
            f"(E(x) {last['energy_natural']:.2f}, E(x*) {last['energy_adversarial']:.2f}), "
            f"phase {last['energy_phase']}, phase starts {logger.rule.phase_starts}"
        )
        report = kr.energy.attack_energy_report(
            net,
            x_test,
            y_test,
            attacks={
                "PGD-20": kr.attacks.PGD(args.epsilon, steps=20, seed=0),
                "PGD-20 targeted": kr.attacks.PGD(
                    args.epsilon, steps=20, targeted=True, seed=0
                ),
            },
        )
        print(report)
        kr.energy.plot_energy_histograms(
            report, os.path.join(directory, "energy_histograms.png")
        )
        print(f"wrote {directory}/energy_phases.png, energy_histograms.png\n")


if __name__ == "__main__":
    main()
