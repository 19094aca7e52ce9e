"""The subpackages of keras_robust import each other without a cycle.

A cycle between subpackages (it was losses -> energy -> attacks -> losses)
makes the import order matter: importing one subpackage first can meet a
half-initialised other. Read from the sources' module-level imports (those
inside functions are lazy and cannot close a cycle at import time).
"""

import ast
from pathlib import Path

import keras_robust as kr

PACKAGE = Path(kr.__file__).parent


def _module_level_imports(path):
    """The keras_robust modules `path` imports when it is itself imported."""
    tree = ast.parse(path.read_text())
    nodes = []
    for node in tree.body:
        # Imports under a module-level `if` or `try` run at import time too.
        if isinstance(node, (ast.If, ast.Try)):
            nodes.extend(ast.walk(node))
        else:
            nodes.append(node)
    names = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("keras_robust.")}


def _subpackage(module):
    """keras_robust.losses.weat -> "losses"; keras_robust.cli -> "cli"."""
    return module.split(".")[1]


def subpackage_graph():
    """{subpackage: the other subpackages its modules import at import time}."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if len(relative.parts) == 1 and relative.name == "__init__.py":
            continue  # the root package imports everything, by design
        source = relative.parts[0].removesuffix(".py")
        targets = {_subpackage(m) for m in _module_level_imports(path)}
        graph.setdefault(source, set()).update(targets - {source})
    return graph


def find_cycle(graph):
    """One cycle of `graph` as a list of nodes (first == last), or None."""
    state = {}  # node -> "open" while on the path, "done" after

    def visit(node, path):
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return path[path.index(target) :] + [target]
            if target not in state:
                cycle = visit(target, path + [target])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [node])
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_dag():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_subpackages_import_each_other_without_a_cycle():
    graph = subpackage_graph()
    # The analysis sees the real edges: the ones the layering relies on.
    assert "losses" in graph["attacks"]
    assert "attacks" in graph["energy"]
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle between subpackages: {' -> '.join(cycle)}"
