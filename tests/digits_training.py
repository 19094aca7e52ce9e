"""Training on `digits` shared by the robustness tests.

Every robustness test uses the same setup, so numbers are comparable across
methods: SmallCNN 32-64-128, Adam 2e-3, batch 64, L-inf epsilon 0.2, and a
PGD-50 evaluation attack (step 0.02). Each configuration is trained once per
test process and cached.
"""

import keras
import numpy as np

import keras_robust as kr
from tests.helpers import to_numpy

EPSILON = 0.2
_TRAINED = {}


def train_on_digits(method, digits, epochs=30, steps=10, activation="relu", **kwargs):
    """Trains `method` ("standard" or a `kr.models` name) on digits.

    Args:
        method: "standard" (plain cross-entropy) or a `kr.models` class name.
        digits: the `digits` fixture.
        epochs: training epochs.
        steps: training attack steps (step size epsilon / 4).
        activation: activation of the SmallCNN (`kr.layers.activation_layer`).
        **kwargs: more arguments of the method (e.g. `beta`).

    Returns:
        (SmallCNN(10, (8, 8, 1)) classifier, history dict), cached per
        configuration.
    """
    key = (method, epochs, steps, activation, tuple(sorted(kwargs.items())))
    if key in _TRAINED:
        return _TRAINED[key]
    (x, y), _ = digits
    keras.utils.set_random_seed(0)
    net = kr.architectures.SmallCNN(10, (8, 8, 1), activation=activation)
    if method == "standard":
        model = net
        model.compile(
            optimizer=keras.optimizers.Adam(2e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            steps_per_execution=kr.backend.steps_per_execution(11),
        )
    else:
        kwargs.setdefault("step_size", EPSILON / 4)
        model = getattr(kr.models, method)(
            net, epsilon=EPSILON, steps=steps, seed=0, **kwargs
        )
        model.compile(
            optimizer=keras.optimizers.Adam(2e-3),
            steps_per_execution=kr.backend.steps_per_execution(11),
        )
    history = model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    _TRAINED[key] = (net, history.history)
    return _TRAINED[key]


def clean_and_robust_accuracy(net, digits, steps=50):
    """(clean, PGD-`steps` robust) accuracy on the digits test split."""
    _, (x_test, y_test) = digits
    attack = kr.attacks.PGD(EPSILON, step_size=0.02, steps=steps, seed=0)
    x_adv = attack(net, x_test, y_test)
    clean = np.mean(to_numpy(net(x_test)).argmax(1) == y_test)
    robust = np.mean(to_numpy(net(x_adv)).argmax(1) == y_test)
    return clean, robust
