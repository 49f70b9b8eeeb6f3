"""The one per-model state machine, folded from real engine runs, and the judge's closing events.

Every run here is the real engine: the scripted backend for timing-sensitive
cases, the loopback OpenRouter server for the HTTP path. The state machine is
fed the stream exactly as the notebook, the CLI and the language server feed it.
"""

from __future__ import annotations

import io
import json
import random

from rich.console import Console

from fusion_core import Fusion, RunSettings
from fusion_core.backends.scripted import ScriptedBackend
from fusion_core.cli.progress import RunView
from fusion_core.errors import NoCredits
from fusion_core.events import CandidateEvent, Event, JudgeFailed, JudgeFinished, RunFinished
from fusion_core.result import FusionResult
from fusion_core.run_state import (
    CANCELLED,
    DONE,
    FAILED,
    JUDGING,
    REPAIRING,
    SKIPPED,
    STREAMING,
    WAITING,
    RunState,
)
from fusion_core.testing.replies import merge_verdict
from fusion_core.testing.server import TestServer

# Names no label: the survivors' labels are shuffled per run.
MERGE_VERDICT = json.dumps({**merge_verdict({"A": "answer a"}), "unique_insights": []})


class Recorder:
    """Feeds a real stream into RunState and keeps every model's and the judge's status history."""

    def __init__(self) -> None:
        self.state = RunState()
        self.events: list[Event] = []
        self.history: dict[str, list[str]] = {}
        self.judge_history: list[str] = []
        # The judge's status as it stood right after JudgeFinished/JudgeFailed, before RunFinished.
        self.judge_status_before_result = ""

    def apply(self, event: Event) -> None:
        self.events.append(event)
        self.state.apply(event)
        for model, pane in self.state.panes.items():
            seen = self.history.setdefault(model, [])
            if not seen or seen[-1] != pane.status:
                seen.append(pane.status)
        if not self.judge_history or self.judge_history[-1] != self.state.judge.status:
            self.judge_history.append(self.state.judge.status)
        if isinstance(event, JudgeFinished | JudgeFailed):
            self.judge_status_before_result = self.state.judge.status

    @property
    def result(self) -> FusionResult:
        last = self.events[-1]
        assert isinstance(last, RunFinished)
        return last.result

    def of_type(self, kind: type) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


async def record(fusion: Fusion, settings: RunSettings, prompt: str = "q") -> Recorder:
    recorder = Recorder()
    async for event in fusion.stream(prompt, settings):
        recorder.apply(event)
    await fusion.aclose()
    return recorder


def scripted(models: dict[str, list[str | Exception]], judge: list[str | Exception], *, slow: bool = False) -> Fusion:
    fusion = Fusion(rng=random.Random(3))
    fusion.resolver.register("s", ScriptedBackend(models))
    fusion.resolver.register("slow", ScriptedBackend({"z": ["a very slow straggler answer indeed"]}, chunk_delay_s=0.5))
    fusion.resolver.register("j", ScriptedBackend({"judge": judge}))
    return fusion


async def test_each_model_goes_waiting_streaming_then_done_failed_or_cancelled() -> None:
    fusion = scripted(
        {"a": ["answer a"], "b": [NoCredits("s:b: 402 insufficient credits", status=402)], "c": ["answer c"]},
        judge=[MERGE_VERDICT],
    )
    settings = RunSettings(pool=("s:a", "s:b", "s:c", "slow:z"), judge="j:judge", mode="merge", quorum=2)
    run = await record(fusion, settings)

    assert run.history == {
        "s:a": [WAITING, STREAMING, DONE],
        "s:b": [WAITING, STREAMING, FAILED],
        "s:c": [WAITING, STREAMING, DONE],
        "slow:z": [WAITING, STREAMING, CANCELLED],
    }
    assert run.judge_history == [WAITING, JUDGING, DONE]
    failed = run.state.panes["s:b"]
    assert failed.error is not None and failed.error.kind == "no_credits"
    assert run.state.phase == DONE and run.result.status == "ok"
    # The state's per-model text and usage agree with the result's candidates.
    for cand in run.result.candidates:
        pane = run.state.panes[cand.model]
        assert pane.text == cand.text and pane.label == cand.label


async def test_debate_rounds_stream_again_and_keep_each_rounds_text() -> None:
    fusion = scripted(
        {"a": ["first a", "revised a, quite different now"], "b": ["first b", "revised b, also changed a lot"]},
        judge=[MERGE_VERDICT],
    )
    run = await record(fusion, RunSettings(pool=("s:a", "s:b"), judge="j:judge", mode="debate", rounds=2))

    assert run.history["s:a"] == [WAITING, STREAMING, DONE, STREAMING, DONE]
    pane = run.state.panes["s:a"]
    assert pane.round == 2 and pane.texts == {1: "first a", 2: "revised a, quite different now"}
    assert run.state.finished_rounds == {2: False}
    assert {e.round for e in run.events if isinstance(e, CandidateEvent)} == {1, 2}


