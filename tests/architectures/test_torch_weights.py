"""load_torch_weights / save_torch_weights: files, round trips, strictness, bad input."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_robust as kr
from keras_robust.backend import torch_io
from tests.architectures import robustbench_reference as ref

torch = ref.torch
SHAPE = (32, 32, 3)


@pytest.fixture(autouse=True)
def _zero_initializers(monkeypatch):
    ref.zero_initializers(monkeypatch)


def small_dm(**kwargs):
    kwargs.setdefault("depth", 10)
    kwargs.setdefault("width", 1)
    return kr.architectures.DMWideResNet(**kwargs)


def torch_dm(**kwargs):
    dm = ref.architecture_module("dm_wide_resnet")
    kwargs.setdefault("depth", 10)
    kwargs.setdefault("width", 1)
    return ref.randomize(dm.DMWideResNet(activation_fn=dm.Swish, **kwargs))


def randomize_keras(model, seed=0):
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if "variance" in variable.path:
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = 0.1 * rng.standard_normal(shape)
        variable.assign(value.astype("float32"))
    return model


def weights_of(model):
    return [keras.ops.convert_to_numpy(w.value) for w in model.weights]


def test_round_trip_keras_torch_keras_is_exact():
    ours = randomize_keras(small_dm())
    arrays = kr.architectures.save_torch_weights(ours)
    torch_model = torch_dm()
    # strict=True in PyTorch: our names and shapes are the class's own.
    torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
    x = np.random.default_rng(1).uniform(size=(2, *SHAPE)).astype("float32")
    ref.assert_close_relative(ref.logits(ours, x), ref.torch_logits(torch_model, x))
    back = small_dm()
    kr.architectures.load_torch_weights(back, torch_model.state_dict())
    for original, loaded in zip(weights_of(ours), weights_of(back)):
        np.testing.assert_array_equal(original, loaded)


def test_files_nesting_and_prefixes(tmp_path):
    torch_model = torch_dm()
    state = torch_model.state_dict()
    expected = small_dm()
    kr.architectures.load_torch_weights(expected, state)
    reference = weights_of(expected)
    # A DataParallel checkpoint nested the way RobustBench's are.
    nested = {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}
    torch.save(nested, tmp_path / "nested.pt")
    torch.save({"last": state, "best": state}, tmp_path / "last.pth")
    kr.architectures.save_torch_weights(expected, tmp_path / "weights.safetensors")
    kr.architectures.save_torch_weights(expected, tmp_path / "weights.pt")
    sources = [
        (tmp_path / "nested.pt", {}),
        (str(tmp_path / "last.pth"), {"key": "last"}),
        (tmp_path / "weights.safetensors", {}),
        (tmp_path / "weights.pt", {}),
    ]
    for source, kwargs in sources:
        model = small_dm()
        report = kr.architectures.load_torch_weights(model, source, **kwargs)
        counters = sum(name.endswith("num_batches_tracked") for name in state)
        assert report.loaded == len(state) - counters
        for want, got in zip(reference, weights_of(model)):
            np.testing.assert_array_equal(want, got)


def test_safetensors_loads_without_torch(tmp_path):
    path = tmp_path / "weights.safetensors"
    model = randomize_keras(small_dm())
    kr.architectures.save_torch_weights(model, path)
    expected = float(np.sum(weights_of(model)[0]))
    script = textwrap.dedent(
        f"""
        import sys

        class BlockTorch:  # any `import torch` now fails
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torch":
                    raise ImportError("torch is blocked in this test")

        sys.meta_path.insert(0, BlockTorch())
        import keras, numpy as np, keras_robust as kr
        from keras_robust.architectures import _blocks

        _blocks.torch_default_kernel_initializer = keras.initializers.Zeros
        model = kr.architectures.DMWideResNet(depth=10, width=1)
        kr.architectures.load_torch_weights(model, {str(path)!r})
        assert "torch" not in sys.modules
        print(float(np.sum(keras.ops.convert_to_numpy(model.weights[0].value))))
        """
    )
    env = dict(os.environ)
    if env.get("KERAS_BACKEND") == "torch":
        env["KERAS_BACKEND"] = "jax"  # Keras' own torch backend needs torch
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(result.stdout.strip().splitlines()[-1]) == pytest.approx(expected)


def test_strict_reports_renamed_missing_and_extra_tensors():
    state = dict(torch_dm().state_dict())
    state["layer.0.block.0.conv0.weight"] = state.pop("layer.0.block.0.conv_0.weight")
    del state["logits.bias"]
    model = small_dm()
    before = weights_of(model)
    with pytest.raises(ValueError) as info:
        kr.architectures.load_torch_weights(model, state)
    message = str(info.value)
    assert "2 missing from the checkpoint" in message
    assert "layer.0.block.0.conv_0.weight" in message and "logits.bias" in message
    assert "1 in the checkpoint but not in the model" in message
    assert "layer.0.block.0.conv0.weight" in message
    # Nothing was assigned.
    for want, got in zip(before, weights_of(model)):
        np.testing.assert_array_equal(want, got)
    report = kr.architectures.load_torch_weights(model, state, strict=False)
    assert set(report.missing) == {"layer.0.block.0.conv_0.weight", "logits.bias"}
    assert report.unexpected == ("layer.0.block.0.conv0.weight",)


def test_checkpoint_of_another_architecture_names_the_tensors_and_shapes():
    state = torch_dm(width=2).state_dict()
    with pytest.raises(ValueError, match=r"shapes do not fit") as info:
        kr.architectures.load_torch_weights(small_dm(), state)
    assert (
        "layer.0.block.0.conv_0.weight: checkpoint (32, 16, 3, 3), model expects (16, 16, 3, 3)"
        in str(info.value)
    )
    # A TRADES WideResNet checkpoint into a DMWideResNet: nothing matches.
    wrn = ref.architecture_module("wide_resnet").WideResNet(depth=10, widen_factor=1)
    with pytest.raises(ValueError, match="another architecture"):
        kr.architectures.load_torch_weights(small_dm(), wrn.state_dict())


def test_normalization_buffers_must_equal_the_models():
    wrn = ref.architecture_module("wide_resnet").WideResNet(depth=10, widen_factor=1)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
    state = dict(wrn.state_dict())
    state["mu"] = torch.tensor(mean).view(1, 3, 1, 1)
    state["sigma"] = torch.tensor(std).view(1, 3, 1, 1)
    good = kr.architectures.WideResNet(depth=10, width=1, normalization=(mean, std))
    kr.architectures.load_torch_weights(good, state)
    with pytest.raises(ValueError, match="has no `normalization`"):
        kr.architectures.load_torch_weights(
            kr.architectures.WideResNet(depth=10, width=1), state
        )
    other = kr.architectures.WideResNet(
        depth=10, width=1, normalization=((0.5,) * 3, (0.5,) * 3)
    )
    with pytest.raises(ValueError, match="differs from the model's normalization"):
        kr.architectures.load_torch_weights(other, state)


def test_corrupt_and_unknown_files(tmp_path):
    model = small_dm()
    kr.architectures.save_torch_weights(model, tmp_path / "w.pt")
    kr.architectures.save_torch_weights(model, tmp_path / "w.safetensors")
    for name in ("w.pt", "w.safetensors"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / f"cut_{name}").write_bytes(data[: len(data) // 2])
        with pytest.raises(ValueError, match="Is the file complete"):
            kr.architectures.load_torch_weights(model, tmp_path / f"cut_{name}")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        kr.architectures.load_torch_weights(model, tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="pass `key=`"):
        kr.architectures.load_torch_weights(model, {"weights": {"a": 1}, "epoch": 2})
    with pytest.raises(ValueError, match="must end in .safetensors"):
        kr.architectures.save_torch_weights(model, tmp_path / "w.h5")
    dense = keras.layers.Dense(2, kernel_initializer="zeros", name="head")
    other = keras.Sequential([keras.Input((4,)), dense])
    with pytest.raises(ValueError, match="not one of kr.architectures"):
        kr.architectures.load_torch_weights(other, {})


def test_reading_a_pt_file_without_torch_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"the\s+`torch` extra"):
        torch_io.load_checkpoint(tmp_path / "w.pt")
