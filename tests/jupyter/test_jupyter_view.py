"""The widget view's state: after a run the widget models hold every model's text and status,
the fused answer, the verdict and the chart; redraws are throttled."""

from __future__ import annotations

from html import unescape

import pytest
from IPython.core.interactiveshell import InteractiveShell
from rendered import shown_text

from fusion_core import Fusion, RunSettings
from fusion_core.events import CandidateDelta, CandidateFinished, CandidateStarted, JudgeFailed, RunStarted
from fusion_core.result import FusionResult
from fusion_core.usage import Usage
from fusion_core.verdicts import BestOfVerdict
from fusion_jupyter import FusionMagics
from fusion_jupyter.view import FusionView


@pytest.fixture
def widget_magics(magics: FusionMagics) -> FusionMagics:
    magics.view = "widget"
    return magics


def run(ip: InteractiveShell, magics: FusionMagics, line: str) -> tuple[FusionView, FusionResult]:
    ip.run_cell_magic("fuse", line + " -o res", cell="Why is the sky blue?")
    assert isinstance(magics.last_view, FusionView)
    return magics.last_view, ip.user_ns["res"]


def test_panes_hold_each_models_text_and_status(ip: InteractiveShell, widget_magics: FusionMagics) -> None:
    view, result = run(
        ip, widget_magics, "--pool mock/alpha,mock/beta,mock/no-credits-402 --judge mock/judge --mode merge"
    )
    assert list(view.panes) == ["mock/alpha", "mock/beta", "mock/no-credits-402"]
    for cand in result.candidates:
        pane = view.panes[cand.model]
        assert pane.box in view.pane_box.children
        if cand.ok:
            assert pane.status == "done"
            assert "fusion-status-done" in pane.box._dom_classes
            assert cand.text in unescape(pane.body.value)
            head = unescape(pane.head.value)
            assert ">done<" in head and "tokens" in head and "$" in head and " s" in head
    failed = view.panes["mock/no-credits-402"]
    assert failed.status == "failed" and "fusion-status-failed" in failed.box._dom_classes
    assert "no_credits: mock/no-credits-402: 402 insufficient credits" in unescape(failed.body.value)
    assert "openrouter.ai/settings/credits" in failed.body.value  # the hint


def test_the_fused_answer_is_rendered_markdown_in_an_output_widget(
    ip: InteractiveShell, widget_magics: FusionMagics
) -> None:
    view, result = run(ip, widget_magics, "--pool mock/alpha,mock/beta --judge mock/judge --mode merge")
    assert view.answer.layout.display is None  # shown
    (output,) = view.answer.outputs
    assert set(output["data"]) == {"text/html", "text/plain"}  # rendered here, never live Markdown
    assert shown_text(output["data"]["text/html"]) == result.answer
    header = unescape(view.header.value)
    assert "merge" in header and ">done<" in header and "mock/alpha, mock/beta" in header
    assert "mock/judge" in header and result.usage.cost is not None
    assert f"{result.usage.total_tokens:,} tokens" in header
    assert "judge <code>mock/judge</code> done" in view.judge.value


def test_merge_verdict_shows_the_analysis_and_the_chart(ip: InteractiveShell, widget_magics: FusionMagics) -> None:
    view, result = run(ip, widget_magics, "--pool mock/alpha,mock/beta --judge mock/judge --mode merge")
    verdict = unescape(view.verdict.value)
    for title in ("Consensus", "Contradictions", "Unique insights", "Blind spots"):
        assert title in verdict
    assert "80%" in verdict  # confidence
    assert "<b>mock/alpha</b>:" in verdict  # each model's stance
    assert "— mock/beta" in verdict  # insights attributed to models
    chart = unescape(view.chart.value)
    assert chart.count(">mock/alpha<") == 1 and chart.count(">mock/beta<") == 1  # one row per model
    assert chart.count('class="fusion-bar') == 2 * 2 + 1  # each model's latency and cost, and the judge's cost
    assert "latency" in chart and "cost (share of the run)" in chart
    assert "Judge's rationale:</b> Candidate" in verdict


def test_best_of_verdict_shows_the_winner_and_every_score(ip: InteractiveShell, widget_magics: FusionMagics) -> None:
    view, result = run(ip, widget_magics, "--pool mock/alpha,mock/theta --judge mock/judge --mode best-of")
    assert result.judge is not None
    assert isinstance(result.judge.verdict, BestOfVerdict)
    winner = result.judge.verdict.winner
    verdict = unescape(view.verdict.value)
    assert f"winner: <b>{winner}</b>" in verdict
    assert "score (0–10)" in verdict and ">9<" in verdict and ">5<" in verdict


def test_debate_shows_each_round(ip: InteractiveShell, widget_magics: FusionMagics) -> None:
    view, result = run(ip, widget_magics, "--pool mock/alpha,mock/beta --judge mock/judge --mode debate --rounds 2")
    for model in ("mock/alpha", "mock/beta"):
        body = unescape(view.panes[model].body.value)
        assert "round 1" in body and "round 2" in body
        first, second = (rnd for rnd in result.rounds)
        assert next(c.text for c in first if c.model == model) in body
        assert next(c.text for c in second if c.model == model) in body
    assert "round 2/2" in view.header.value


def test_redraws_are_throttled_per_pane() -> None:
    now = [0.0]
    view = FusionView(["m/a"], "m/judge", clock=lambda: now[0], min_interval_s=0.1)
    sent: list[str] = []
    view.handle(RunStarted(mode="merge", models=("m/a",), judge="m/judge"))
    view.panes["m/a"].body.observe(lambda change: sent.append(change["new"]), names="value")
    view.handle(CandidateStarted(model="m/a", label="A"))
    for i in range(100):  # a burst of tokens within one interval
        view.handle(CandidateDelta(model="m/a", text=f"t{i} "))
    assert len(sent) == 1  # the status change only
    now[0] = 0.15
    view.handle(CandidateDelta(model="m/a", text="late "))
    assert len(sent) == 2 and "t99 late" in sent[-1]
    view.handle(CandidateDelta(model="m/a", text="pending"))
    assert len(sent) == 2
    view.handle(CandidateFinished(model="m/a", text="done text", usage=Usage(1, 2, 0.001), latency_s=0.2))
    assert len(sent) == 3 and "done text" in sent[-1]
    assert view.panes["m/a"].status == "done"


async def test_the_judge_line_says_failed_as_soon_as_the_judge_gives_up(remote_env: dict[str, str]) -> None:
    pool = ("mock/alpha", "mock/beta")
    view = FusionView(pool, "mock/judge-offformat")
    fusion = Fusion(env=remote_env)
    line_at_judge_failed = ""
    settings = RunSettings(pool=pool, judge="mock/judge-offformat", mode="merge")
    async for event in fusion.stream("Why is the sky blue?", settings):
        view.handle(event)
        if isinstance(event, JudgeFailed):
            line_at_judge_failed = unescape(view.judge.value)
    await fusion.aclose()
    # Drawn from JudgeFailed, before RunFinished: the error and its hint, not "repairing…".
    assert "judge <code>mock/judge-offformat</code> failed" in line_at_judge_failed
    assert "judge:" in line_at_judge_failed and "fusion-hint" in line_at_judge_failed
