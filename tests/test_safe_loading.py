"""Every saved object loads with `safe_mode=True`, and old files keep loading.

`model.save(path)` then `keras.saving.load_model(path, safe_mode=True)` for
every method of `kr.models` (a tiny SmallCNN, compiled, trained one step so
that the optimizer has state; TRADES with `kr.schedules.OneCycle` inside its
optimizer), every layer of `kr.layers` inside a model and every builder of
`kr.architectures`: the loaded object predicts identically and its configuration
(epsilon, beta, ...) and state come back. The saved configurations hold no
code (no `__lambda__`), and a Lambda layer is refused, so `safe_mode` is in
force. The fixtures under `tests/data` were saved under TensorFlow by earlier
versions (`tests/data/make_fixtures.py`); they must load on every backend and
reproduce the predictions stored with them.
"""

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_robust as kr
from tests.helpers import to_numpy

DATA = Path(__file__).resolve().parent / "data"
FIXTURES = sorted(DATA.glob("*.keras"))


def _config_text(path):
    with zipfile.ZipFile(path) as archive:
        return archive.read("config.json").decode("utf-8")


def _save_and_load(model, path):
    model.save(path)
    assert "__lambda__" not in _config_text(path)  # no serialized bytecode
    return keras.saving.load_model(path, safe_mode=True)


def _plain(config):
    """The config as its JSON file holds it (tuples become lists)."""
    return json.loads(json.dumps(config))


def _tiny_net(**kwargs):
    kwargs.setdefault("filters", (4,))
    kwargs.setdefault("dense_units", 0)
    return kr.architectures.SmallCNN(10, (8, 8, 1), **kwargs)


def _perturb_weights(model, seed=0):
    """Moves every weight (BatchNorm statistics included) off its initial
    value, so that a weight left behind by loading shows: scaled by 0.8 to
    1.2, plus 0 to 0.02 where it is 0 (deep nets keep moderate outputs)."""
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.get_weights():
        factor = rng.uniform(0.8, 1.2, size=np.shape(w))
        shift = np.where(w == 0, rng.uniform(0.0, 0.02, size=np.shape(w)), 0.0)
        weights.append((w * factor + shift).astype(w.dtype))
    model.set_weights(weights)


def _logits(model, x):
    """Inference-mode outputs, eagerly (no per-model compilation)."""
    outputs = to_numpy(model(keras.ops.convert_to_tensor(x), training=False))
    assert np.all(np.isfinite(outputs)) and np.abs(outputs).max() < 1e4
    return outputs


def _assert_same_weights(saved, loaded):
    saved, loaded = saved.get_weights(), loaded.get_weights()
    assert len(saved) == len(loaded)
    for before, after in zip(saved, loaded):
        np.testing.assert_array_equal(before, after)


# ---- the methods -------------------------------------------------------------

# Non-default hyperparameters, each read back from the loaded model.
METHODS = {
    "AT": dict(
        norm="l2", epsilon=0.5, step_size=0.2, steps=1, attack_training_mode=False
    ),
    "TRADES": dict(beta=2.5, epsilon=0.1, step_size=0.03, steps=1),
    "MART": dict(beta=4.0, epsilon=0.1, steps=1),
    "WEAT": dict(beta=3.0, variant="nat", normalize_weights=True, epsilon=0.1, steps=1),
    "SCORE": dict(
        beta=2.0,
        distance="l1.5",
        clip_value=0.05,
        label_smoothing=0.1,
        epsilon=0.1,
        steps=1,
    ),
    "FastAT": dict(epsilon=0.1, step_size=0.1),
    "DyART": dict(
        epsilon=0.1,
        temperature=3.0,
        r0=0.2,
        alpha=2.0,
        lam=50.0,
        search_steps=2,
        burn_in_epochs=1,
    ),
}


