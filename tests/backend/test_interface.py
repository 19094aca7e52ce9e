"""Every backend module defines the one interface `kr.backend` re-exports."""

import ast
from pathlib import Path

import pytest

import keras_robust as kr

BACKEND_DIR = Path(kr.__file__).parent / "backend"


def _top_level_names(path):
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names, _declared_all(tree)


def _declared_all(tree):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    return None


@pytest.mark.parametrize("module", ["tensorflow", "jax", "torch", "unsupported"])
def test_module_defines_exactly_the_interface(module):
    names, declared = _top_level_names(BACKEND_DIR / f"{module}.py")
    assert declared is not None, f"backend/{module}.py has no __all__"
    assert sorted(declared) == sorted(kr.backend.INTERFACE)
    assert set(kr.backend.INTERFACE) <= names


def test_selected_module_supplies_every_name():
    for name in kr.backend.INTERFACE:
        function = getattr(kr.backend, name)
        assert function.__module__ == f"keras_robust.backend.{kr.backend.BACKEND}"


def test_fast_compiling_random_is_jax_only_and_respects_the_environment(monkeypatch):
    # tests/conftest.py sets JAX_THREEFRY_PARTITIONABLE: the user's choice wins.
    monkeypatch.setenv("JAX_THREEFRY_PARTITIONABLE", "1")
    assert kr.backend.use_fast_compiling_random() is False
    monkeypatch.delenv("JAX_THREEFRY_PARTITIONABLE")
    if kr.backend.BACKEND != "jax":
        assert kr.backend.use_fast_compiling_random() is False
        return
    import jax

    updates = []
    monkeypatch.setattr(jax.config, "update", lambda *args: updates.append(args))
    assert kr.backend.use_fast_compiling_random() is True
    assert updates == [("jax_threefry_partitionable", False)]


def test_which_first_attack_calls_are_compiled():
    # Loop iterations of one call: steps x restarts x targets (x EOT).
    attacks = {
        "fgsm": kr.attacks.FGSM(0.1),
        "pgd-20": kr.attacks.PGD.for_evaluation(0.1),
        "apgd-t": kr.attacks.APGD(0.1, targets=9, eot_iter=2),
        "fab-t": kr.attacks.FAB(0.1, targets=9, restarts=2),
        "square": kr.attacks.Square(0.1, queries=300, restarts=2),
        "boundary": kr.attacks.BoundarySearch(0.1, steps=20, refine_steps=3),
    }
    iterations = {name: attack.iterations for name, attack in attacks.items()}
    assert iterations == {
        "fgsm": 1,
        "pgd-20": 20,
        "apgd-t": 100 * 9 * 2,
        "fab-t": 100 * 9 * 2,
        "square": 600,
        "boundary": 23,
    }
    # JAX compiles every first call; TensorFlow from 100 iterations on (op
    # by op, dispatch dominates a long call); PyTorch runs attacks eagerly.
    threshold = {"jax": 0, "tensorflow": 100, "torch": None}[kr.backend.BACKEND]
    for count in (1, 20, 99, 100, 1800):
        expected = threshold is not None and count >= threshold
        assert kr.backend.compiles_first_attack_call(count) is expected, count
