"""Our architectures against the PyTorch classes RobustBench's zoo uses.

Each case builds RobustBench's class (random weights, random BatchNorm
statistics), converts its state_dict with `load_torch_weights`, and compares
logits in inference mode on random [0, 1] images. Small depths/widths keep
it fast; the ResNet-18s run at full size (their widths are fixed).
"""

import numpy as np
import pytest

import keras_robust as kr
from tests.architectures import robustbench_reference as ref

torch = ref.torch


@pytest.fixture(autouse=True)
def _zero_initializers(monkeypatch):
    ref.zero_initializers(monkeypatch)


def images(shape, seed=0):
    return np.random.default_rng(seed).uniform(size=shape).astype("float32")


def check_case(torch_model, keras_model, shape=(32, 32, 3), batch=3, seed=0):
    torch.manual_seed(seed)
    ref.randomize(torch_model, seed)
    report = kr.architectures.load_torch_weights(keras_model, torch_model.state_dict())
    assert report.missing == () and report.unexpected == ()
    x = images((batch, *shape), seed)
    ours = ref.logits(keras_model, x)
    ref.assert_close_relative(ours, ref.torch_logits(torch_model, x))
    return ours


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_dm_wide_resnet_matches_deepminds_class():
    dm = ref.architecture_module("dm_wide_resnet")
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    cases = [
        # Swish, CIFAR-10 standardisation (the zoo's entries, at depth 16).
        (
            dm.DMWideResNet(depth=16, width=2, activation_fn=dm.Swish),
            kr.architectures.DMWideResNet(depth=16, width=2),
            (32, 32, 3),
        ),
        # nn.SiLU (Wang2023Better), width 1 (no shortcut in the first group),
        # other mean/std, 100 classes, DeepMind's input padding (28 + 2*2).
        (
            dm.DMWideResNet(
                num_classes=100,
                depth=10,
                width=1,
                activation_fn=torch.nn.SiLU,
                mean=mean,
                std=std,
                padding=2,
            ),
            kr.architectures.DMWideResNet(
                depth=10,
                width=1,
                num_classes=100,
                mean=mean,
                std=std,
                padding=2,
                input_shape=(28, 28, 3),
            ),
            (28, 28, 3),
        ),
    ]
    for torch_model, keras_model, shape in cases:
        check_case(torch_model, keras_model, shape)
        assert trainable_count(keras_model) == ref.parameter_count(torch_model)


def test_dm_preact_resnet18_matches_deepminds_class():
    dm = ref.architecture_module("dm_wide_resnet")
    torch_model = dm.DMPreActResNet(depth=18, activation_fn=dm.Swish)
    keras_model = kr.architectures.DMPreActResNet(depth=18)
    check_case(torch_model, keras_model, batch=2)
    assert trainable_count(keras_model) == ref.parameter_count(torch_model)
    assert trainable_count(keras_model) == 12_548_426


def test_wide_resnet_matches_robustbenchs_class():
    wrn = ref.architecture_module("wide_resnet")
    # sub_block1=True: registered (and in the state_dict) but unused by
    # forward, as in most RobustBench WideResNet entries.
    for sub_block1 in (False, True):
        torch_model = wrn.WideResNet(depth=16, widen_factor=2, sub_block1=sub_block1)
        keras_model = kr.architectures.WideResNet(depth=16, width=2)
        check_case(torch_model, keras_model)
    assert trainable_count(keras_model) == ref.parameter_count(torch_model) - sum(
        p.numel() for p in torch_model.sub_block1.parameters()
    )


def test_resnet18_and_preact_resnet18_match_robustbenchs_classes():
    resnet = ref.architecture_module("resnet")
    cases = [
        (resnet.ResNet18(), kr.architectures.ResNet18()),
        # Rice2020Overfitting (L2) / Kireev2021Effectiveness: the
        # robust-overfitting PreAct ResNet, our default.
        (
            resnet.PreActResNet(resnet.PreActBlockV2, [2, 2, 2, 2], bn_before_fc=True),
            kr.architectures.PreActResNet18(),
        ),
        # Wong2020Fast / Andriushchenko2020Understanding.
        (
            resnet.PreActResNet(resnet.PreActBlock, [2, 2, 2, 2]),
            kr.architectures.PreActResNet18(shortcut="input", final_batch_norm=False),
        ),
    ]
    for torch_model, keras_model in cases:
        check_case(torch_model, keras_model, batch=2)
        assert trainable_count(keras_model) == ref.parameter_count(torch_model)


def test_dm_wide_resnet_28_10_parameter_count_equals_pytorchs():
    # WRN-70-16 (266,796,506) takes too long to build in a test; it is
    # counted in benchmarks/zoo_load.py.
    dm = ref.architecture_module("dm_wide_resnet")
    with torch.device("meta"):
        torch_model = dm.DMWideResNet(depth=28, width=10, activation_fn=dm.Swish)
    keras_model = kr.architectures.DMWideResNet(depth=28, width=10)
    assert trainable_count(keras_model) == ref.parameter_count(torch_model)
    assert trainable_count(keras_model) == 36_479_194
    buffers = sum(
        b.numel()
        for name, b in torch_model.named_buffers()
        if not name.endswith("num_batches_tracked") and name not in ("mean", "std")
    )
    assert keras_model.count_params() - trainable_count(keras_model) == buffers
