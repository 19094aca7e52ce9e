"""RobustValidation: logged robust accuracy, best weights, checkpoints."""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import tiny_cnn
from tests.helpers import to_numpy


@pytest.fixture
def small(digits):
    (x, y), (xt, yt) = digits
    return x[:256], y[:256], xt[:96], yt[:96]


def robust_accuracy(net, attack, x, y):
    return np.mean(to_numpy(net(attack(net, x, y))).argmax(1) == y)


def test_logs_and_restores_the_most_robust_weights(tmp_path, small):
    x, y, xt, yt = small
    attack = kr.attacks.PGD(0.2, step_size=0.05, steps=5, random_start="none")
    path = tmp_path / "runs" / "best.weights.h5"  # a folder that does not exist yet
    callback = kr.callbacks.RobustValidation(
        (xt, yt), attack=attack, filepath=str(path), verbose=0
    )
    model = kr.models.AT(tiny_cnn(), epsilon=0.2, step_size=0.05, steps=3, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=[callback])
    values = history.history["val_robust_accuracy"]
    assert len(values) == 4
    assert callback.best == pytest.approx(max(values))
    # The weights left in the model are the best epoch's.
    assert robust_accuracy(model.classifier, attack, xt, yt) == pytest.approx(
        callback.best
    )
    assert path.exists()
    reloaded = kr.models.AT(tiny_cnn(), epsilon=0.2, step_size=0.05, steps=3, seed=0)
    reloaded(xt[:1])
    reloaded.load_weights(str(path))
    np.testing.assert_allclose(
        to_numpy(reloaded.predict(xt, verbose=0)),
        to_numpy(model.predict(xt, verbose=0)),
        atol=1e-6,
    )


def test_every_n_epochs_and_dataset_input(small):
    import tensorflow as tf

    x, y, xt, yt = small
    dataset = tf.data.Dataset.from_tensor_slices((xt, yt)).batch(32)
    callback = kr.callbacks.RobustValidation(dataset, every=2, verbose=0)
    model = kr.models.TRADES(tiny_cnn(), epsilon=0.2, step_size=0.05, steps=2)
    model.compile(optimizer="adam")
    model.fit(x, y, batch_size=64, epochs=3, verbose=0, callbacks=[callback])
    assert [epoch for epoch, _ in callback.history] == [1, 2]  # every 2nd + last


def test_plain_keras_model_needs_epsilon(small):
    x, y, xt, yt = small
    net = tiny_cnn()
    net.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    with pytest.raises(ValueError, match="epsilon"):
        net.fit(
            x,
            y,
            epochs=1,
            verbose=0,
            callbacks=[kr.callbacks.RobustValidation((xt, yt), verbose=0)],
        )
    callback = kr.callbacks.RobustValidation((xt, yt), epsilon=0.1, verbose=0)
    history = net.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert 0.0 <= history.history["val_robust_accuracy"][0] <= 1.0


def test_bad_arguments(small):
    _, _, xt, yt = small
    with pytest.raises(ValueError, match="filepath"):
        kr.callbacks.RobustValidation((xt, yt), filepath="best.h5")
    with pytest.raises(ValueError, match="every"):
        kr.callbacks.RobustValidation((xt, yt), every=0)
    with pytest.raises(TypeError, match="attack"):
        kr.callbacks.RobustValidation((xt, yt), attack="pgd")
    with pytest.raises(ValueError, match="epsilon"):
        kr.callbacks.RobustValidation((xt, yt), epsilon=-1.0)
