"""The package layout the architecture promises: the core never depends on a front end.

fusion_core is the engine every front end shares; the CLI (fusion_cli, drawn with rich),
the notebook and the language server sit on it. An import the wrong way would drag a front
end's dependencies into every other one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRONT_ENDS = ("fusion_cli", "fusion_jupyter", "fusion_lsp", "rich", "IPython", "ipywidgets", "pygls")


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted((ROOT / "fusion_core").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_imports_no_front_end(path: Path) -> None:
    wrong = _imported_roots(path) & set(FRONT_ENDS)
    assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_every_local_model_module_lives_in_the_llama_package() -> None:
    backends = ROOT / "fusion_core" / "backends"
    stray = [p.name for p in backends.glob("*.py") if "llama" in p.name] + [
        p.name for p in (ROOT / "fusion_core").glob("local_models*.py")
    ]
    assert not stray, f"local-model code outside fusion_core/backends/llama/: {stray}"
