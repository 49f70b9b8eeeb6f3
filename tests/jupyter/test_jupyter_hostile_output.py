"""An endpoint's HTML or script in an answer never reaches the notebook as live markup.

mock/hostile-html answers with ``<img onerror>``, ``<script>``, ``<svg onload>`` and
``javascript:`` links, and the mock judge fuses it into the answer. Every output the
magic produces is checked here; tests/e2e/test_jupyterlab.py proves in a real browser
that none of it runs.
"""

from __future__ import annotations

from html import unescape

import pytest
from IPython.core.interactiveshell import InteractiveShell
from rendered import live_markup, markdown_html, shown_text

from fusion_core.result import FusionResult
from fusion_core.testing.catalogue import HOSTILE_HTML_TEXT
from fusion_jupyter import FusionMagics, FusionOutput
from fusion_jupyter.html import PANE_TOOLS
from fusion_jupyter.safe_html import answer_html, markdown_text

LINE = "--pool mock/hostile-html,mock/alpha --judge mock/judge -o res"


@pytest.mark.parametrize("mode", ["merge", "best-of"])
def test_the_widget_views_answer_shows_the_markup_as_text(
    ip: InteractiveShell, magics: FusionMagics, mode: str
) -> None:
    magics.view = "widget"
    ip.run_cell_magic("fuse", f"{LINE} --mode {mode}", cell="Say hello")
    result: FusionResult = ip.user_ns["res"]
    assert result.ok and "<script>" in result.answer  # the hostile answer won and was fused
    view = magics.last_view
    (output,) = view.answer.outputs
    html = output["data"]["text/html"]
    assert live_markup(html) == []
    shown = shown_text(html)
    assert "<img src=x onerror=" in shown and "<script>window.__fusion_pwned" in shown  # visible, as text
    assert "<strong>Hostile</strong>" in html  # Markdown still renders
    for pane in view.panes.values():
        # The head's only handlers are the pane's own copy and collapse buttons.
        assert live_markup(pane.head.value.replace(PANE_TOOLS, "") + pane.body.value) == []
    assert HOSTILE_HTML_TEXT in unescape(view.panes["mock/hostile-html"].body.value)
    assert live_markup(view.verdict.value + view.chart.value) == []


@pytest.mark.parametrize("mode", ["merge", "best-of"])
def test_the_static_markdown_copy_carries_no_live_html(ip: InteractiveShell, mode: str) -> None:
    shown = ip.run_cell_magic("fuse", f"{LINE} --mode {mode}", cell="Say hello")
    assert isinstance(shown, FusionOutput)
    markdown = shown._repr_mimebundle_()["text/markdown"]
    # Rendered as a notebook front end renders trusted Markdown: raw HTML passes through.
    assert live_markup(markdown_html(markdown)) == []
    assert "<img src=x onerror=" in shown_text(markdown)


def test_the_judge_failed_copy_sanitises_every_candidate(ip: InteractiveShell) -> None:
    shown = ip.run_cell_magic("fuse", f"{LINE} --judge mock/judge-offformat", cell="Say hello")
    result: FusionResult = ip.user_ns["res"]
    assert result.status == "judge_failed"
    markdown = shown._repr_mimebundle_()["text/markdown"]
    assert live_markup(markdown_html(markdown)) == []
    assert "<script>window.__fusion_pwned" in shown_text(markdown)


@pytest.mark.parametrize(
    "payload",
    [
        '<a href="javascript:alert(1)">x</a>',
        "[x](javascript:alert(1))",
        "![x](https://tracker.example/p.png)",
        "<iframe src=https://example.com></iframe>",
        '<div onmouseover="alert(1)">x</div>',
        "<details open ontoggle=alert(1)>",
        "```html\n<script>alert(1)</script>\n```",
        "<<script>script>alert(1)<</script>/script>",
        '<span class="jp-Notebook">x</span>',
    ],
)
def test_answer_html_and_markdown_text_neutralise_payloads(payload: str) -> None:
    html = answer_html(payload)
    assert live_markup(html) == [], html
    assert '<span class="jp-' not in html  # no borrowing JupyterLab's classes
    assert live_markup(markdown_html(markdown_text(payload))) == []
    assert shown_text(markdown_text(payload)) == " ".join(payload.split())  # shown exactly, as text
