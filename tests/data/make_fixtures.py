"""Writes the saved-model fixtures of the installed keras_robust version.

    python tests/data/make_fixtures.py           # writes this version's missing files
    python tests/data/make_fixtures.py --force   # overwrites this version's files

Each fixture is saved under TensorFlow (`tests/test_safe_loading.py` loads it
on every backend) and named after the version that wrote it, e.g.
`trades_smallcnn_v0_1_0.keras`, with

- `<name>.json`: what the test checks after loading (class, hyperparameters,
  attack and optimizer configuration, the classifier's layer classes);
- `<name>_inputs.npy`: the first 8 test images of `kr.datasets.load_digits()`;
- `<name>_logits.npy`: the model's predictions on them when it was saved.

Files of other versions are never touched: they are what later versions are
checked against. Run it once per release that changes saving or loading.
"""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"  # before Keras is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

DATA = Path(__file__).resolve().parent
sys.path.insert(0, str(DATA.parents[1]))  # the repository root

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_robust as kr  # noqa: E402

VERSION = "v" + kr.__version__.replace(".", "_")
TRAIN_SAMPLES, BATCH_SIZE, EPOCHS = 512, 32, 2  # 32 optimizer steps


def trades_smallcnn():
    """A TRADES-wrapped SmallCNN with SmoothReLU and BatchNorm, trained 32
    steps on digits with SGD (momentum) on a OneCycle schedule."""
    keras.utils.set_random_seed(0)
    (x, y), (x_test, _) = kr.datasets.load_digits()
    net = kr.architectures.SmallCNN(
        10,
        (8, 8, 1),
        activation="smooth_relu",
        filters=(4,),
        dense_units=0,
        batch_norm=True,
    )
    model = kr.models.TRADES(
        net, beta=3.0, epsilon=0.1, step_size=0.05, steps=2, seed=7
    )
    schedule = kr.schedules.OneCycle(0.1, total_steps=40, pct_start=0.25)
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9), metrics=["accuracy"]
    )
    model.fit(
        x[:TRAIN_SAMPLES],
        y[:TRAIN_SAMPLES],
        batch_size=BATCH_SIZE,
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
    )
    return model, x_test[:8]


FIXTURES = {"trades_smallcnn": trades_smallcnn}


def description(model, name):
    optimizer = model.optimizer
    optimizer_config = optimizer.get_config()
    return {
        "written_by": {
            "keras_robust": kr.__version__,
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
        },
        "recipe": f"tests/data/make_fixtures.py: {name}()",
        "class_name": type(model).__name__,
        "attributes": {
            key: getattr(model, key)
            for key in (
                "epsilon",
                "step_size",
                "steps",
                "norm",
                "beta",
                "seed",
                "attack_training_mode",
            )
        },
        "attack": {
            "class_name": type(model.attack).__name__,
            "config": model.attack.get_config(),
        },
        "eval_attack": {
            "class_name": type(model.eval_attack).__name__,
            "config": model.eval_attack.get_config(),
        },
        "classifier_layers": [
            type(layer).__name__ for layer in model.classifier.layers
        ],
        "optimizer": {
            "class_name": type(optimizer).__name__,
            "iterations": int(keras.ops.convert_to_numpy(optimizer.iterations)),
            "momentum": optimizer_config["momentum"],
            "learning_rate": optimizer_config["learning_rate"],
        },
    }


def write(name, build, force):
    stem = f"{name}_{VERSION}"
    paths = {
        "model": DATA / f"{stem}.keras",
        "description": DATA / f"{stem}.json",
        "inputs": DATA / f"{stem}_inputs.npy",
        "logits": DATA / f"{stem}_logits.npy",
    }
    if not force and all(path.exists() for path in paths.values()):
        print(f"{stem}: exists (use --force to overwrite)")
        return
    model, inputs = build()
    logits = keras.ops.convert_to_numpy(model.predict(inputs, verbose=0))
    model.save(paths["model"])
    np.save(paths["inputs"], np.asarray(inputs, dtype="float32"))
    np.save(paths["logits"], np.asarray(logits, dtype="float32"))
    info = description(model, name)
    info["files"] = {key: path.name for key, path in paths.items()}
    paths["description"].write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    for path in paths.values():
        print(f"{path.relative_to(DATA.parents[1])}: {path.stat().st_size} bytes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="overwrite")
    args = parser.parse_args()
    for name, build in FIXTURES.items():
        write(name, build, args.force)


if __name__ == "__main__":
    main()
