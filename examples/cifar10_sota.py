"""CIFAR-10 to the state of the art: Wang et al. (2023)'s WRN-28-10 recipe.

    python examples/cifar10_sota.py --extra edm_data/cifar10/1m.npz --out runs/sota
    python examples/cifar10_sota.py --smoke   # the whole pipeline on mock data

The recipe of DM-Improves-AT (`train-wa.py`, README command, and
`gowal21uncovering/utils/watrain.py`), each piece a Keras-native part:

- TRADES, beta 5, epsilon 8/255, PGD-10 step 2/255 (`kr.models.TRADES`),
  label smoothing 0.1 on its cross-entropy (`label_smoothing=0.1`);
- batches of 512 of which 70% are generated images with their labels
  (`kr.datasets.load_generated` memory-maps the `.npz`; `kr.datasets.mix`),
  random crop (4) and flip of real and generated images alike;
- DeepMind's Swish WRN-28-10 (`kr.architectures.DMWideResNet`);
- SGD, Nesterov momentum 0.9, coupled weight decay 5e-4, learning rate 0.2
  on a one-cycle schedule stepped once per epoch (PyTorch `OneCycleLR`,
  pct_start 0.025: the reference's "cosinew");
- weight EMA with decay 0.995 after a warm-up of 2.5% of the steps
  (`kr.callbacks.WeightEMA`); validation, checkpoint and the final model
  use the EMA weights;
- 400 epochs of ceil(50,000 / 512) = 98 batches; robust accuracy on the
  first 1,024 training images held out (the reference's `--validation`),
  AutoAttack "standard" on the test set at the end.

Deviation: `kr.architectures.with_coupled_weight_decay` also decays the
BatchNorm scales and offsets, which the reference leaves out (`watrain.py`,
`group_weight`, lines 58-68).

Outputs in `--out`: model.keras (EMA weights), history.csv, report.json.
`--smoke` runs the same code on 64 mock CIFAR-10 images (`tfds.testing.
mock_data`) and a small generated file it writes, with a WRN-10-1, two
batches of 16 and 2-step attacks (training, validation, and a PGD-2
evaluation on 16 images instead of AutoAttack): it checks the plumbing, not
the numbers.
"""

