"""The ``%%fuse`` view in a real JupyterLab page, driven by headless Chromium through Playwright.

Runs ``examples/fusion_notebook.ipynb`` against the loopback test server and checks that every
model's pane streams live, that the fused answer, verdict and chart render, and that a saved
notebook reopened without its kernel still shows the answer. Screenshots (light and dark theme)
go to ``test-artifacts/``. Without a browser the test is skipped, except under ``CI=true``,
where that is a failure.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from jupyter_harness import CHROMIUM_ARGS, chromium_path, run_jupyterlab, unavailable

from fusion_core.testing.server import TestServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

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
MS = 1000

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
        f"() => document.querySelectorAll('.fusion-answer .jp-RenderedMarkdown').length >= {count}", timeout=60 * MS
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
    shutil.copy(EXAMPLE, root / EXAMPLE.name)
    env = {
        "OPENROUTER_API_KEY": remote_env["OPENROUTER_API_KEY"],
        "OPENROUTER_BASE_URL": remote_env["OPENROUTER_BASE_URL"],
        "FUSION_EXAMPLE_POOL": POOL,
        "FUSION_EXAMPLE_JUDGE": "mock/judge",
    }

    with run_jupyterlab(root, env) as lab, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1300})
            _open_notebook(page, lab.page_url(EXAMPLE.name))
            _command(page, "notebook:run-all-cells", wait=False)

            # Live: a pane shows streamed text while its cell is still running.
            slow = page.locator(".fusion-pane", has_text="mock/lat-2000").first
            streaming = slow.locator(".fusion-text")
            expect(slow).to_have_class(re.compile(r"\bfusion-status-streaming\b"), timeout=30 * MS)
            streaming.wait_for(timeout=10 * MS)
            assert "[lat-2000]" in streaming.inner_text()
            first = page.locator(".fusion-view").first
            assert first.locator(".fusion-answer .jp-RenderedMarkdown").count() == 0
            _screenshot(page, first, "jupyterlab-streaming.png")

            _wait_for_answers(page, 3)
            views = page.locator(".fusion-view")
            expect(views).to_have_count(3)
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
            expect(first.locator(".fusion-verdict")).to_contain_text("Consensus")
            expect(first.locator(".fusion-chart .fusion-bar")).to_have_count(8)  # latency and cost × 4 models
            expect(views.nth(1).locator(".fusion-verdict")).to_contain_text("winner:")
            expect(views.nth(2).locator(".fusion-pane").first).to_contain_text("round 2")
            # The static copy for widget-less viewers is in the page, hidden behind the live view.
            static = page.locator(".jp-OutputArea-child:has(.fusion-static)")
            expect(static).to_have_count(3)
            expect(static.first).to_be_hidden()

            _screenshot(page, first, "jupyterlab.png")
            _command(page, "apputils:change-theme", {"theme": "JupyterLab Dark"})
            page.wait_for_selector('body[data-jp-theme-light="false"]', state="attached", timeout=15 * MS)
            _screenshot(page, first, "jupyterlab-dark.png")

            # Saved and reopened with a new kernel: the widgets are gone, the answer is not.
            _command(page, "docmanager:save")
            page.wait_for_timeout(500)
            _command(page, "kernelmenu:shutdown")
            _open_notebook(page, lab.page_url(EXAMPLE.name))
            answer = page.locator(".jp-OutputArea-child:has(.fusion-static)").first
            expect(answer).to_be_visible()
            expect(answer).to_contain_text("Fused: ")
        finally:
            browser.close()
