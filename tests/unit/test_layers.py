"""The import graph runs one way: config, then schemas, then features and registry, then learners and
monitor, then streams; and no module imports another that (directly or not) imports it back.

Every import counts, the ones inside functions too; only ``if TYPE_CHECKING:`` blocks are left out, since
they never run.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import hanzo.ml

ROOT = Path(hanzo.ml.__file__).parent
#: Package -> layer; a package may import only packages of a lower layer (and itself).
LAYERS = {
    "config": 0,
    "schemas": 1,
    "features": 2,
    "registry": 2,
    "learners": 3,
    "monitor": 3,
    "streams": 4,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["hanzo.ml", *parts])


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
            # ``from hanzo.ml.streams import embedded`` imports the module hanzo.ml.streams.embedded
            found.extend((f"{node.module}.{a.name}", node.lineno) for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> dict[str, dict[str, int]]:
    # hanzo/ml/<package> are symlinks to the top-level folders: walk through them
    walk = os.walk(ROOT, followlinks=True)
    paths = [Path(d) / f for d, _, files in walk for f in files if f.endswith(".py")]
    modules = {_module_name(p): p for p in paths}
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, {})
        for target, line in _imports(ast.parse(path.read_text(), str(path))):
            if target in modules and target != name:
                edges[target] = line
    return graph


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 else ""


def test_every_package_has_a_layer() -> None:
    folders = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert folders == set(LAYERS)
    assert len(_graph()) > 80


def _wrong_arrows(graph: dict[str, dict[str, int]]) -> list[str]:
    wrong = []
    for module, edges in graph.items():
        source = _package(module)
        if not source:  # hanzo.ml itself re-exports the public API
            continue
        for target, line in edges.items():
            dest = _package(target)
            if dest and dest != source and LAYERS[dest] >= LAYERS[source]:
                wrong.append(f"{module}:{line} imports {target} ({source} may import only lower layers)")
    return wrong


def _cycles(graph: dict[str, dict[str, int]]) -> list[str]:
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module)
    return cycles


def test_imports_only_run_down_the_layers() -> None:
    wrong = _wrong_arrows(_graph())
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_between_modules() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "\n".join(cycles)


def test_the_checks_catch_an_arrow_up_and_a_cycle() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from hanzo.ml.learners.spec import PipelineSpec\n"
        "def f():\n    from hanzo.ml.streams import worker\n"
    )
    targets = [t for t, _ in _imports(tree)]
    assert "hanzo.ml.learners.spec" not in targets  # type-checking imports never run
    assert "hanzo.ml.streams.worker" in targets  # function-level ones do
    graph = {
        "hanzo.ml.features.store": {"hanzo.ml.streams.worker": 3},
        "hanzo.ml.streams.worker": {"hanzo.ml.streams.app": 1},
        "hanzo.ml.streams.app": {"hanzo.ml.streams.worker": 2},
    }
    assert _wrong_arrows(graph) == [
        "hanzo.ml.features.store:3 imports hanzo.ml.streams.worker (features may import only lower layers)"
    ]
    assert _cycles(graph) == ["hanzo.ml.streams.worker -> hanzo.ml.streams.app -> hanzo.ml.streams.worker"]
