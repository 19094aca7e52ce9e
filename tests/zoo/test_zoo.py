"""kr.zoo: the registry's facts, loading RobustBench-style checkpoints, bad input."""

import keras
import pytest

import keras_robust as kr
from tests.architectures import robustbench_reference as ref

torch = ref.torch


@pytest.fixture(autouse=True)
def _zero_initializers(monkeypatch, tmp_path):
    ref.zero_initializers(monkeypatch)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


def test_registry_holds_robustbenchs_published_numbers():
    # Facts from RobustBench's model_info JSON files (leaderboard values).
    entry = kr.zoo.info("Gowal2020Uncovering_70_16")
    assert (entry.clean_accuracy, entry.autoattack_accuracy) == (85.29, 57.20)
    assert entry.architecture == "DMWideResNet"
    assert entry.arguments == {"depth": 70, "width": 16, "activation": "swish"}
    rice = kr.zoo.info("Rice2020Overfitting", threat_model="L2")
    assert (rice.clean_accuracy, rice.autoattack_accuracy, rice.epsilon) == (
        88.67,
        67.68,
        "0.5",
    )
    assert rice.normalization == ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616))
    linf = kr.zoo.list_models("cifar10", "Linf")
    assert "Rebuffi2021Fixing_70_16_cutmix_extra" in linf
    assert "Ding2020MMA" not in linf  # per-image standardisation: not built here
    total = sum(
        len(kr.zoo.list_models(d, t))
        for d in ("cifar10", "cifar100")
        for t in ("Linf", "L2")
    )
    for dataset in ("cifar10", "cifar100"):
        for threat in ("Linf", "L2"):
            for name in kr.zoo.list_models(dataset, threat):
                e = kr.zoo.info(name, dataset, threat)
                assert e.source.startswith("robustbench/model_zoo/")
                assert e.clean_accuracy >= e.autoattack_accuracy
                assert e.num_classes == {"cifar10": 10, "cifar100": 100}[dataset]
    assert total > 100


def test_load_a_robustbench_checkpoint_with_standardisation(tmp_path):
    # Rice2020Overfitting (L2): RobustBench's PreActResNet(PreActBlockV2,
    # bn_before_fc=True) behind (x - mu) / sigma; its checkpoint holds the
    # buffers, nested in a DataParallel state_dict.
    resnet = ref.architecture_module("resnet")
    entry = kr.zoo.info("Rice2020Overfitting", threat_model="L2")
    network = ref.randomize(
        resnet.PreActResNet(resnet.PreActBlockV2, [2, 2, 2, 2], bn_before_fc=True)
    )
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in entry.normalization)
    state = {f"module.{k}": v for k, v in network.state_dict().items()}
    state.update({"module.mu": mean, "module.sigma": std})
    torch.save({"state_dict": state}, tmp_path / "rice.pt")
    model = kr.zoo.load(
        "Rice2020Overfitting", checkpoint=tmp_path / "rice.pt", threat_model="L2"
    )
    x = ref.np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")

    class Standardised(torch.nn.Module):
        def forward(self, images):
            return network((images - mean) / std)

    ref.assert_close_relative(
        ref.logits(model, x), ref.torch_logits(Standardised().eval(), x)
    )
    # Another entry's architecture: the error names tensors and shapes.
    with pytest.raises(ValueError, match="does not fit"):
        kr.zoo.load("Sehwag2021Proxy_R18", checkpoint=tmp_path / "rice.pt")


def test_bad_names_shapes_missing_and_corrupt_checkpoints(tmp_path):
    with pytest.raises(
        ValueError, match="Close matches: \\['Gowal2020Uncovering_70_16'"
    ):
        kr.zoo.info("Gowal2020Uncovering_70_61")
    with pytest.raises(ValueError, match="exists for \\['cifar10/L2'"):
        kr.zoo.load("Gowal2020Uncovering_extra", threat_model="Linf")
    with pytest.raises(ValueError, match="`dataset` must be one of"):
        kr.zoo.list_models("imagenet")
    with pytest.raises(ValueError, match="`input_shape` must be \\(32, 32, 3\\)"):
        kr.zoo.load("Standard", input_shape=(28, 28, 1))
    # No checkpoint and nothing cached: where to download and how to pass it,
    # without trying the network.
    with pytest.raises(FileNotFoundError) as info:
        kr.zoo.load("Rebuffi2021Fixing_R18_ddpm")
    message = str(info.value)
    assert "https://drive.google.com/file/d/" in message
    assert "checkpoint=" in message
    with pytest.raises(ValueError, match="`file_hash`"):
        kr.zoo.load("Standard", checkpoint="https://example.com/standard.pt")
    # A URL that cannot be reached: the same guidance after the error.
    with pytest.raises(FileNotFoundError, match="RobustBench hosts it"):
        kr.zoo.load(
            "Standard",
            checkpoint="http://127.0.0.1:9/standard.pt",
            file_hash="0" * 64,
        )
    (tmp_path / "broken.safetensors").write_bytes(
        b"\x10\x00\x00\x00\x00\x00\x00\x00{oops"
    )
    with pytest.raises(ValueError, match="Is the file complete"):
        kr.zoo.load("Standard", checkpoint=tmp_path / "broken.safetensors")


def test_zoo_builds_with_zero_placeholders_only_inside_the_context(monkeypatch):
    from keras_robust.architectures import _blocks

    monkeypatch.undo()  # the real initializer functions, not the fixture's
    with _blocks.placeholder_initializers():
        net = kr.architectures.DMWideResNet(depth=10, width=1, input_shape=(8, 8, 3))
    assert not _blocks._placeholder()
    for weight in net.weights:
        if weight.path.endswith(("kernel", "bias")):
            assert not ref.np.any(keras.ops.convert_to_numpy(weight.value)), weight.path
    assert isinstance(
        _blocks.torch_default_kernel_initializer(), keras.initializers.VarianceScaling
    )
