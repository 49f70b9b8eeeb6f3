"""The ``%%fuse`` view in a real JupyterLab page, driven by headless Chromium through Playwright.

Runs ``examples/fusion_notebook.ipynb`` against the loopback test server and checks that every
model's pane streams live (tokens so far), that the fused answer, verdict and chart render, that
``-f code`` opens a new cell with the answer's code, that the pane buttons copy and collapse, and
that a saved notebook reopened without its kernel still shows the answer. A last cell, added to
the copy, fuses mock/hostile-html's ``<img onerror>``, ``<script>`` and ``javascript:`` payloads:
each would set ``window.__fusion_pwned`` and the page title if it ran, and none may. Screenshots (light and dark theme)
go to ``test-artifacts/``. Without a browser the test is skipped, except under ``CI=true``,
where that is a failure.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jupyter_harness import CHROMIUM_ARGS, chromium_path, run_jupyterlab, unavailable

from fusion_core.testing.server import TestServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "fusion_notebook.ipynb"
ARTIFACTS = REPO / "test-artifacts"
# mock/lat-2000 streams for two seconds, long enough to watch a pane update while the cell is busy;
# script/coder answers with a code block, and the mock judge's fused answer keeps it ([BEST] wins).
POOL = "mock/alpha,mock/lat-2000,script/coder,mock/no-credits-402"
CODER_REPLY = (
    '[BEST] Stream it with ijson:\n\n```python\nimport ijson\n\nwith open("big.json", "rb") as f:\n'
    '    for item in ijson.items(f, "item"):\n        print(item["id"])\n```\n'
)
HOSTILE_CELL = "%%fuse --pool mock/hostile-html,mock/alpha --judge mock/judge --mode merge\nSay hello."
FUSE_CELLS = 6  # the example's five, and the hostile one
MS = 1000
NO_SCRIPT_RAN = """() => window.__fusion_pwned === undefined && document.title !== 'pwned'"""
LIVE_MARKUP = """() => document.querySelectorAll(
  '.jp-OutputArea-output script, .jp-OutputArea-output [onerror], .jp-OutputArea-output [onload], ' +
  '.jp-OutputArea-output a[href^="javascript:"], .jp-OutputArea-output img').length"""
CELL_SOURCES = """() => {
  const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
  return Array.from({length: cells.length}, (_, i) => cells.get(i).sharedModel.getSource());
}"""

KERNEL_IDLE = """() => {
  const kernel = window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel;
  return kernel?.status === 'idle';
}"""


def _command(page: Any, command: str, args: dict[str, Any] | None = None, *, wait: bool = True) -> None:
    """Run a JupyterLab command; with ``wait``, until its promise settles (for run-all: every cell ran)."""
    script = (
        "([id, args]) => window.jupyterapp.commands.execute(id, args)"
        if wait
        else "([id, args]) => { window.jupyterapp.commands.execute(id, args); }"
    )
    page.evaluate(script, [command, args or {}])


def _open_notebook(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60 * MS)
    page.wait_for_function(KERNEL_IDLE, timeout=60 * MS)
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")


def _wait_for_answers(page: Any, count: int) -> None:
    page.wait_for_function(
        f"() => document.querySelectorAll('.fusion-answer .jp-RenderedHTML').length >= {count}", timeout=120 * MS
    )
    page.wait_for_function(KERNEL_IDLE, timeout=30 * MS)


def _screenshot(page: Any, view: Any, name: str) -> None:
    view.evaluate("el => el.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)  # let the scroll and theme transitions settle
    page.screenshot(path=str(ARTIFACTS / name))


def test_fuse_cells_render_live_in_jupyterlab(tmp_path: Path, remote_env: dict[str, str], server: TestServer) -> None:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright)")
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        unavailable("jupyterlab is not installed (pip install jupyterlab)")
    chromium = chromium_path()
    server.script("script/coder", default=CODER_REPLY, chunk_delay_s=0.01)
    ARTIFACTS.mkdir(exist_ok=True)
    root = tmp_path / "notebooks"
    root.mkdir()
    notebook = json.loads(EXAMPLE.read_text())
    notebook["cells"].append(
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "hostile",
            "metadata": {},
            "outputs": [],
            "source": HOSTILE_CELL,
        }
    )
    (root / EXAMPLE.name).write_text(json.dumps(notebook))
    env = {
        "OPENROUTER_API_KEY": remote_env["OPENROUTER_API_KEY"],
        "OPENROUTER_BASE_URL": remote_env["OPENROUTER_BASE_URL"],
        "FUSION_EXAMPLE_POOL": POOL,
        "FUSION_EXAMPLE_JUDGE": "mock/judge",
    }

    with run_jupyterlab(root, env) as lab, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 1300})
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab.url)
            page = context.new_page()
            _open_notebook(page, lab.page_url(EXAMPLE.name))
            _command(page, "notebook:run-all-cells", wait=False)

            # Live: a pane shows streamed text while its cell is still running.
            slow = page.locator(".fusion-pane", has_text="mock/lat-2000").first
            streaming = slow.locator(".fusion-text")
            expect(slow).to_have_class(re.compile(r"\bfusion-status-streaming\b"), timeout=30 * MS)
            streaming.wait_for(timeout=10 * MS)
            assert "[lat-2000]" in streaming.inner_text()
            expect(slow.locator(".fusion-stats")).to_contain_text(re.compile(r"~\d+ tokens so far"))
            first = page.locator(".fusion-view").first
            assert first.locator(".fusion-answer .jp-RenderedHTML").count() == 0
            _screenshot(page, first, "jupyterlab-streaming.png")

            _wait_for_answers(page, FUSE_CELLS)
            views = page.locator(".fusion-view")
            expect(views).to_have_count(FUSE_CELLS)
            # Nothing from mock/hostile-html ran: no global, no title, no live element; the markup shows as text.
            assert page.evaluate(NO_SCRIPT_RAN), page.evaluate("() => [window.__fusion_pwned, document.title]")
            assert page.evaluate(LIVE_MARKUP) == 0
            hostile = views.nth(FUSE_CELLS - 1)
            expect(hostile.locator(".fusion-answer")).to_contain_text("<img src=x onerror=")
            expect(hostile.locator(".fusion-answer")).to_contain_text("<script>window.__fusion_pwned")
            expect(hostile.locator(".fusion-answer strong")).to_have_text("Hostile")  # Markdown still renders
            expect(hostile.locator(".fusion-pane", has_text="mock/hostile-html")).to_contain_text("<svg onload=")
            panes = first.locator(".fusion-pane")
            expect(panes).to_have_count(4)
            for model in POOL.split(","):
                expect(first.locator(".fusion-pane .fusion-model", has_text=model)).to_have_count(1)
            expect(first.locator(".fusion-pane.fusion-status-done")).to_have_count(3)
            failed = first.locator(".fusion-pane.fusion-status-failed")
            expect(failed).to_contain_text("402 insufficient credits")
            expect(first.locator(".fusion-pane", has_text="script/coder")).to_contain_text('ijson.items(f, "item")')
            expect(first.locator(".fusion-header")).to_contain_text("merge")
            expect(first.locator(".fusion-answer")).to_contain_text("Fused: ")
            # The fused answer is Markdown: its code block is rendered and highlighted by JupyterLab.
            code = first.locator(".fusion-answer pre")
            expect(code).to_contain_text("import ijson")
            assert code.locator("span").count() > 3, code.inner_html()
            keyword, text = code.locator("span.kn").first, code.locator("code")
            assert keyword.evaluate("e => getComputedStyle(e).color") != text.evaluate("e => getComputedStyle(e).color")
            verdict = first.locator(".fusion-verdict")
            expect(verdict).to_contain_text("Consensus")
            expect(verdict.locator(".fusion-rationale")).to_contain_text("Judge's rationale: Candidate")
            # The confidence percentage sits right after its bar.
            bar = verdict.locator(".fusion-scores .fusion-bar").first.bounding_box()
            percent = verdict.locator(".fusion-scores .fusion-num", has_text="80%").bounding_box()
            assert bar and percent and 0 <= percent["x"] - (bar["x"] + bar["width"]) <= 16, (bar, percent)
            # Latency and cost per model, and the judge's cost.
            expect(first.locator(".fusion-chart .fusion-bar")).to_have_count(4 * 2 + 1)
            # Two panes stretch over the whole row.
            grid, last = hostile.locator(".fusion-pane").first.locator(".."), hostile.locator(".fusion-pane").last
            grid_box, last_box = grid.bounding_box(), last.bounding_box()
            assert grid_box and last_box and last_box["x"] + last_box["width"] >= grid_box["x"] + grid_box["width"] - 4
            expect(views.nth(1).locator(".fusion-verdict")).to_contain_text("winner:")
            expect(views.nth(2).locator(".fusion-header")).to_contain_text("best-of")  # the %fuse one-liner
            expect(views.nth(4).locator(".fusion-pane").first).to_contain_text("round 2")
            # -f code: a new cell right below holds the fused answer's code.
            sources = page.evaluate(CELL_SOURCES)
            code_cell = next(i for i, src in enumerate(sources) if src.startswith("%%fuse -f code"))
            assert sources[code_cell + 1].startswith("import ijson\n"), sources[code_cell + 1]
            assert '"rb") as f:' in sources[code_cell + 1] and "```" not in sources[code_cell + 1]
            # The static copy for widget-less viewers is in the page, hidden behind the live view.
            static = page.locator(".jp-OutputArea-child:has(.fusion-static)")
            expect(static).to_have_count(FUSE_CELLS)
            expect(static.first).to_be_hidden()

            _screenshot(page, first, "jupyterlab.png")
            _command(page, "apputils:change-theme", {"theme": "JupyterLab Dark"})
            page.wait_for_selector('body[data-jp-theme-light="false"]', state="attached", timeout=15 * MS)
            _screenshot(page, first, "jupyterlab-dark.png")
            _screenshot(page, hostile, "jupyterlab-hostile.png")

            # Each pane copies its text and collapses.
            coder = first.locator(".fusion-pane", has_text="script/coder")
            coder.locator(".fusion-copy").click()
            expect(coder.locator(".fusion-copy")).to_have_text("copied")
            assert page.evaluate("() => navigator.clipboard.readText()") == CODER_REPLY
            coder.locator(".fusion-collapse").click()
            expect(coder.locator(".fusion-scroll")).to_be_hidden()
            coder.locator(".fusion-collapse").click()
            expect(coder.locator(".fusion-scroll")).to_be_visible()

            # Saved and reopened with a new kernel: the widgets are gone, the answer is not.
            _command(page, "docmanager:save")
            page.wait_for_timeout(500)
            _command(page, "kernelmenu:shutdown")
            _open_notebook(page, lab.page_url(EXAMPLE.name))
            answer = page.locator(".jp-OutputArea-child:has(.fusion-static)").first
            expect(answer).to_be_visible()
            expect(answer).to_contain_text("Fused: ")
            # The reopened (trusted) notebook renders the static copies; still nothing runs.
            statics = page.locator(".jp-OutputArea-child:has(.fusion-static)")
            expect(statics).to_have_count(FUSE_CELLS)
            statics.last.scroll_into_view_if_needed()
            expect(statics.last).to_contain_text("<img src=x onerror=")
            assert page.evaluate(NO_SCRIPT_RAN) and page.evaluate(LIVE_MARKUP) == 0
        finally:
            browser.close()