def _one_cycle():
    return kr.schedules.OneCycle(
        0.2, total_steps=10, pct_start=0.3, div_factor=10.0, final_div_factor=100.0
    )


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_loads_in_safe_mode(tmp_path, digits, method):
    (x, y), (x_test, _) = digits
    kwargs = METHODS[method]
    model = getattr(kr.models, method)(_tiny_net(batch_norm=True), seed=3, **kwargs)
    # Adam (two moments per weight); TRADES gets SGD with momentum on
    # kr.schedules.OneCycle.
    optimizer = (
        keras.optimizers.SGD(_one_cycle(), momentum=0.9)
        if method == "TRADES"
        else "adam"
    )
    model.compile(optimizer=optimizer, metrics=["accuracy"])
    # One optimizer step, in the second epoch: DyART's burn-in is over, and
    # its epoch counter (a saved variable) is 1.
    model.fit(x[:32], y[:32], batch_size=32, epochs=2, initial_epoch=1, verbose=0)

    restored = _save_and_load(model, tmp_path / f"{method}.keras")

    assert type(restored) is type(model)
    assert _plain(restored.get_config()) == _plain(model.get_config())
    for key, value in kwargs.items():
        assert getattr(restored, key) == value, key
    assert restored.seed == 3
    assert type(restored.attack) is type(model.attack)
    assert restored.attack.get_config() == model.attack.get_config()
    assert restored.eval_attack.get_config() == model.eval_attack.get_config()
    _assert_same_weights(model.classifier, restored.classifier)
    np.testing.assert_array_equal(
        _logits(restored, x_test[:16]), _logits(model, x_test[:16])
    )
    # The optimizer comes back compiled, with its step count and its state
    # (Adam moments, SGD momenta).
    assert restored.optimizer.get_config() == model.optimizer.get_config()
    assert int(to_numpy(restored.optimizer.iterations)) == 1
    assert len(restored.optimizer.variables) == len(model.optimizer.variables)
    for saved, loaded in zip(model.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_array_equal(to_numpy(saved), to_numpy(loaded))
    if method == "TRADES":
        schedule = restored.optimizer.get_config()["learning_rate"]
        assert schedule["registered_name"] == "keras_robust>OneCycle"
        assert schedule["config"] == _one_cycle().get_config()
        # The live rate is the schedule's at step 1, not a stored constant.
        rate = float(to_numpy(restored.optimizer.learning_rate))
        assert rate == pytest.approx(float(to_numpy(_one_cycle()(1))), rel=1e-6)
        assert rate != pytest.approx(float(to_numpy(_one_cycle()(0))), rel=1e-3)
    if method == "DyART":
        assert float(to_numpy(restored.current_epoch)) == 1.0


# ---- the layers --------------------------------------------------------------

# Every layer of kr.layers (and its registered tanh-GELU function) at one
# activation site each, with non-default arguments.
LAYER_SITES = {
    "smooth_relu": (kr.layers.SmoothReLU, dict(initial_b=7.0)),
    "smooth_relu_fixed_b": (
        kr.layers.SmoothReLU,
        dict(initial_b=5.0, trainable_b=False),
    ),
    "parametric_softplus": (kr.layers.ParametricSoftplus, dict(alpha=4.0)),
    "smooth_grad_relu": (
        kr.layers.SmoothGradReLU,
        dict(alpha=6.0, smooth_for="attack"),
    ),
}


def _model_with_every_layer():
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for name, (layer_class, kwargs) in LAYER_SITES.items():
        x = keras.layers.Conv2D(4, 3, padding="same")(x)
        x = layer_class(name=name, **kwargs)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16)(x)
    x = kr.layers.activation_layer("gelu", name="gelu_tanh")(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def test_every_layer_loads_in_safe_mode_inside_a_model(tmp_path, digits):
    _, (x_test, _) = digits
    net = _model_with_every_layer()
    _perturb_weights(net)

    restored = _save_and_load(net, tmp_path / "layers.keras")

    for name, (layer_class, kwargs) in LAYER_SITES.items():
        layer, loaded = net.get_layer(name), restored.get_layer(name)
        assert type(loaded) is layer_class, name
        assert _plain(loaded.get_config()) == _plain(layer.get_config()), name
        for key, value in kwargs.items():
            assert getattr(loaded, key) == value, (name, key)
        if layer_class is kr.layers.SmoothReLU:
            # The perturbed b (not initial_b) and its trainability come back.
            b = float(to_numpy(loaded.b))
            assert b == float(to_numpy(layer.b)) and b != loaded.initial_b
            assert loaded.b.trainable == loaded.trainable_b
    assert restored.get_layer("gelu_tanh").activation is kr.layers.gelu_tanh
    _assert_same_weights(net, restored)
    np.testing.assert_array_equal(
        _logits(restored, x_test[:16]), _logits(net, x_test[:16])
    )


def test_replace_activations_output_loads_in_safe_mode(tmp_path, digits):
    _, (x_test, _) = digits
    net = kr.layers.replace_activations(
        _tiny_net(filters=(4, 8), dense_units=16),
        kr.layers.ParametricSoftplus(alpha=3.0),
    )
    _perturb_weights(net)
    restored = _save_and_load(net, tmp_path / "replaced.keras")
    swapped = [
        layer
        for layer in restored.layers
        if isinstance(layer, kr.layers.ParametricSoftplus)
    ]
    assert len(swapped) == 3 and all(layer.alpha == 3.0 for layer in swapped)
    np.testing.assert_array_equal(
        _logits(restored, x_test[:16]),
        _logits(net, x_test[:16]),
    )


# ---- the architectures -------------------------------------------------------

NORMALIZATION = ([0.5], [0.25])
ARCHITECTURES = {
    "SmallCNN": lambda: kr.architectures.SmallCNN(
        10,
        (8, 8, 1),
        activation="parametric_softplus",
        filters=(4, 8),
        dense_units=16,
        batch_norm=True,
    ),
    "ResNet18": lambda: kr.architectures.ResNet18(
        10, (8, 8, 1), activation="smooth_relu", normalization=NORMALIZATION
    ),
    "PreActResNet18": lambda: kr.architectures.PreActResNet18(
        10, (8, 8, 1), activation=kr.layers.SmoothGradReLU(smooth_for="attack")
    ),
    # WideResNet34_10 / WideResNet28_10 are this builder at depth 34 / 28,
    # width 10 (46M / 36M weights): the same layers, too slow to save here.
    "WideResNet": lambda: kr.architectures.WideResNet(
        depth=10,
        width=2,
        num_classes=10,
        input_shape=(8, 8, 1),
        activation="gelu",
        normalization=NORMALIZATION,
        dropout=0.1,
    ),
    "with_coupled_weight_decay": lambda: kr.architectures.with_coupled_weight_decay(
        _tiny_net(batch_norm=True, filters=(4, 8), dense_units=16), 5e-4
    ),
}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_loads_in_safe_mode(tmp_path, digits, name):
    _, (x_test, _) = digits
    net = ARCHITECTURES[name]()
    _perturb_weights(net)

    restored = _save_and_load(net, tmp_path / f"{name}.keras")

    assert _plain(restored.get_config()) == _plain(net.get_config())
    assert [type(layer) for layer in restored.layers] == [
        type(layer) for layer in net.layers
    ]
    _assert_same_weights(net, restored)
    np.testing.assert_array_equal(
        _logits(restored, x_test[:4]),
        _logits(net, x_test[:4]),
    )
    if name == "with_coupled_weight_decay":
        # The L2 penalties (coupled weight decay) come back with the weights.
        expected = sum(
            2.5e-4 * float(np.sum(np.square(to_numpy(w))))
            for w in net.trainable_weights
        )
        losses = [float(to_numpy(v)) for v in restored.losses]
        assert len(losses) == len(net.trainable_weights)
        assert sum(losses) == pytest.approx(expected, rel=1e-5)


# ---- safe_mode is in force -------------------------------------------------------


def test_safe_mode_refuses_code(tmp_path):
    # The control of the checks above: a Lambda layer is saved as bytecode
    # (`__lambda__`) and safe_mode refuses to load it.
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: 2.0 * t)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    assert "__lambda__" in _config_text(path)
    with pytest.raises(ValueError, match="safe_mode"):
        keras.saving.load_model(path, safe_mode=True)


