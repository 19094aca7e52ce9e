"""`joint_forward=True`: one forward pass over [x; x*] instead of two."""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import tiny_cnn
from tests.helpers import to_numpy

# They share `compute_logits`; two objectives (KL, SCORE's distance) suffice.
JOINT_METHODS = ["TRADES", "SCORE"]


def _one_sgd_step(method, joint_forward, x, y, **kwargs):
    keras.utils.set_random_seed(0)
    net = tiny_cnn()
    model = getattr(kr.models, method)(
        net,
        epsilon=0.2,
        step_size=0.05,
        steps=2,
        seed=0,
        joint_forward=joint_forward,
        **kwargs,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    logs = model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    return net.get_weights(), logs.history


@pytest.mark.parametrize("method", JOINT_METHODS)
def test_same_step_as_two_passes_without_batchnorm(digits, method):
    (x, y), _ = digits
    x, y = x[:32], y[:32]
    separate_weights, separate_logs = _one_sgd_step(method, False, x, y)
    joint_weights, joint_logs = _one_sgd_step(method, True, x, y)
    for separate, joint in zip(separate_weights, joint_weights):
        np.testing.assert_allclose(joint, separate, atol=2e-6)
    for key, values in separate_logs.items():
        np.testing.assert_allclose(joint_logs[key], values, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("joint_forward, passes", [(False, 2), (True, 1)])
def test_batchnorm_moving_statistics_move_once_toward_the_mixed_batch(
    digits, joint_forward, passes
):
    """Moving mean after one step: 1 - 0.9**passes of the (mixed) batch mean.

    With a tiny epsilon x* == x to 1e-6, so the natural, adversarial and
    mixed batch means coincide and only the number of updates differs.
    """
    (x, y), _ = digits
    x, y = x[:32], y[:32]
    classifier = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.BatchNormalization(momentum=0.9),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model = kr.models.TRADES(
        classifier,
        epsilon=1e-6,
        step_size=1e-7,
        steps=1,
        joint_forward=joint_forward,
        moving_statistics="two_pass",
    )
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    moving_mean = float(to_numpy(classifier.layers[0].moving_mean)[0])
    np.testing.assert_allclose(moving_mean, (1 - 0.9**passes) * x.mean(), rtol=1e-4)


@pytest.mark.parametrize("method", ["AT", "FastAT", "DyART"])
def test_methods_without_two_training_passes_reject_it(method):
    with pytest.raises(ValueError, match="joint_forward"):
        getattr(kr.models, method)(tiny_cnn(), joint_forward=True)


def test_non_boolean_rejected():
    with pytest.raises(TypeError, match="joint_forward"):
        kr.models.TRADES(tiny_cnn(), joint_forward="yes")


def test_config_round_trip(tmp_path):
    model = kr.models.MART(tiny_cnn(), joint_forward=True)
    assert model.get_config()["joint_forward"] is True
    path = str(tmp_path / "mart.keras")
    model.save(path)
    assert keras.saving.load_model(path).joint_forward is True
