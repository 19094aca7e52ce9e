"""RobustBench's PyTorch architecture files, loaded without the robustbench package.

`robustbench/__init__.py` imports timm and torchvision (not installed here:
the test extra installs robustbench with --no-deps), so the architecture
files, which import only torch, are loaded by path.
"""

import importlib.util
import pathlib

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("robustbench") is None:
    pytest.skip(
        "robustbench is not installed (pip install --no-deps robustbench)",
        allow_module_level=True,
    )

ARCHITECTURES = (
    pathlib.Path(importlib.util.find_spec("robustbench").submodule_search_locations[0])
    / "model_zoo"
    / "architectures"
)
_MODULES = {}


def architecture_module(name):
    """`robustbench/model_zoo/architectures/{name}.py` as a module."""
    if name not in _MODULES:
        spec = importlib.util.spec_from_file_location(
            f"robustbench_architectures_{name}", ARCHITECTURES / f"{name}.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _MODULES[name] = module
    return _MODULES[name]


def randomize(torch_model, seed=0):
    """Non-trivial BatchNorm affine parameters and running statistics, eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in torch_model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                size = module.num_features
                module.weight.copy_(0.5 + torch.rand(size, generator=generator))
                module.bias.copy_(0.2 * torch.randn(size, generator=generator))
                module.running_mean.copy_(0.2 * torch.randn(size, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(size, generator=generator))
                module.num_batches_tracked.fill_(7)
    return torch_model.eval()


def torch_logits(torch_model, images_nhwc):
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)))
        return torch_model(x).numpy()


def parameter_count(torch_model):
    return sum(p.numel() for p in torch_model.parameters())


def assert_close_relative(ours, reference, tolerance=1e-4):
    error = np.max(np.abs(ours - reference)) / np.max(np.abs(reference))
    assert error <= tolerance, f"relative error {error:.2e} > {tolerance}"


def zero_initializers(monkeypatch):
    """Build our architectures with zero kernels: the tests overwrite them.

    On JAX every new weight shape compiles its own random initializer (about
    20 s for a WRN-16-2 on 2 busy cores); zeros cost nothing.
    """
    from keras_robust.architectures import _blocks

    for name in (
        "torch_default_kernel_initializer",
        "kaiming_normal_fan_out_initializer",
    ):
        monkeypatch.setattr(_blocks, name, keras.initializers.Zeros)


def logits(keras_model, images):
    """Inference-mode logits; on JAX through one compiled call (op-by-op
    eager dispatch compiles every layer separately)."""
    if keras.backend.backend() == "jax":
        return np.asarray(keras_model.predict_on_batch(images))
    return keras.ops.convert_to_numpy(keras_model(images, training=False))
