"""The `keras-robust` CLI end to end on digits, with tiny budgets.

Commands run in-process through `main([...])` (it returns the exit status);
subprocesses only where a fresh interpreter is the point: `--backend`
re-running under the other backend, and the exit status and stderr of a
real process.
"""

import contextlib
import csv
import importlib.metadata
import io
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_robust as kr
from keras_robust.cli import app as cli_app
from keras_robust.cli import backend_switch
from keras_robust.cli import main
from keras_robust.cli import parser as cli_parser
from keras_robust.cli.evaluate import evaluation_attacks
from tests.conftest import BACKEND

OTHER_BACKEND = {"jax": "tensorflow", "tensorflow": "jax"}.get(BACKEND)
# One quick training run, shared by the tests that need a saved model.
TRAIN_ARGS = [
    "train",
    "--method",
    "weat",
    "--dataset",
    "digits",
    "--epochs",
    "1",
    "--limit",
    "128",
    "--steps",
    "2",
    "--eval-samples",
    "64",
    "--no-checks",
    "--verbose",
    "0",
    # Not digits' defaults (Adam, no decay): the CIFAR-style optimizer path.
    "--optimizer",
    "sgd",
    "--weight-decay",
    "5e-4",
]


def _quiet_environment(**overrides):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **overrides)
    environment.pop(backend_switch.SWITCHED_ENV, None)
    return environment


