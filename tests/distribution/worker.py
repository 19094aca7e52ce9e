"""Trains on two devices and on one in a fresh process, for tests/distribution.

Device counts are fixed when TensorFlow or JAX starts, so every scenario runs
here, in a subprocess started by the tests with the test's KERAS_BACKEND:

    python -m tests.distribution.worker mirrored OUT.json
    python -m tests.distribution.worker multi_worker OUT.json INDEX PORT,PORT
    python -m tests.distribution.worker data_parallel OUT.json
    python -m tests.distribution.worker multi_process OUT.json INDEX PORT

- `mirrored` (TensorFlow): 2 logical CPU devices, `tf.distribute.MirroredStrategy`.
- `multi_worker` (TensorFlow): one of 2 local worker processes (one CPU
  replica each) of a `tf.distribute.MultiWorkerMirroredStrategy`, the cluster
  given by TF_CONFIG on localhost ports.
- `data_parallel` (JAX): 2 virtual CPU devices
  (`--xla_force_host_platform_device_count=2`), `keras.distribution.DataParallel`.
- `multi_process` (JAX): one of 2 local processes (one CPU device each)
  joined by `keras.distribution.initialize` (the coordinator on a localhost
  port), `keras.distribution.DataParallel` over both; data come from a
  `tf.data.Dataset` of global batches, which Keras shards per process.

Each writes a JSON report of raw results (histories, evaluate logs, final
weights); the tests compare them. The same global batches (16 examples, 8 per
replica) reach the one-device and the two-device runs. `mirrored` and
`data_parallel` also train on one device, the reference of every mode.
"""

import json
import os
import sys
import time

START = time.perf_counter()
SECONDS = {}  # since start, after each part

MODE = sys.argv[1]
OUT = sys.argv[2]
if MODE == "data_parallel":
    os.environ["XLA_FLAGS"] = " ".join(
        [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=2"]
    ).strip()
elif MODE in ("multi_worker", "multi_process"):
    INDEX, PORTS = int(sys.argv[3]), sys.argv[4].split(",")
if MODE == "multi_worker":
    os.environ["TF_CONFIG"] = json.dumps(
        {
            "cluster": {"worker": [f"localhost:{port}" for port in PORTS]},
            "task": {"type": "worker", "index": INDEX},
        }
    )
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if MODE in ("mirrored", "multi_worker"):
    import tensorflow as tf

    if MODE == "mirrored":
        # Before anything else touches the devices.
        tf.config.set_logical_device_configuration(
            tf.config.list_physical_devices("CPU")[0],
            [tf.config.LogicalDeviceConfiguration()] * 2,
        )
        STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    else:
        # Must be created before any other TensorFlow op runs.
        STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()
else:
    import jax
    import keras

    if MODE == "multi_process":
        # Before any JAX computation.
        keras.distribution.initialize(
            job_addresses=f"localhost:{PORTS[0]}", num_processes=2, process_id=INDEX
        )

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_robust as kr  # noqa: E402
from tests.helpers import Batches  # noqa: E402

BATCH = 16  # global batch: 8 examples per replica
EPOCHS = 2
SIZE = 64  # 4 batches per epoch
POISONED = 12  # an example of the second replica's half of a batch
METHODS = ("AT", "TRADES")


def data():
    (x, y), _ = kr.datasets.load_digits()
    return x[:SIZE], y[:SIZE]


def pgd_without_random_start():
    # Deterministic, so one and two devices see the same x*. CE for TRADES
    # too: its KL attack started at x itself has an exactly zero gradient
    # there, whose sign is rounding noise, which differs with the batch split.
    return kr.attacks.PGD(0.1, step_size=0.03, steps=2, loss="ce", random_start="none")


def build(method, random_start=False, awp_and_ema=False):
    """A method around a classifier without BatchNorm (per-replica statistics).

    `awp_and_ema`: with adversarial weight perturbation and an optimizer
    weight EMA (decayed by `kr.callbacks.WeightEMA`, see `callbacks`).
    """
    keras.utils.set_random_seed(1)
    net = kr.architectures.SmallCNN(10, (8, 8, 1), filters=(4,), dense_units=16)
    kwargs = {}
    if not random_start:
        kwargs = {
            "attack": pgd_without_random_start(),
            "eval_attack": pgd_without_random_start(),
        }
    if awp_and_ema:
        kwargs["awp"] = kr.models.AWP(gamma=0.05)
    model = getattr(kr.models, method)(
        net,
        epsilon=0.1,
        step_size=0.03,
        steps=2,
        seed=3,
        on_nonfinite_batch="skip",
        **kwargs,
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9, use_ema=awp_and_ema),
        metrics=["accuracy"],
    )
    return model


