"""with_coupled_weight_decay: PyTorch SGD's coupled L2 on every weight."""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import tiny_cnn
from tests.helpers import to_numpy


def _decayed(model):
    """Weights PyTorch SGD decays: all trainable ones."""
    return [to_numpy(w) for w in model.trainable_weights]


def test_loss_is_half_the_decay_times_the_squared_norm_of_every_weight():
    net = tiny_cnn(batch_norm=True)
    decayed = kr.architectures.with_coupled_weight_decay(net, 5e-4)
    for original, copy in zip(net.get_weights(), decayed.get_weights()):
        np.testing.assert_array_equal(original, copy)
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(to_numpy(decayed(x)), to_numpy(net(x)), atol=1e-6)
    decayed(x)
    expected = 5e-4 / 2 * sum(float(np.sum(w**2)) for w in _decayed(decayed))
    assert float(sum(to_numpy(loss) for loss in decayed.losses)) == pytest.approx(
        expected, rel=1e-5
    )
    # Every trainable weight (kernels, biases, BatchNorm gamma and beta) is in.
    assert len(decayed.losses) == len(decayed.trainable_weights)


def test_sgd_step_equals_the_coupled_update():
    rng = np.random.default_rng(1)
    inputs = keras.Input((4,))
    net = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    decayed = kr.architectures.with_coupled_weight_decay(net, 0.1)
    before = [to_numpy(w) for w in decayed.trainable_weights]
    decayed.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    x = rng.normal(size=(8, 4)).astype("float32")
    y = np.zeros((8, 3), "float32")
    # The same model without decay takes the data-loss step from the same start.
    plain = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    plain.set_weights(net.get_weights())
    plain.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    decayed.fit(x, y, batch_size=8, epochs=1, verbose=0)
    plain.fit(x, y, batch_size=8, epochs=1, verbose=0)
    # PyTorch: w <- w - lr (g + wd w): the decayed copy moves further by lr wd w.
    for start, a, b in zip(before, decayed.trainable_weights, plain.trainable_weights):
        np.testing.assert_allclose(
            to_numpy(a), to_numpy(b) - 0.5 * 0.1 * start, atol=1e-6
        )


def test_bad_arguments():
    with pytest.raises(ValueError, match="`weight_decay`"):
        kr.architectures.with_coupled_weight_decay(tiny_cnn(), -1.0)
    with pytest.raises(TypeError, match="`model`"):
        kr.architectures.with_coupled_weight_decay(keras.layers.Dense(2), 1e-4)
