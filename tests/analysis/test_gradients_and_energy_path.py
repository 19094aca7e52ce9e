"""`kr.analysis.input_gradients` and `energy_along` against closed forms."""

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import to_numpy


def _linear(classes=3, features=5, seed=0):
    model = keras.Sequential([keras.Input((features,)), keras.layers.Dense(classes)])
    rng = np.random.RandomState(seed)
    weights = rng.randn(features, classes).astype("float32")
    bias = rng.randn(classes).astype("float32")
    model.set_weights([weights, bias])
    x = rng.uniform(0.2, 0.8, size=(7, features)).astype("float32")
    y = rng.randint(0, classes, size=7)
    return model, weights, bias, x, y


def _softmax(z):
    z = z - z.max(1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(1, keepdims=True)


def _logsumexp(z):
    top = z.max(1)
    return top + np.log(np.exp(z - top[:, None]).sum(1))


def test_input_gradients_of_a_linear_model_are_the_closed_form():
    model, weights, bias, x, y = _linear()
    # grad_x CE(Wx + b, y) = W (softmax(Wx + b) - onehot(y)).
    expected = (_softmax(x @ weights + bias) - np.eye(3)[y]) @ weights.T
    gradients = kr.analysis.input_gradients(model, x, y, batch_size=3)
    np.testing.assert_allclose(gradients, expected, rtol=1e-5, atol=1e-6)
    one_hot = kr.analysis.input_gradients(model, x, np.eye(3)[y])
    np.testing.assert_allclose(one_hot, expected, rtol=1e-5, atol=1e-6)


def test_gradient_images_and_grid(tmp_path):
    pytest.importorskip("matplotlib")
    gradients = np.array([[[[-2.0]], [[1.0]]], [[[0.0]], [[0.5]]]], "float32")
    images = kr.analysis.gradient_images(gradients)
    np.testing.assert_allclose(images[0, :, 0, 0], [0.0, 0.75])
    np.testing.assert_allclose(images[1, :, 0, 0], [0.5, 1.0])
    (x, y), _ = kr.datasets.load_digits()
    net = kr.architectures.SmallCNN(10, (8, 8, 1), filters=(4, 4), dense_units=8)
    grads = kr.analysis.input_gradients(net, x[:4], y[:4])
    assert grads.shape == x[:4].shape and np.all(np.isfinite(grads))
    path = kr.analysis.save_input_gradient_grid(x[:4], grads, tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 0 and str(path).endswith("g.png")
    with pytest.raises(ValueError, match="gradients"):
        kr.analysis.save_input_gradient_grid(x[:4], grads[:2], tmp_path / "h.png")


def test_energies_along_a_given_direction_equal_pointwise_evaluation():
    model, weights, bias, x, y = _linear()
    direction = np.random.RandomState(3).uniform(-0.1, 0.1, x.shape).astype("float32")
    path = kr.analysis.energy_along(
        model, x, y, epsilon=0.1, directions={"mine": direction}, points=5, batch_size=4
    )
    for k, t in enumerate(np.linspace(0, 1, 5)):
        logits = np.clip(x + t * direction, 0, 1) @ weights + bias
        np.testing.assert_allclose(
            path.energies["mine"]["marginal"][:, k], -_logsumexp(logits), rtol=1e-5
        )
        np.testing.assert_allclose(
            path.energies["mine"]["joint"][:, k], -logits[np.arange(7), y], rtol=1e-5
        )
        assert (path.energies["mine"]["correct"][:, k] == (logits.argmax(1) == y)).all()
    marginal = path.energies["mine"]["marginal"]
    expected = np.abs(np.diff(marginal, axis=1)).sum(1) / 0.1
    np.testing.assert_allclose(path.roughness()["mine"], expected, rtol=1e-6)
    assert path.summary()["mine"]["roughness"] == pytest.approx(expected.mean())


def test_the_untargeted_direction_raises_the_loss(tmp_path):
    model, weights, bias, x, y = _linear()
    path = kr.analysis.energy_along(model, x, y, epsilon=0.05, points=3, seed=1)
    assert path.directions == ["untargeted", "targeted", "random"]
    energies = path.energies["untargeted"]
    # CE(f(x), y) = E(x, y) - E(x): PGD on the cross-entropy raises it.
    loss = energies["joint"] - energies["marginal"]
    assert np.all(loss[:, -1] > loss[:, 0])
    for name in path.directions:
        assert np.all(np.isfinite(path.energies[name]["marginal"]))
    pytest.importorskip("matplotlib")
    written = kr.analysis.plot_energy_along({"linear": path}, tmp_path / "e.png")
    assert (tmp_path / "e.png").stat().st_size > 0 and str(written).endswith("e.png")


def test_bad_input_is_refused():
    model, _, _, x, y = _linear()
    with pytest.raises(ValueError, match="directions"):
        kr.analysis.energy_along(model, x, y, 0.1, directions=("sideways",))
    with pytest.raises(ValueError, match="shaped like `x`"):
        kr.analysis.energy_along(model, x, y, 0.1, directions={"d": x[:2]})
    with pytest.raises(ValueError, match="points"):
        kr.analysis.energy_along(model, x, y, 0.1, points=1)
    with pytest.raises(ValueError, match="epsilon"):
        kr.analysis.energy_along(model, x, y, -0.1)
    with pytest.raises(ValueError):
        kr.analysis.input_gradients(model, x, y[:3])
    assert to_numpy(model(x)).shape == (7, 3)