def callbacks(model):
    """`fit` callbacks: the EMA's decay rule where the optimizer keeps one."""
    return [kr.callbacks.WeightEMA(0.9)] if model.optimizer.use_ema else []


def to_numpy(variable):
    value = variable.value
    if MODE == "multi_process":  # a global array: read this process's copy
        value = value.addressable_data(0)
    return np.asarray(keras.ops.convert_to_numpy(value))


def numpy_weights(model):
    return [to_numpy(w) for w in model.classifier.weights]


def state(model):
    return [to_numpy(v) for v in model.variables + model.optimizer.variables]


def batches(x, y):
    """`fit`/`evaluate` arguments for global batches of BATCH examples."""
    if MODE == "multi_process":
        # Numpy arrays would be taken as each process's own share of the
        # batch; a batched tf.data.Dataset is split between the processes.
        import tensorflow as tf

        return {"x": tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)}
    return {"x": x, "y": y, "batch_size": BATCH}


def restore(model, values):
    for variable, value in zip(model.variables + model.optimizer.variables, values):
        variable.assign(value)


def floats(logs):
    return {
        name: [float(v) for v in value] if isinstance(value, list) else float(value)
        for name, value in logs.items()
    }


def train(model, x, y, evaluate=True):
    history = model.fit(
        **batches(x, y),
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        callbacks=callbacks(model),
    )
    report = {
        "history": floats(history.history),
        "weights": [w.tolist() for w in numpy_weights(model)],
    }
    if evaluate:
        report["evaluate"] = floats(
            model.evaluate(**batches(x, y), verbose=0, return_dict=True)
        )
    return report


def nonfinite_batch(model, x, y, check_raise=True):
    """One NaN in the second replica's half of batch 1: the step is skipped.

    Reports whether the state after [b0, bad, b2, b3] equals the state after
    [b0, b2, b3] from the same start (same compiled steps), bit for bit, the
    logs of both, and (`check_raise`) the error of the default policy.
    """
    model.fit(**batches(x[:BATCH], y[:BATCH]), verbose=0)  # compiles
    start = state(model)
    bad = x.copy()
    bad[BATCH + POISONED, 3, 4, 0] = np.nan
    poisoned = model.fit(**batches(bad, y), shuffle=False, verbose=0)
    poisoned_eval = model.evaluate(**batches(bad, y), verbose=0, return_dict=True)
    after_poisoned = state(model)
    restore(model, start)
    clean = np.r_[0:BATCH, 2 * BATCH : SIZE]
    reference = model.fit(**batches(x[clean], y[clean]), shuffle=False, verbose=0)
    reference_eval = model.evaluate(
        **batches(x[clean], y[clean]), verbose=0, return_dict=True
    )
    after_reference = state(model)
    report = {
        "same_state_as_without_the_batch": all(
            np.array_equal(a, b)
            for a, b in zip(after_poisoned, after_reference, strict=True)
        ),
        "all_finite": all(bool(np.all(np.isfinite(v))) for v in after_poisoned),
        "history": floats(poisoned.history),
        "reference_history": floats(reference.history),
        "evaluate": floats(poisoned_eval),
        "reference_evaluate": floats(reference_eval),
    }
    if check_raise:
        # The default policy stops fit with an error after the bad batch. Its
        # batches come from a PyDataset, so that only the step sees the NaN
        # (fit checks arrays, and a dataset's first batch, before it starts).
        model.on_nonfinite_batch = "raise"
        pieces = [(bad[i : i + BATCH], y[i : i + BATCH]) for i in range(0, SIZE, BATCH)]
        try:
            model.fit(Batches(pieces), shuffle=False, verbose=0)
            report["raise_policy_error"] = None
        except ValueError as error:
            report["raise_policy_error"] = str(error)
    return report


