"""Does AWP reduce robust overfitting on digits? Best minus last robust accuracy.

    python benchmarks/awp_digits.py [--epochs 150] [--seeds 0] [--gamma 0.01]
        [--warmup-epochs 10] [--train-size N]

PGD adversarial training (eps 0.2, PGD-10 step 0.05) of a SmallCNN with
filters (32, 64) and 128 dense units on the digits train split (1,347
images), SGD momentum 0.9 at 0.05, divided by 10 at half of the epochs
(the step decay after which robust overfitting shows in Rice et al. 2020
and in the AWP paper), batch 64, with and without
`kr.models.AWP(gamma, warmup_epochs)` (gamma 1e-2 as the reference's
AT-AWP; 10 warm-up epochs as its TRADES-AWP: from the random initialisation
this SmallCNN, which has no BatchNorm, collapsed to a constant prediction
with gamma 1e-2 and no warm-up, see benchmarks/README.md). After every epoch PGD-20 accuracy (eps 0.2, step 0.05) on the
digits test split (450 images), through `kr.callbacks.RobustValidation`
(which only reads it here: `restore_best_weights=False`). Prints, per run,
the best epoch's and the last epoch's robust accuracy and their gap (the
robust overfitting AWP is meant to reduce), the clean test accuracy at the
end, and the wall time.

`--train-size N` trains on the first N images of the train split only
(robust overfitting grows as the training set shrinks).

Held-out selection would use a validation split; this script reads the test
split on purpose, to measure the gap, not to select a model.
"""

import argparse
import time


def run(seed, epochs, gamma, warmup_epochs, train_size=None):
    import keras

    import keras_robust as kr

    keras.utils.set_random_seed(seed)
    (x, y), (x_test, y_test) = kr.datasets.load_digits()
    x, y = x[:train_size], y[:train_size]
    net = kr.architectures.SmallCNN(10, (8, 8, 1), filters=(32, 64), dense_units=128)
    awp = kr.models.AWP(gamma, warmup_epochs) if gamma > 0 else None
    model = kr.models.AT(net, epsilon=0.2, step_size=0.05, steps=10, seed=seed, awp=awp)
    steps_per_epoch = -(-len(x) // 64)
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        [steps_per_epoch * (epochs // 2)], [0.05, 0.005]
    )
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9))
    attack = kr.attacks.PGD(0.2, step_size=0.05, steps=20, seed=0)
    validation = kr.callbacks.RobustValidation(
        (x_test, y_test),
        attack=attack,
        restore_best_weights=False,
        verbose=0,
    )
    start = time.perf_counter()
    history = model.fit(
        x, y, batch_size=64, epochs=epochs, verbose=0, callbacks=[validation]
    )
    seconds = time.perf_counter() - start
    robust = history.history["val_robust_accuracy"]
    logits = keras.ops.convert_to_numpy(net(x_test, training=False))
    clean = float((logits.argmax(-1) == y_test).mean())
    best = max(range(len(robust)), key=robust.__getitem__)
    return {
        "best": robust[best],
        "best_epoch": best + 1,
        "last": robust[-1],
        "clean": clean,
        "seconds": seconds,
        "curve": robust,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--gamma", type=float, default=0.01)
    parser.add_argument("--warmup-epochs", type=int, default=10)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument(
        "--curves", action="store_true", help="also print every epoch's accuracy"
    )
    args = parser.parse_args()
    import keras

    print(
        f"AT on {args.train_size or 'all'} train digits ({keras.backend.backend()}), "
        f"{args.epochs} epochs, lr/10 at "
        f"epoch {args.epochs // 2}; AWP warm-up {args.warmup_epochs} epochs; PGD-20 "
        "test accuracy at eps 0.2"
    )
    print(
        f"{'seed':<6}{'AWP gamma':>10}{'best':>8}{'(epoch)':>8}{'last':>8}"
        f"{'best-last':>10}{'clean':>8}{'time s':>8}"
    )
    for seed in args.seeds:
        for gamma in (0.0, args.gamma):
            r = run(seed, args.epochs, gamma, args.warmup_epochs, args.train_size)
            print(
                f"{seed:<6}{gamma:>10g}{r['best']:>8.4f}{r['best_epoch']:>8d}"
                f"{r['last']:>8.4f}{r['best'] - r['last']:>10.4f}{r['clean']:>8.4f}"
                f"{r['seconds']:>8.0f}",
                flush=True,
            )
            if args.curves:
                print("      " + " ".join(f"{v:.3f}" for v in r["curve"]))


if __name__ == "__main__":
    main()