def _error_lines(stderr):
    """Our lines on stderr (TensorFlow's C++ logging writes there too)."""
    return [line for line in stderr.splitlines() if line.startswith("keras-robust")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = main([*TRAIN_ARGS, "--out", str(out)])
    return status, out, stdout.getvalue()


def test_train_writes_model_history_energy_plot_and_report(trained):
    status, out, stdout = trained
    assert status == 0
    for name in ("model.keras", "history.csv", "energy_phases.png", "report.json"):
        assert (out / name).is_file(), name
        assert str(out / name) in stdout  # the closing list of outputs
    with open(out / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and {"loss", "adv_accuracy", "energy_gap"} <= set(rows[0])
    report = json.loads((out / "report.json").read_text())
    assert report["num_examples"] == 64 and report["epsilon"] == pytest.approx(0.2)
    assert set(report["attack_accuracy"]) == {"pgd-20"}
    assert f"keras-robust train on {BACKEND}" in stdout
    assert "1 epoch of 128 images" in stdout
    assert "SGD, momentum 0.9, learning rate 0.1" in stdout
    model = keras.saving.load_model(out / "model.keras")
    assert len(model.classifier.losses) > 0  # the coupled weight decay


def test_evaluate_reads_the_model_and_prints_the_report(trained, tmp_path, capsys):
    path = tmp_path / "nested" / "report.json"
    model = str(trained[1] / "model.keras")
    status = main(
        [
            "evaluate",
            model,
            "--dataset",
            "digits",
            "--attack",
            "pgd20",
            "--n-samples",
            "32",
            "--no-checks",
            "--verbose",
            "0",
            "--out",
            str(path),
        ]
    )
    stdout = capsys.readouterr().out
    assert status == 0
    assert "Robustness of" in stdout and "pgd-20" in stdout
    assert "the model's training epsilon" in stdout
    report = kr.evaluation.RobustnessReport.from_json(path)
    assert report.num_examples == 32 and report.backend == BACKEND


def test_evaluate_norm_and_version(trained, tmp_path, capsys):
    path = tmp_path / "report.json"
    model = str(trained[1] / "model.keras")
    common = [
        "evaluate", model, "--dataset", "digits", "--n-samples", "16",
        "--no-checks", "--verbose", "0",
    ]  # fmt: skip
    argv = [*common, "--norm", "l1", "--epsilon", "2", "--attack", "apgd"]
    assert main([*argv, "--out", str(path)]) == 0
    assert "apgd, L1 epsilon 2 (--epsilon)" in capsys.readouterr().out
    report = kr.evaluation.RobustnessReport.from_json(path)
    assert report.norm == "l1" and report.epsilon == 2.0
    assert json.loads(path.read_text())["threat_model"] == "L1"
    # Refused before any attack runs, naming what cannot be combined.
    for extra, message in [
        (["--attack", "pgd20", "--version", "rand"], "--attack pgd20 has none"),
        (["--norm", "l1", "--epsilon", "2", "--attack", "pgd20"], "PGD has no 'l1'"),
        (["--norm", "l2"], "--norm l2 needs --epsilon"),
    ]:
        assert main([*common, *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra


def test_evaluate_resume_continues_from_its_state_file(trained, tmp_path, capsys):
    state = tmp_path / "runs" / "state.json"
    argv = [
        "evaluate", str(trained[1] / "model.keras"), "--dataset", "digits",
        "--attack", "pgd20", "--n-samples", "32", "--batch-size", "16",
        "--no-checks", "--verbose", "1", "--resume", str(state),
    ]  # fmt: skip
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert len(json.loads(state.read_text())["batches"]) == 2
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert "Continuing the evaluation saved in" not in first
    assert "Continuing the evaluation saved in" in second
    table = [line for line in first.splitlines() if "%" in line]
    assert table and table == [line for line in second.splitlines() if "%" in line]
    # Other arguments on the same state: an error naming them, before any attack.
    assert main([*argv, "--epsilon", "0.05"]) == 1
    assert "epsilon: saved" in capsys.readouterr().err


def test_generate_writes_a_png_grid(trained, tmp_path, capsys):
    path = tmp_path / "samples.png"
    model = str(trained[1] / "model.keras")
    status = main(
        [
            "generate",
            model,
            "--dataset",
            "digits",
            "--per-class",
            "2",
            "--steps",
            "3",
            "--out",
            str(path),
            "--verbose",
            "0",
        ]
    )
    assert status == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(path) in capsys.readouterr().out


@pytest.mark.parametrize(
    "what, outputs",
    [
        ("margins", ("margins.json", "margins.png")),
        ("gradients", ("gradients.png",)),
        ("energy", ("energy_along.json", "energy_along.png")),
    ],
)
def test_analyze_writes_its_outputs(trained, tmp_path, capsys, what, outputs):
    model = str(trained[1] / "model.keras")
    argv = ["analyze", model, "--dataset", "digits", "--what", what]
    status = main([*argv, "--n-samples", "24", "--out", str(tmp_path)])
    stdout = capsys.readouterr().out
    assert status == 0
    assert f"keras-robust analyze on {BACKEND}" in stdout
    for name in outputs:
        assert (tmp_path / name).stat().st_size > 0, name
        assert str(tmp_path / name) in stdout
    if what == "margins":
        record = json.loads((tmp_path / "margins.json").read_text())
        assert len(record["margin"]) == 24
        assert record["summary"]["threshold"] == pytest.approx(0.2)  # the model's
    if what == "energy":
        summary = json.loads((tmp_path / "energy_along.json").read_text())
        assert set(summary["marginal"]) == {"untargeted", "targeted", "random"}


@pytest.mark.skipif(OTHER_BACKEND is None, reason="needs tensorflow or jax")
def test_backend_flag_reruns_the_command_on_the_other_backend(trained, tmp_path):
    path = tmp_path / "other.png"
    command = [
        sys.executable,
        "-m",
        "keras_robust.cli",
        "generate",
        str(trained[1] / "model.keras"),
        "--dataset",
        "digits",
        "--per-class",
        "1",
        "--steps",
        "2",
        "--out",
        str(path),
        "--verbose",
        "0",
        "--backend",
        OTHER_BACKEND,
    ]
    result = subprocess.run(
        command,
        env=_quiet_environment(KERAS_BACKEND=BACKEND),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"re-running with KERAS_BACKEND={OTHER_BACKEND}" in result.stderr
    assert f"keras-robust generate on {OTHER_BACKEND}" in result.stdout
    assert path.is_file()


def test_backend_switch_from_python_runs_a_child_process(trained, monkeypatch):
    calls = []

    def fake_run(command, env, check):
        calls.append((command, env))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.delenv(backend_switch.SWITCHED_ENV, raising=False)
    other = OTHER_BACKEND or "jax"
    model = str(trained[1] / "model.keras")
    argv = ["evaluate", model, "--dataset", "digits", "--backend", other]
    assert main(argv) == 0
    [(command, env)] = calls
    assert command == [sys.executable, "-m", "keras_robust.cli", *argv]
    assert env["KERAS_BACKEND"] == other


def test_backend_switch_does_not_loop(trained, monkeypatch, capsys):
    other = OTHER_BACKEND or "jax"
    monkeypatch.setenv(backend_switch.SWITCHED_ENV, other)
    model = str(trained[1] / "model.keras")
    status = main(["evaluate", model, "--dataset", "digits", "--backend", other])
    assert status == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("keras-robust: error:") and "still started" in line


# fmt: off
BAD_ARGUMENTS = {
    "unknown method": ["train", "--method", "pgd", "--dataset", "digits"],
    "negative epochs": ["train", "--method", "at", "--dataset", "digits", "--epochs", "-3"],
    "missing dataset": ["train", "--method", "at"],
    "unknown dataset": ["train", "--method", "at", "--dataset", "mnist"],
    "unknown activation": [
        "train", "--method", "at", "--dataset", "digits", "--activation", "swishy",
    ],
    "bad epsilon": ["train", "--method", "at", "--dataset", "digits", "--epsilon", "8/0"],
    "beta for at": ["train", "--method", "at", "--dataset", "digits", "--beta", "3"],
    "fastat steps": ["train", "--method", "fastat", "--dataset", "digits", "--steps", "3"],
    "limit below batch": [
        "train", "--method", "at", "--dataset", "digits", "--limit", "10",
    ],
    "missing model file": ["evaluate", "nowhere.keras", "--dataset", "digits"],
    "not a model file": ["generate", __file__, "--dataset", "digits"],
    "unknown attack": ["evaluate", "--attack", "fgsm", "m.keras", "--dataset", "digits"],
    "no command": [],
    "unknown command": ["fit"],
    "analyze without what": ["analyze", "m.keras", "--dataset", "digits"],
    "unknown analysis": ["analyze", "--what", "speed", "m.keras", "--dataset", "digits"],
}
# fmt: on


@pytest.mark.parametrize("argv", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_bad_arguments_give_one_line_and_status_2(argv, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    [line] = captured.err.strip().splitlines()
    assert line.startswith("keras-robust: error: ")
    assert "Traceback" not in captured.err


def test_commands_switch_jax_to_fast_compiling_random(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(
        kr.backend, "use_fast_compiling_random", lambda: calls.append(1)
    )
    monkeypatch.setitem(cli_app.COMMANDS, "evaluate", lambda args: 0)
    model = tmp_path / "m.keras"
    model.touch()
    assert main(["evaluate", str(model), "--dataset", "digits"]) == 0
    assert calls == [1]
    assert main(["fit"]) == 2  # a bad command line stops before
    assert calls == [1]


def test_a_model_for_another_dataset_is_a_usage_error(trained, capsys):
    model = str(trained[1] / "model.keras")
    assert main(["evaluate", model, "--dataset", "cifar100"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "(8, 8, 1)" in line and "(32, 32, 3)" in line


def test_an_offline_dataset_is_a_usage_error(monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise ConnectionError("cifar10 cannot be downloaded.\nA recipe.\nMore.")

    monkeypatch.setattr(kr.datasets, "load", offline)
    argv = ["train", "--method", "at", "--dataset", "cifar10", "--epochs", "1"]
    assert main(argv) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "cannot be downloaded" in line and "--data-dir" in line


def test_errors_while_running_exit_1_or_raise_with_debug(trained, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ValueError("the attack broke.\nDetails.")

    monkeypatch.setattr(kr.evaluation, "evaluate_robustness", broken)
    argv = ["evaluate", str(trained[1] / "model.keras"), "--dataset", "digits"]
    argv += ["--n-samples", "8", "--verbose", "0"]
    assert main(argv) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "keras-robust: error: the attack broke. (--debug shows the full message)"
    )
    with pytest.raises(ValueError, match="the attack broke"):
        main([*argv, "--debug"])


def test_a_real_process_exits_2_without_a_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "keras_robust.cli", "train", "--method", "x"],
        env=_quiet_environment(KERAS_BACKEND=BACKEND),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = _error_lines(result.stderr)
    assert line.startswith("keras-robust: error: argument --method: invalid choice")


@pytest.mark.parametrize(
    "command", [[], ["train"], ["evaluate"], ["generate"], ["analyze"]]
)
def test_help_explains_every_option(command, capsys):
    assert main([*command, "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: {' '.join(['keras-robust', *command])}")
    assert "(default: None)" not in text
    # argparse has no public accessor for its actions; these attributes
    # have been stable since Python 3.2.
    parser = cli_parser.build_parser()
    if command:
        parser = parser._subparsers._group_actions[0].choices[command[0]]
    for action in parser._actions:
        assert action.help, action.option_strings or action.dest
        for option in action.option_strings:
            assert option in text


def test_console_script_and_argument_types():
    [script] = importlib.metadata.entry_points(
        group="console_scripts", name="keras-robust"
    )
    assert script.value == "keras_robust.cli:main"
    assert cli_parser.number("8/255") == pytest.approx(8 / 255)
    assert cli_parser.positive_number("0.2") == 0.2
    assert evaluation_attacks("autoattack", 0.1, 0).version == "standard"
    assert evaluation_attacks("autoattack-fast", 0.1, 0).version == "fast"
    assert evaluation_attacks("autoattack-plus", 0.1, 0).version == "plus"
    rand = evaluation_attacks("autoattack", 0.1, 0, "l2", "rand")
    assert (rand.version, rand.norm) == ("rand", "l2")
    [apgd] = evaluation_attacks("apgd", 0.1, 0).values()
    assert isinstance(apgd, kr.attacks.APGD) and apgd.steps == 100
    [pgd] = evaluation_attacks("pgd20", 0.1, 0).values()
    assert pgd.steps == 20 and pgd.step_size == pytest.approx(0.025)


# ---- --zoo: RobustBench models (kr.zoo) -------------------------------------

ZOO_BAD_ARGUMENTS = {
    "unknown zoo name": [
        "evaluate",
        "--zoo",
        "Gowal2020Uncoverin",
        "--dataset",
        "cifar10",
    ],
    "zoo on digits": ["evaluate", "--zoo", "Standard", "--dataset", "digits"],
    "checkpoint without zoo": [
        "generate",
        "--checkpoint",
        "x.pt",
        "--dataset",
        "digits",
    ],
    "neither model nor zoo": ["evaluate", "--dataset", "digits"],
    "no checkpoint anywhere": ["evaluate", "--zoo", "Standard", "--dataset", "cifar10"],
    "L1 evaluation of an L2 model without epsilon": [
        "evaluate",
        "--zoo",
        "Standard",
        "--threat-model",
        "L2",
        "--norm",
        "l1",
        "--dataset",
        "cifar10",
    ],
}


@pytest.mark.parametrize(
    "argv", ZOO_BAD_ARGUMENTS.values(), ids=ZOO_BAD_ARGUMENTS.keys()
)
def test_zoo_bad_arguments_give_one_line_and_status_2(
    argv, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert main(argv) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("keras-robust: error: ")
    if argv == ZOO_BAD_ARGUMENTS["no checkpoint anywhere"]:
        assert "drive.google.com" in line and "checkpoint=" in line
    if "L2" in argv:
        assert "--norm l1 needs --epsilon" in line
    if "Gowal2020Uncoverin" in argv:
        assert "Gowal2020Uncovering_70_16" in line


def test_evaluate_a_zoo_model_from_its_checkpoint(monkeypatch, tmp_path, capsys):
    from keras_robust.architectures import _blocks

    # Zero kernels: this checks the plumbing, not accuracy, and JAX would
    # compile a random initializer per weight shape.
    for name in (
        "torch_default_kernel_initializer",
        "kaiming_normal_fan_out_initializer",
    ):
        monkeypatch.setattr(_blocks, name, keras.initializers.Zeros)
    checkpoint = tmp_path / "Sehwag2021Proxy_R18.safetensors"
    kr.architectures.save_torch_weights(kr.zoo.build("Sehwag2021Proxy_R18"), checkpoint)
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(4, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 10, 4).astype("int32")
    monkeypatch.setattr(
        "keras_robust.cli.data.arrays", lambda *args, **kwargs: (images, labels)
    )
    seen = {}

    def report(model, x, y, epsilon, *args, **kwargs):
        # The attacks themselves are tested elsewhere; compiling PGD through
        # a ResNet-18 would cost a minute on JAX here.
        seen["logits"] = model.predict(x, verbose=0)
        return "the report"

    monkeypatch.setattr("keras_robust.cli.evaluate.robustness_report", report)
    argv = [
        "evaluate", "--zoo", "Sehwag2021Proxy_R18", "--checkpoint", str(checkpoint),
        "--dataset", "cifar10", "--attack", "pgd20", "--no-checks", "--verbose", "0",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "zoo Sehwag2021Proxy_R18 (published clean 84.59%" in out
    assert "epsilon 0.0313725 (the leaderboard's epsilon)" in out
    assert "the report" in out and seen["logits"].shape == (4, 10)