# ---- files saved by earlier versions -------------------------------------------


def test_fixtures_of_this_version_exist():
    names = [path.name for path in FIXTURES]
    assert "trades_smallcnn_v0_1_0.keras" in names
    for path in FIXTURES:
        assert path.stat().st_size < 100_000, path.name


@pytest.mark.parametrize("path", FIXTURES, ids=lambda path: path.stem)
def test_fixture_of_an_earlier_version_loads_and_predicts(path, digits):
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["written_by"]["backend"] == "tensorflow"
    inputs = np.load(DATA / info["files"]["inputs"])
    expected = np.load(DATA / info["files"]["logits"])

    model = keras.saving.load_model(path, safe_mode=True)

    assert "__lambda__" not in _config_text(path)
    assert isinstance(model, kr.models.RobustModel)
    assert type(model).__name__ == info["class_name"]
    for key, value in info["attributes"].items():
        assert getattr(model, key) == value, key
    for name in ("attack", "eval_attack"):
        attack = getattr(model, name)
        assert type(attack).__name__ == info[name]["class_name"]
        config = attack.get_config()
        for key, value in info[name]["config"].items():
            assert config[key] == value, (name, key)
    layers = [type(layer).__name__ for layer in model.classifier.layers]
    assert layers == info["classifier_layers"]
    # Saved under TensorFlow; the predictions agree on every backend.
    np.testing.assert_allclose(
        to_numpy(model.predict(inputs, verbose=0)), expected, rtol=1e-5, atol=1e-5
    )
    # The optimizer is restored as it was (class, schedule, step count) ...
    optimizer = info["optimizer"]
    config = model.optimizer.get_config()
    assert type(model.optimizer).__name__ == optimizer["class_name"]
    assert config["momentum"] == optimizer["momentum"]
    assert config["learning_rate"] == optimizer["learning_rate"]
    assert int(to_numpy(model.optimizer.iterations)) == optimizer["iterations"]
    # ... and training goes on from there.
    (x, y), _ = digits
    history = model.fit(x[:32], y[:32], batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert int(to_numpy(model.optimizer.iterations)) == optimizer["iterations"] + 1
