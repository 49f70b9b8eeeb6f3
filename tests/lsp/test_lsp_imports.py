"""fusion_lsp's modules import each other without a cycle, and each one imports on its own.

The feature modules once imported ``fusion_lsp.server`` for ``FusionServer`` while the
server imported them back (and ``actions`` imported ``review_feature`` for command
names): a four-file cycle that only worked in one import order.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import TopologicalSorter
from pathlib import Path

import pytest

import fusion_lsp

PACKAGE = Path(fusion_lsp.__file__).parent
MODULES = sorted(f"fusion_lsp.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__")
FEATURES = ("fusion_lsp.review_feature", "fusion_lsp.completion_feature", "fusion_lsp.actions")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(module: str) -> set[str]:
    """The fusion_lsp modules ``module`` imports when it runs (at the top or in a function), not for type checking."""
    path = PACKAGE / "__init__.py" if module == "fusion_lsp" else PACKAGE / f"{module.split('.')[1]}.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("fusion_lsp"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fusion_lsp"):
            if node.module == "fusion_lsp":
                for alias in node.names:
                    sub = f"fusion_lsp.{alias.name}"
                    found.add(sub if sub in MODULES else "fusion_lsp")
            else:
                found.add(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(module)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    graph = {module: runtime_imports(module) for module in [*MODULES, "fusion_lsp"]}
    assert graph["fusion_lsp.server"] >= {"fusion_lsp.review_feature", "fusion_lsp.document_sync"}  # the walk sees them
    for feature in (*FEATURES, "fusion_lsp.document_sync"):
        assert "fusion_lsp.server" not in graph[feature], f"{feature} imports the server at run time"
    order = list(TopologicalSorter(graph).static_order())  # raises CycleError on a cycle
    assert set(order) == set(graph)


def test_the_walk_finds_a_cycle_when_there_is_one() -> None:
    # The check itself must be able to fail: the old graph (features importing the server) is cyclic.
    from graphlib import CycleError

    old = {module: runtime_imports(module) for module in [*MODULES, "fusion_lsp"]}
    old["fusion_lsp.review_feature"] = old["fusion_lsp.review_feature"] | {"fusion_lsp.server"}
    with pytest.raises(CycleError):
        list(TopologicalSorter(old).static_order())


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_alone(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