import argparse
import contextlib
import math
import os
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--backend", choices=["tensorflow", "jax", "torch"], default=None
    )
    parser.add_argument(
        "--extra", default=None, help="generated-data .npz (image, label)"
    )
    parser.add_argument("--extra-fraction", type=float, default=0.7)
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=0.2)
    parser.add_argument("--out", default="runs/cifar10_sota", help="output directory")
    parser.add_argument("--data-dir", default=None, help="prepared tfds data folder")
    parser.add_argument("--eval-samples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny run on mock data")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    import keras

    import keras_robust as kr

    settings = smoke_settings(args) if args.smoke else full_settings(args)
    os.makedirs(args.out, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    print(f"backend {keras.backend.backend()}; outputs in {args.out}")
    start = time.perf_counter()

    with settings["data_context"]:
        plain = dict(augment=False, shuffle=False, data_dir=args.data_dir)
        x_train, y_train = arrays(kr.datasets.load("cifar10", "train", 1024, **plain))
        x_test, y_test = arrays(
            kr.datasets.load("cifar10", "test", 256, **plain), settings["eval_samples"]
        )
    held = settings["held_out"]
    (x_val, y_val), real = (
        (x_train[:held], y_train[:held]),
        (x_train[held:], y_train[held:]),
    )
    extra_path = args.extra or settings["make_extra"](args.out)
    extra = kr.datasets.load_generated(
        extra_path, image_shape=(32, 32, 3), num_classes=10
    )
    train = kr.datasets.mix(
        real,
        extra,
        extra_fraction=args.extra_fraction,
        batch_size=args.batch_size,
        steps_per_epoch=settings["steps_per_epoch"],
        augment=True,
        seed=args.seed,
    )
    steps_per_epoch = settings["steps_per_epoch"] or math.ceil(
        len(real[0]) / args.batch_size
    )

    net = kr.architectures.with_coupled_weight_decay(settings["net"](kr), 5e-4)
    model = kr.models.TRADES(
        net,
        epsilon=8 / 255,
        step_size=2 / 255,
        steps=settings["attack_steps"],
        beta=5.0,
        label_smoothing=0.1,
        seed=args.seed,
    )
    epochs = settings["epochs"]
    # Stepped once per epoch; a run shorter than 80 epochs takes the first
    # epochs of the 80-epoch cycle (pct_start 0.025 needs 2 rising epochs).
    one_cycle = kr.schedules.OneCycle(
        args.learning_rate, total_steps=max(epochs, 80), pct_start=0.025
    )
    model.compile(
        optimizer=keras.optimizers.SGD(
            args.learning_rate, momentum=0.9, nesterov=True, use_ema=True
        )
    )
    model.fit(
        train,
        epochs=epochs,
        callbacks=[
            # The reference steps its OneCycleLR once per epoch.
            keras.callbacks.LearningRateScheduler(
                lambda epoch: float(one_cycle(epoch))
            ),
            kr.callbacks.WeightEMA(
                0.995, warmup_steps=0.025 * epochs * steps_per_epoch
            ),
            kr.callbacks.RobustValidation(
                (x_val, y_val),
                attack=settings["val_attack"](kr),
                every=settings["val_every"],
            ),
            keras.callbacks.CSVLogger(os.path.join(args.out, "history.csv")),
        ],
        verbose=2,
    )
    model.save(os.path.join(args.out, "model.keras"))
    report = kr.evaluation.evaluate_robustness(
        model,
        x_test,
        y_test,
        epsilon=8 / 255,
        attacks=settings["autoattack"](kr),
        checks=settings["checks"],
    )
    print(report)
    report.to_json(os.path.join(args.out, "report.json"))
    print(f"done in {time.perf_counter() - start:.0f} s")


def full_settings(args):
    if args.extra is None:
        raise SystemExit(
            "--extra: the path of a generated-data .npz (e.g. DM-Improves-AT's "
            "cifar10/1m.npz); --smoke runs on mock data without one."
        )
    return {
        "data_context": contextlib.nullcontext(),
        "held_out": 1024,
        "make_extra": None,
        "steps_per_epoch": None,
        "net": lambda kr: kr.architectures.DMWideResNet(28, 10),
        "epochs": args.epochs,
        "attack_steps": 10,
        "val_every": 25,  # the reference's --adv-eval-freq
        "val_attack": lambda kr: None,  # PGD-20 at the model's epsilon
        "eval_samples": args.eval_samples,
        "autoattack": lambda kr: "standard",
        "checks": True,
    }


def smoke_settings(args):
    import numpy as np
    import tensorflow_datasets as tfds

    args.batch_size = 16

    def make_extra(out):
        path = os.path.join(out, "generated_smoke.npz")
        rng = np.random.default_rng(args.seed)
        np.savez(
            path,
            image=rng.integers(0, 256, (256, 32, 32, 3), dtype=np.uint8),
            label=rng.integers(0, 10, 256),
        )
        return path

    return {
        "data_context": tfds.testing.mock_data(num_examples=64),
        "held_out": 16,
        "make_extra": make_extra,
        "steps_per_epoch": 2,
        "net": lambda kr: kr.architectures.DMWideResNet(10, 1),
        "epochs": 1,
        "attack_steps": 2,
        "val_every": 1,
        # Two-step attacks: on JAX every attack is one more XLA compile.
        "val_attack": lambda kr: kr.attacks.PGD(8 / 255, steps=2, seed=0),
        "eval_samples": 16,
        "autoattack": lambda kr: kr.attacks.PGD(8 / 255, steps=2),
        "checks": False,
    }


def arrays(dataset, limit=None):
    """Numpy (images, labels) of a dataset, up to `limit` examples."""
    import numpy as np

    images, labels, count = [], [], 0
    for x, y in dataset:
        images.append(np.asarray(x))
        labels.append(np.asarray(y))
        count += len(labels[-1])
        if limit is not None and count >= limit:
            break
    images, labels = np.concatenate(images), np.concatenate(labels)
    return (images, labels) if limit is None else (images[:limit], labels[:limit])


if __name__ == "__main__":
    main()