async def test_judge_finished_arrives_before_run_finished_over_http(
    server: TestServer, remote_env: dict[str, str]
) -> None:
    run = await record(
        Fusion(env=remote_env), RunSettings(pool=("mock/alpha", "mock/beta"), judge="mock/judge", mode="merge")
    )

    (finished,) = run.of_type(JudgeFinished)
    assert not run.of_type(JudgeFailed)
    assert isinstance(finished, JudgeFinished)
    assert run.events.index(finished) == len(run.events) - 2  # right before RunFinished
    assert finished.model == "mock/judge" and finished.outcome == run.result.judge
    assert finished.outcome.usage.completion_tokens > 0
    assert run.judge_status_before_result == DONE


async def test_an_off_format_judge_ends_in_judge_failed_with_its_error(
    server: TestServer, remote_env: dict[str, str]
) -> None:
    settings = RunSettings(pool=("mock/alpha", "mock/beta"), judge="mock/judge-offformat", mode="merge")
    run = await record(Fusion(env=remote_env), settings)

    (failed,) = run.of_type(JudgeFailed)
    assert not run.of_type(JudgeFinished)
    assert isinstance(failed, JudgeFailed)
    assert run.result.status == "judge_failed" and run.result.judge is not None
    assert failed.outcome == run.result.judge and failed.error == run.result.judge.error
    assert failed.error.kind == "judge"
    # The judge was asked to repair once, then failed; the state said so before the result arrived.
    assert run.judge_history == [WAITING, JUDGING, REPAIRING, FAILED]
    assert run.judge_status_before_result == FAILED
    assert run.state.judge.error == failed.error
    assert all(run.state.panes[m].status == DONE for m in ("mock/alpha", "mock/beta"))


async def test_a_judge_whose_backend_errors_ends_in_judge_failed() -> None:
    fusion = scripted(
        {"a": ["answer a"], "b": ["answer b"]}, judge=[NoCredits("j:judge: 402 insufficient credits", status=402)]
    )
    run = await record(fusion, RunSettings(pool=("s:a", "s:b"), judge="j:judge", mode="best-of"))

    (failed,) = run.of_type(JudgeFailed)
    assert isinstance(failed, JudgeFailed)
    assert failed.error.kind == "no_credits" and failed.model == "j:judge"
    assert run.result.status == "judge_failed" and [c.text for c in run.result.candidates] == ["answer a", "answer b"]
    assert run.judge_status_before_result == FAILED


async def test_no_judge_events_when_no_judge_runs() -> None:
    alone = await record(scripted({"a": ["only me"]}, judge=[]), RunSettings(pool=("s:a",), judge=""))
    assert not alone.of_type(JudgeFinished) and not alone.of_type(JudgeFailed)
    assert alone.state.judge.status == SKIPPED and alone.result.answer == "only me"

    fusion = scripted({"a": [NoCredits("s:a: 402", status=402)], "b": [NoCredits("s:b: 402", status=402)]}, judge=[])
    nobody = await record(fusion, RunSettings(pool=("s:a", "s:b"), judge="j:judge"))
    assert not nobody.of_type(JudgeFinished) and not nobody.of_type(JudgeFailed)
    assert nobody.state.judge.status == SKIPPED and nobody.state.phase == "no answer"


async def test_the_cli_table_shows_the_shared_states_and_the_judges_end() -> None:
    fusion = scripted(
        {"a": ["answer a"], "b": [NoCredits("s:b: 402 insufficient credits", status=402)]},
        judge=["not json", "still not json"],
    )
    view = RunView()
    seen_judge_failed = False
    async for event in fusion.stream("q", RunSettings(pool=("s:a", "s:b"), judge="j:judge", mode="best-of")):
        view.apply(event)
        if isinstance(event, JudgeFailed):
            # The judge's row says failed as soon as the judge gives up, not only at the end.
            seen_judge_failed = "failed" in _row(view, "judge j:judge")
    await fusion.aclose()

    assert seen_judge_failed
    assert "done" in _row(view, "s:a")
    failed = _row(view, "s:b")
    assert "failed" in failed and "no_credits: 402 insufficient credits" in failed
    assert "judge: " in _row(view, "judge j:judge")


def _row(view: RunView, name: str) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(view.table())
    return next(line for line in out.getvalue().splitlines() if line.startswith(name + " "))
