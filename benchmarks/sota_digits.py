"""Does the weight EMA help on digits? EMA vs raw weights after TRADES training.

    python benchmarks/sota_digits.py [--epochs 15] [--seeds 0 1]

TRADES (beta 6, eps 0.2, PGD-10 step 0.05) on the 8x8 digits with a
SmallCNN, SGD Nesterov 0.05, batch 64, `kr.callbacks.WeightEMA(0.995)` with
a warm-up of 2.5% of the steps (the recipe's). At the end, PGD-20 accuracy
(eps 0.2) on the digits test split of the raw weights (captured at the last
epoch's end, before Keras writes the average into the model) and of the EMA
weights. Prints one row per seed.
"""

import argparse


def run(seed, epochs):
    import keras

    import keras_robust as kr
    from keras_robust.callbacks import common

    keras.utils.set_random_seed(seed)
    (x, y), (x_test, y_test) = kr.datasets.load_digits()
    net = kr.architectures.SmallCNN(10, (8, 8, 1), filters=(16, 32), dense_units=64)
    model = kr.models.TRADES(net, epsilon=0.2, step_size=0.05, steps=10, seed=seed)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True, use_ema=True)
    )
    steps = epochs * -(-len(x) // 64)
    raw = {}

    class KeepRaw(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raw["weights"] = self.model.get_weights()

    model.fit(
        x,
        y,
        batch_size=64,
        epochs=epochs,
        verbose=0,
        callbacks=[
            kr.callbacks.WeightEMA(0.995, warmup_steps=0.025 * steps),
            KeepRaw(),
        ],
    )
    attack = kr.attacks.PGD(0.2, step_size=0.05, steps=20, seed=0)
    ema_accuracy = common.robust_accuracy(net, attack, x_test, y_test)
    model.set_weights(raw["weights"])
    raw_accuracy = common.robust_accuracy(net, attack, x_test, y_test)
    return raw_accuracy, ema_accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    print(f"TRADES on digits, {args.epochs} epochs; PGD-20 accuracy at eps 0.2")
    print(f"{'seed':<6}{'raw':>8}{'EMA':>8}")
    for seed in args.seeds:
        raw, ema = run(seed, args.epochs)
        print(f"{seed:<6}{raw:>8.4f}{ema:>8.4f}", flush=True)


if __name__ == "__main__":
    main()
