"""kr.energy.compare_models: the side-by-side energy table and plot."""

import keras
import numpy as np
import pytest
from scipy.special import logsumexp

import keras_robust as kr

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def linear_model(scale, name):
    rng = np.random.default_rng(0)
    dense = keras.layers.Dense(10, name="logits")
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), dense], name=name
    )
    dense.kernel.assign(scale * rng.standard_normal((64, 10)).astype("float32"))
    dense.bias.assign(rng.standard_normal(10).astype("float32"))
    return model


def test_compare_models_table_follows_the_energy_definitions(digits, tmp_path):
    _, (x_test, y_test) = digits
    x, y = x_test[:48], y_test[:48]
    # A zero kernel: logits do not depend on the input, so no attack can
    # move any energy (shift exactly 0) or change a prediction.
    constant = linear_model(0.0, "constant")
    steep = linear_model(3.0, "steep")
    comparison = kr.energy.compare_models([constant, steep], x, y, epsilon=0.1)
    summary = comparison.summary()
    assert list(summary) == ["constant", "steep"]
    assert comparison.attack_names == ["untargeted", "targeted"]
    for inputs in ("untargeted", "targeted"):
        assert summary["constant"][inputs]["shift"] == 0.0
        assert (
            summary["constant"][inputs]["accuracy"]
            == summary["constant"]["natural"]["accuracy"]
        )
    logits = keras.ops.convert_to_numpy(steep(x))
    assert summary["steep"]["natural"]["mean"] == pytest.approx(
        np.mean(-logsumexp(logits, axis=-1)), rel=1e-5
    )
    assert summary["steep"]["natural"]["accuracy"] == pytest.approx(
        np.mean(logits.argmax(-1) == y)
    )
    # PGD at epsilon 0.1 moves a steep linear model's energies and errors.
    assert abs(summary["steep"]["untargeted"]["shift"]) > 1e-3
    assert (
        summary["steep"]["untargeted"]["accuracy"]
        < summary["steep"]["natural"]["accuracy"]
    )
    joint = comparison.summary("joint")
    assert joint["steep"]["natural"]["mean"] == pytest.approx(
        np.mean(-logits[np.arange(len(y)), y]), rel=1e-5
    )
    table = comparison.table()
    assert table.splitlines()[1].startswith("constant")
    assert len(table.splitlines()) == 3
    figure = kr.energy.plot_model_comparison(comparison, tmp_path / "energies.png")
    assert len(figure.axes) == 2 and (tmp_path / "energies.png").stat().st_size > 0


def test_compare_models_rejects_bad_models():
    x = np.zeros((2, 8, 8, 1), "float32")
    y = np.zeros(2, "int32")
    with pytest.raises(TypeError, match="`models` must be a dict"):
        kr.energy.compare_models(linear_model(1.0, "a"), x, y)
    with pytest.raises(ValueError, match="Two models are named 'a'"):
        kr.energy.compare_models([linear_model(1.0, "a"), linear_model(2.0, "a")], x, y)
    with pytest.raises(ValueError, match="`models` is empty"):
        kr.energy.compare_models({}, x, y)