# ---- TensorFlow ----------------------------------------------------------


def run_tensorflow():
    x, y = data()
    report = {"replicas": STRATEGY.num_replicas_in_sync, "methods": {}}
    for method in METHODS:
        runs = {}
        if MODE == "mirrored":
            runs["single"] = train(build(method), x, y)
        with STRATEGY.scope():
            model = build(method)
        # Multi-worker: the test step is exercised by AT's alone (saves time).
        evaluate = MODE == "mirrored" or method == "AT"
        runs["distributed"] = train(model, x, y, evaluate)
        report["methods"][method] = runs
        SECONDS[method] = time.perf_counter() - START
        if method == "AT":  # its compiled steps serve again
            report["nonfinite"] = nonfinite_batch(model, x, y, MODE == "mirrored")
            SECONDS["nonfinite"] = time.perf_counter() - START
    if MODE == "mirrored":
        # AWP's ascent gradient is the global batch's on every replica; the
        # EMA (written into the weights when fit ends) is kept per replica.
        runs = {"single": train(build("AT", awp_and_ema=True), x, y)}
        with STRATEGY.scope():
            model = build("AT", awp_and_ema=True)
        runs["distributed"] = train(model, x, y)
        report["methods"]["AT_AWP_EMA"] = runs
        SECONDS["AT_AWP_EMA"] = time.perf_counter() - START
        # The method's own random start (the seed state is mirrored) trains.
        with STRATEGY.scope():
            model = build("AT", random_start=True)
        history = model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
        report["random_start_history"] = floats(history.history)
    return report


# ---- JAX -------------------------------------------------------------------


def record_data_sharding(model, seen):
    """Records, when the step compiles, over how many devices x is split."""
    step = model.train_step

    def train_step(state, data):
        jax.debug.inspect_array_sharding(
            data[0],
            callback=lambda sharding: seen.append(
                {
                    "devices": len(sharding.device_set),
                    "replicated": bool(sharding.is_fully_replicated),
                }
            ),
        )
        return step(state, data)

    model.train_step = train_step


def run_multi_process():
    """This process's view of a 2-process DataParallel run (no reference)."""
    x, y = data()
    report = {
        "replicas": len(jax.devices()),
        "local_devices": len(jax.local_devices()),
        "methods": {},
    }
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    for method in METHODS:
        model = build(method)
        evaluate = method == "AT"  # the test step, once (saves time)
        report["methods"][method] = {"distributed": train(model, x, y, evaluate)}
        SECONDS[method] = time.perf_counter() - START
        if method == "AT":
            report["nonfinite"] = nonfinite_batch(model, x, y, check_raise=False)
            SECONDS["nonfinite"] = time.perf_counter() - START
    return report


def run_jax():
    x, y = data()
    devices = jax.devices()
    report = {"replicas": len(devices), "methods": {}}
    distribution = keras.distribution.DataParallel(devices=devices)
    cases = [(method, method, {}) for method in METHODS]
    # JAX draws the random start of the global batch, as on one device.
    cases.append(("AT_random_start", "AT", {"random_start": True}))
    cases.append(("AT_AWP_EMA", "AT", {"awp_and_ema": True}))
    for name, method, options in cases:
        runs = {"single": train(build(method, **options), x, y)}
        keras.distribution.set_distribution(distribution)
        try:
            model = build(method, **options)
            sharding = []
            record_data_sharding(model, sharding)
            runs["distributed"] = train(model, x, y)
            runs["data_sharding"] = sharding
            runs["weight_devices"] = len(model.classifier.weights[0].value.devices())
            SECONDS[name] = time.perf_counter() - START
            if name == "AT":  # its compiled steps serve again
                report["nonfinite"] = nonfinite_batch(model, x, y)
                SECONDS["nonfinite"] = time.perf_counter() - START
        finally:
            keras.distribution.set_distribution(None)
        report["methods"][name] = runs
    return report


if __name__ == "__main__":
    SECONDS["imports"] = time.perf_counter() - START
    run = {"data_parallel": run_jax, "multi_process": run_multi_process}.get(
        MODE, run_tensorflow
    )
    result = run()
    SECONDS["total"] = time.perf_counter() - START
    result["seconds"] = SECONDS
    with open(OUT, "w") as file:
        json.dump(result, file)
