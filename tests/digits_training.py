"""Training on `digits` shared by the robustness tests.

Every robustness test uses the same setup, so numbers are comparable across
methods: SmallCNN 32-64-128, Adam 2e-3, batch 64, L-inf epsilon 0.2, and a
PGD-50 evaluation attack (step 0.02); the training attack is PGD-5 (step
epsilon / 4) for 15 epochs, the standard network trains 30. Each configuration is trained once per
test run: the first process (xdist worker) that needs it trains it and
saves its weights and history to a folder that the run's workers share
(`set_cache_dir`, called by tests/conftest.py); the others wait on a file
lock and load them. Training is seeded, so a loaded model is the very model
the process would have trained itself.
"""

import contextlib
import fcntl
import hashlib
import json
from pathlib import Path

import keras
import numpy as np

import keras_robust as kr
from tests.helpers import to_numpy

EPSILON = 0.2
_TRAINED = {}
_ACCURACY = {}
_CACHE = {"dir": None}


def set_cache_dir(path):
    """Shares trained models through `path` (None: in this process only)."""
    _CACHE["dir"] = None if path is None else Path(path)


# Epochs of the shared trainings: a standard network is cheap (no attack) and
# its test assertions compare against a fully trained one; an adversarial
# method gets 15 epochs of PGD-5. With that budget (docs in
# tests/models/test_digits_robustness.py) every robustness assertion keeps a
# margin of at least 0.08 on TensorFlow and JAX, at a quarter of the cost of
# 30 epochs of PGD-10.
STANDARD_EPOCHS = 30
ROBUST_EPOCHS = 15
ROBUST_STEPS = 5


def train_on_digits(
    method, digits, epochs=None, steps=ROBUST_STEPS, activation="relu", **kwargs
):
    """Trains `method` ("standard" or a `kr.models` name) on digits.

    Args:
        method: "standard" (plain cross-entropy) or a `kr.models` class name.
        digits: the `digits` fixture.
        epochs: training epochs (default STANDARD_EPOCHS for "standard",
            ROBUST_EPOCHS for a method).
        steps: training attack steps (step size epsilon / 4).
        activation: activation of the SmallCNN (`kr.layers.activation_layer`).
        **kwargs: more arguments of the method (e.g. `beta`).

    Returns:
        (SmallCNN(10, (8, 8, 1)) classifier, history dict), cached per
        configuration.
    """
    if epochs is None:
        epochs = STANDARD_EPOCHS if method == "standard" else ROBUST_EPOCHS
    key = (method, epochs, steps, activation, tuple(sorted(kwargs.items())))
    if key not in _TRAINED:
        if _CACHE["dir"] is None:
            _TRAINED[key] = _train(key, digits)
        else:
            _TRAINED[key] = _train_or_load(key, digits, _CACHE["dir"])
    return _TRAINED[key]


def _train(key, digits):
    method, epochs, steps, activation, kwargs = key
    (x, y), _ = digits
    net = _seeded_net(method, activation)
    if method == "standard":
        model = net
    else:
        kwargs = dict(kwargs)
        kwargs.setdefault("step_size", EPSILON / 4)
        model = getattr(kr.models, method)(
            net, epsilon=EPSILON, steps=steps, seed=0, **kwargs
        )
        model.compile(
            optimizer=keras.optimizers.Adam(2e-3),
            steps_per_execution=kr.backend.steps_per_execution(11),
        )
    history = model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    return net, history.history


def _seeded_net(method, activation):
    """The seeded SmallCNN (compiled for plain cross-entropy if "standard")."""
    keras.utils.set_random_seed(0)
    net = kr.architectures.SmallCNN(10, (8, 8, 1), activation=activation)
    if method != "standard":
        return net
    net.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=kr.backend.steps_per_execution(11),
    )
    return net


def _train_or_load(key, digits, folder):
    name = hashlib.sha256(repr(key).encode()).hexdigest()[:20]
    weights, history = folder / f"{name}.weights.h5", folder / f"{name}.json"
    folder.mkdir(parents=True, exist_ok=True)
    with _exclusive(folder / f"{name}.lock"):
        if history.exists():
            net = _seeded_net(key[0], key[3])
            net.load_weights(weights)
            return net, json.loads(history.read_text())
        net, logs = _train(key, digits)
        net.save_weights(weights)
        # Written last: its presence says the weights are complete.
        history.write_text(
            json.dumps({k: list(map(float, v)) for k, v in logs.items()})
        )
        return net, logs


@contextlib.contextmanager
def _exclusive(path):
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def clean_and_robust_accuracy(net, digits, steps=50):
    """(clean, PGD-`steps` robust) accuracy on the digits test split.

    Cached per network (the attack is seeded, so a second call would
    compute the same numbers).
    """
    key = (id(net), steps)
    if key in _ACCURACY and _ACCURACY[key][0] is net:
        return _ACCURACY[key][1]
    _, (x_test, y_test) = digits
    attack = kr.attacks.PGD(EPSILON, step_size=0.02, steps=steps, seed=0)
    x_adv = attack(net, x_test, y_test)
    clean = np.mean(to_numpy(net(x_test)).argmax(1) == y_test)
    robust = np.mean(to_numpy(net(x_adv)).argmax(1) == y_test)
    _ACCURACY[key] = (net, (clean, robust))
    return clean, robust
