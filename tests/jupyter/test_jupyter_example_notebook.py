"""``examples/fusion_notebook.ipynb`` runs top to bottom in a real kernel (nbclient), against the test server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rendered import shown_text

from fusion_core.testing.server import TestServer

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fusion_notebook.ipynb"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def kernel_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, remote_env: dict[str, str]) -> dict[str, str]:
    """What the kernel inherits: the test server, the example's mock pool, and temp Jupyter/IPython dirs."""
    for name in ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL", "FUSION_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "OPENROUTER_API_KEY": remote_env["OPENROUTER_API_KEY"],
        "OPENROUTER_BASE_URL": remote_env["OPENROUTER_BASE_URL"],
        "FUSION_EXAMPLE_POOL": "mock/alpha,mock/beta,mock/no-credits-402",
        "FUSION_EXAMPLE_JUDGE": "mock/judge",
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "HOME": str(tmp_path),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _outputs(cell: Any) -> list[dict[str, Any]]:
    return list(cell.get("outputs", []))


def _texts(cell: Any) -> str:
    parts = []
    for output in _outputs(cell):
        parts.append(output.get("text", ""))
        parts += [str(v) for v in output.get("data", {}).values()]
        parts += output.get("traceback", [])
    return "\n".join(parts)


@pytest.mark.timeout(180)
def test_example_notebook_runs_top_to_bottom(kernel_env: dict[str, str], tmp_path: Path, server: TestServer) -> None:
    notebook = nbformat.read(EXAMPLE, as_version=4)
    replies: dict[int, Any] = {}
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
        on_cell_executed=lambda cell, cell_index, execute_reply: replies.__setitem__(cell_index, execute_reply),
    )
    client.execute()

    fuse_cells = [c for c in notebook.cells if c.cell_type == "code" and c.source.startswith("%fuse ")]
    fuse_cells += [c for c in notebook.cells if c.cell_type == "code" and c.source.startswith("%%fuse")]
    assert [c.source.splitlines()[0] for c in fuse_cells] == [
        "%fuse --mode best-of Why is the sky blue?",
        "%%fuse --mode merge -o comparison",
        "%%fuse --mode best-of",
        "%%fuse -f code",
        "%%fuse --mode debate --rounds 2",
    ]
    # -f code: the kernel asks the front end for a new cell below holding the answer's code.
    code_cell = notebook.cells.index(fuse_cells[3])
    (payload,) = replies[code_cell]["content"]["payload"]
    assert payload["source"] == "set_next_input" and payload["replace"] is False
    # The mock pool answers without code blocks, so the new cell holds the whole fused answer.
    (code_result,) = [o for o in _outputs(fuse_cells[3]) if o["output_type"] == "execute_result"]
    assert payload["text"].startswith("Fused: ") and payload["text"] in code_result["data"]["text/plain"]
    for cell in fuse_cells:
        outputs = _outputs(cell)
        # The live view, then the static copy a saved notebook keeps without its kernel.
        assert any(WIDGET_MIME in o.get("data", {}) for o in outputs)
        (static,) = [o for o in outputs if o["output_type"] == "execute_result"]
        assert "text/markdown" in static["data"] and "text/plain" in static["data"]
        assert "mock/no-credits-402 failed: no_credits" in shown_text(static["data"]["text/markdown"])
        assert "Traceback" not in _texts(cell)
    merge_markdown = next(o for o in _outputs(fuse_cells[1]) if o["output_type"] == "execute_result")
    assert "Fused: " in shown_text(merge_markdown["data"]["text/markdown"])

    # The widget state is saved with the notebook: every pane's final text and status.
    state = json.dumps(notebook.metadata["widgets"])
    assert "fusion-status-done" in state and "fusion-status-failed" in state
    assert "[alpha] On" in state and "402 insufficient credits" in state

    # The key never reaches the notebook, and the server saw the example's prompts.
    assert kernel_env["OPENROUTER_API_KEY"] not in json.dumps(notebook)
    prompts = {e["messages"][-1]["content"].splitlines()[0] for e in server.log() if e["model"] == "mock/alpha"}
    assert "Compare the Python libraries ijson and json-stream for parsing a large JSON stream." in prompts
    last = notebook.cells[-1]
    assert '"mode": "debate"' in _texts(last)
