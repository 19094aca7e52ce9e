"""evaluate_robustness(state_path=...): a killed evaluation continues exactly.

`tests/evaluation/resume_worker.py` runs in two real processes: the first
evaluates uninterrupted (the reference), then again with a state file, and
SIGKILLs itself after the second of three batches; the second, a fresh
process, continues from the file. The report must equal the reference's.
"""

import json
import signal

import keras
import pytest

import keras_robust as kr
from tests.conftest import BACKEND
from tests.evaluation import resume_worker as worker
from tests.helpers import quick_compile_environment
from tests.helpers import run_module


def _run_worker(phase, out, env):
    return run_module("tests.evaluation.resume_worker", phase, out, env=env)


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluation_resume")
    env = quick_compile_environment(
        jax_cache_dir=out / "jax_cache",
        KERAS_BACKEND=BACKEND,
        PYTHONPATH=str(worker.ROOT),
    )
    first = _run_worker("interrupt", out, env)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    saved = json.loads((out / "state.json").read_text())
    second = _run_worker("resume", out, env)
    assert second.returncode == 0, second.stderr[-3000:]
    return out, saved, second.stdout


def _report(path):
    return kr.evaluation.RobustnessReport.from_json(path).to_dict()


def test_the_killed_run_left_its_finished_batches(killed_and_resumed):
    _, saved, _ = killed_and_resumed
    assert len(saved["batches"]) == worker.KILL_AFTER
    assert [b["examples"] for b in saved["batches"]] == [worker.BATCH_SIZE] * 2
    assert list(saved["batches"][0]["correct"]) == [
        "clean",
        "apgd-0",
        "apgd-1",
        "square",
    ]
    assert set(saved["seed_states"]) == {"apgd-0", "apgd-1", "square"}
    assert saved["arguments"]["backend"] == BACKEND


def test_the_resumed_report_is_the_uninterrupted_one(killed_and_resumed):
    out, saved, stdout = killed_and_resumed
    assert "Continuing the evaluation saved in" in stdout
    reference, resumed = _report(out / "reference.json"), _report(out / "resumed.json")
    assert resumed.pop("seconds") >= saved["seconds"]
    reference.pop("seconds")
    assert resumed == reference
    # Something was attacked after the kill, not only read back.
    final = json.loads((out / "state.json").read_text())
    assert len(final["batches"]) == worker.EXAMPLES // worker.BATCH_SIZE
    assert final["batches"][: worker.KILL_AFTER] == saved["batches"]


class CountingAPGD(kr.attacks.APGD):
    calls = 0

    def perturb(self, forward, x, y, draw_seed):
        CountingAPGD.calls += 1
        return super().perturb(forward, x, y, draw_seed)


@pytest.fixture
def small_run(tmp_path, digits):
    classifier = keras.saving.load_model(worker.MODEL).classifier
    _, (x, y) = digits
    arguments = dict(epsilon=0.1, batch_size=16, checks=False, verbose=0, seed=0)

    def run(
        path=tmp_path / "state.json", x=x[:32], y=y[:32], model=classifier, **changes
    ):
        return kr.evaluation.evaluate_robustness(
            model,
            x,
            y,
            attacks=CountingAPGD(0.1, steps=2, seed=0),
            state_path=path,
            **{**arguments, **changes},
        )

    return run, classifier, x, y, tmp_path


def test_a_finished_state_is_read_back_without_attacking(small_run):
    run, *_ = small_run
    CountingAPGD.calls = 0
    first = run()
    assert CountingAPGD.calls > 0
    CountingAPGD.calls = 0
    again = run()
    assert CountingAPGD.calls == 0
    assert again.attack_accuracy == first.attack_accuracy
    assert again.clean_accuracy == first.clean_accuracy


def test_other_arguments_are_refused_naming_each(small_run):
    run, classifier, x, y, _ = small_run
    run()
    with pytest.raises(ValueError, match=r"epsilon: saved 0\.1, now 0\.2"):
        run(epsilon=0.2)
    with pytest.raises(ValueError, match="batch_size: saved 16, now 8"):
        run(batch_size=8)
    with pytest.raises(ValueError, match="num_examples: saved 32, now 48"):
        run(x=x[:48], y=y[:48])
    other = keras.models.clone_model(classifier)  # other weights
    with pytest.raises(ValueError, match="weights_sha256: saved"):
        run(model=other)


def test_a_plain_callable_cannot_be_resumed(small_run):
    run, classifier, *_ = small_run
    with pytest.raises(TypeError, match="`state_path` needs a Keras classifier"):
        run(model=lambda x, training=False: classifier(x))


def test_other_data_of_the_same_size_is_refused(small_run):
    run, _, x, y, _ = small_run
    run()
    with pytest.raises(ValueError, match="batch 0 is not the one evaluated then"):
        run(x=x[32:64], y=y[32:64])


def test_a_file_that_is_no_state_is_refused(small_run):
    run, *_, tmp_path = small_run
    path = tmp_path / "notes.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="not a keras_robust evaluation state"):
        run(path=path)
    path.write_text("not json")
    with pytest.raises(ValueError, match="not a keras_robust evaluation state"):
        run(path=path)


def test_the_state_file_is_replaced_atomically(small_run, monkeypatch):
    """A kill during a write leaves the previous state, never a torn one."""
    run, *_, tmp_path = small_run
    from keras_robust.utils import files

    replace = files.os.replace
    written = []

    def replace_then_check(source, target):
        # Until the replace, the file holds the previous, complete state.
        if (tmp_path / "state.json").exists():
            written.append(
                len(json.loads((tmp_path / "state.json").read_text())["batches"])
            )
        replace(source, target)

    monkeypatch.setattr(files.os, "replace", replace_then_check)
    run()
    assert written == [1]  # before the 2nd batch's state replaced the 1st's


@pytest.mark.skipif(BACKEND == "torch", reason="attacks run eagerly on PyTorch")
def test_an_attack_told_to_expect_repeated_calls_compiles_its_next_one(small_run):
    _, classifier, x, y, _ = small_run
    primed, fresh = (kr.attacks.APGD(0.1, steps=2, seed=0) for _ in range(2))
    long = kr.attacks.PGD(0.1, steps=100, seed=0)
    primed.expect_repeated_calls(classifier)
    for attack in (primed, fresh, long):
        attack(classifier, x[:8], y[:8])
    assert all(f is not None for f in primed._compiled_calls[classifier].values())
    # A first call is compiled on JAX, and on TensorFlow from 100 iterations.
    for attack, iterations in ((fresh, 2), (long, 100)):
        assert attack.iterations == iterations
        compiled = [f is not None for f in attack._compiled_calls[classifier].values()]
        assert compiled == [kr.backend.compiles_first_attack_call(iterations)]
