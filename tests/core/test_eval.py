"""`fusion eval` and the inspect provider, end to end against the loopback test server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai")

# Named third-party warnings: inspect_ai's task runner leaves anyio memory streams to the
# garbage collector, and its retry setup uses a tenacity argument tenacity now deprecates.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in.*MemoryObjectReceiveStream:pytest.PytestUnraisableExceptionWarning"
    ),
    pytest.mark.filterwarnings("ignore:The 'initial' parameter is deprecated:DeprecationWarning"),
]

from inspect_ai.log import read_eval_log  # noqa: E402

from fusion_core.eval import evaluate  # noqa: E402
from fusion_core.testing.server import TestServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CODE_TASKS = ROOT / "examples" / "evals" / "code.jsonl"
ROW_KEYS = {
    "system",
    "kind",
    "mode",
    "n",
    "accuracy",
    "ci95",
    "partial_credit",
    "cost_usd",
    "latency_p50_s",
    "latency_p95_s",
    "tokens",
}
TASK_FILE = """
from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.scorer import includes
from inspect_ai.solver import generate


@task
def capitals():
    samples = [Sample(id="fr", input="Capital of France?", target="Paris"),
               Sample(id="it", input="Capital of Italy?", target="Rome"),
               Sample(id="es", input="Capital of Spain?", target="Madrid")]
    return Task(dataset=MemoryDataset(samples), solver=generate(), scorer=includes())
"""


@pytest.fixture
def eval_env(remote_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test server's key and URL, a private inspect cache, no run log: for this process and subprocesses."""
    env = dict(remote_env, INSPECT_CACHE_DIR=str(tmp_path / "cache"), FUSION_NO_LOG="1")
    for key in ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL", "INSPECT_CACHE_DIR", "FUSION_NO_LOG"):
        monkeypatch.setenv(key, env[key])
    return env


def code_subset(tmp_path: Path, names: tuple[str, ...] = ("add", "is_even", "count_vowels")) -> Path:
    rows = [json.loads(line) for line in CODE_TASKS.read_text().splitlines()]
    path = tmp_path / "code.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows if r["entry_point"] in names))
    return path


def script_coders(server: TestServer) -> None:
    """script/good answers every task right (and asks the mock judge to pick it); script/bad returns None."""
    good = {
        "def add": "    return a + b\n",
        "def is_even": "    return n % 2 == 0\n",
        "def count_vowels": "    return sum(c in 'aeiou' for c in word.lower())\n",
    }
    rules = [{"if_contains": k, "reply": v + "# [BEST]\n"} for k, v in good.items()]
    server.script("script/good", rules=rules, default="    pass\n")
    # Right on is_even only, and only for some inputs of count_vowels: partial credit.
    server.script(
        "script/bad",
        rules=[
            {"if_contains": "def is_even", "reply": "    return n % 2 == 0\n"},
            {"if_contains": "def count_vowels", "reply": "    return word.count('a')\n"},
        ],
        default="    return None\n",
    )


def cli(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fusion_cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=240
    )


def chat_requests(server: TestServer) -> int:
    return len(server.log())


def test_fusion_eval_on_the_test_server(server: TestServer, eval_env: dict[str, str], tmp_path: Path) -> None:
    script_coders(server)
    tasks = code_subset(tmp_path)
    out = tmp_path / "out"
    pool = "script/good,script/bad"
    done = cli(eval_env, "eval", str(tasks), "--pool", pool, "--judge", "mock/judge", "--json", "--out", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert json.loads((out / "report.json").read_text()) == report
    assert (out / "chart.png").read_bytes().startswith(b"\x89PNG")
    assert set(report) >= {"rows", "paired", "samples", "log_dir"}
    rows = {r["system"]: r for r in report["rows"]}
    for row in rows.values():
        assert set(row) >= ROW_KEYS
    assert rows["script/good"]["kind"] == "member" and rows["script/good"]["accuracy"] == 1.0
    assert rows["script/bad"]["accuracy"] == pytest.approx(1 / 3)
    # partial credit: add 0/4, is_even 4/4, count_vowels 2/5 ('Banana' and 'xyz', '' pass ... counted by the sandbox)
    assert 0.3 < rows["script/bad"]["partial_credit"] < 1.0
    fused = rows["fusion best-of"]
    assert fused["kind"] == "fusion" and fused["accuracy"] == 1.0 and fused["n"] == 3
    # Remote models cost money; the fused system pays for both candidates and the judge.
    assert rows["script/good"]["cost_usd"] > 0 and rows["script/bad"]["cost_usd"] > 0
    assert fused["cost_usd"] > rows["script/good"]["cost_usd"] + rows["script/bad"]["cost_usd"]
    assert fused["latency_p50_s"] > 0 and fused["tokens"] > 0
    assert rows["oracle (any candidate)"]["kind"] == "oracle"
    paired = {p["system"]: p for p in report["paired"]}
    assert set(paired["script/bad"]) == {"system", "vs", "wins", "losses", "p_value"}
    assert paired["script/bad"]["vs"] == "script/good" and paired["script/bad"]["losses"] == 2
    for sample in report["samples"]:
        assert set(sample) == {"id", "system", "score", "partial", "answer", "truncated"}
    # The report agrees with inspect's log, sample by sample: the same answer text and score.
    [log_file] = Path(report["log_dir"]).glob("*.eval")
    log = read_eval_log(str(log_file))
    assert log.status == "success"
    fused_samples = {s["id"]: s for s in report["samples"] if s["system"] == "fusion best-of"}
    for sample in log.samples or []:
        score = next(iter((sample.scores or {}).values()))
        assert fused_samples[str(sample.id)]["answer"] == score.answer == sample.output.completion
        assert fused_samples[str(sample.id)]["score"] == score.value
        candidates = sample.output.metadata["fusion"]["candidates"]
        assert {c["model"] for c in candidates} == {"script/good", "script/bad"}


def test_member_rows_equal_the_member_run_alone(server: TestServer, eval_env: dict[str, str], tmp_path: Path) -> None:
    script_coders(server)
    tasks = code_subset(tmp_path)
    report = evaluate(tasks, pool="script/good,script/bad", judges=("mock/judge",), out_dir=tmp_path / "fused")
    alone = evaluate(tasks, pool="script/bad", judges=("mock/judge",), out_dir=tmp_path / "alone")
    derived = {s.id: s for s in report.samples if s.system == "script/bad"}
    ran = {s.id: s for s in alone.samples}
    assert derived.keys() == ran.keys()
    for key, sample in derived.items():
        assert (sample.answer, sample.score, sample.partial) == (ran[key].answer, ran[key].score, ran[key].partial)
    # Alone means alone: no judge call was paid for.
    assert derived, "the fused run scored no sample"
    assert [r.system for r in alone.rows] == ["script/bad"] and alone.rows[0].kind == "member"
    assert alone.rows[0].cost_usd == pytest.approx(report.row("script/bad").cost_usd)


def test_inspect_eval_with_the_fusion_provider(server: TestServer, eval_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "task.py").write_text(TASK_FILE)
    server.script("script/geo", rules=[{"if_contains": "France", "reply": "Paris."}], default="Not sure.")
    logs = tmp_path / "logs"
    command = [sys.executable, "-m", "inspect_ai", "eval", "task.py", "--log-dir", str(logs), "--display", "none"]
    fused = subprocess.run(
        [*command, "--model", "fusion/mock/alpha+script/geo", "-M", "mode=merge", "-M", "judge=mock/judge"],
        env=eval_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert fused.returncode == 0, fused.stderr
    single = subprocess.run(
        [*command, "--model", "fusion/script/geo"], env=eval_env, cwd=tmp_path, capture_output=True, text=True
    )
    assert single.returncode == 0, single.stderr
    by_model = {}
    for path in logs.glob("*.eval"):
        log = read_eval_log(str(path))
        # inspect exits 0 even when a task errors: the log's status is the truth.
        assert log.status == "success", log.error
        by_model[log.eval.model] = log
    merged = by_model["fusion/mock/alpha+script/geo"]
    sample = next(s for s in merged.samples or [] if s.id == "fr")
    result = sample.output.metadata["fusion"]
    assert result["mode"] == "merge" and result["status"] == "ok"
    assert {c["model"] for c in result["candidates"]} == {"mock/alpha", "script/geo"}
    assert result["judge"]["model"] == "mock/judge"
    assert sample.output.usage.total_cost == pytest.approx(result["usage"]["cost"])
    assert sample.output.completion == result["answer"]
    alone = by_model["fusion/script/geo"]
    answers = {s.id: s.output.completion for s in alone.samples or []}
    assert answers == {"fr": "Paris.", "it": "Not sure.", "es": "Not sure."}
    assert all(s.output.metadata["fusion"]["judge"] is None for s in alone.samples or [])
    assert alone.results is not None and alone.results.scores[0].metrics["accuracy"].value == pytest.approx(1 / 3)


@pytest.mark.parametrize("absolute", [False, True])
def test_fusion_eval_on_an_inspect_task_file(
    server: TestServer, eval_env: dict[str, str], tmp_path: Path, absolute: bool
) -> None:
    (tmp_path / "task.py").write_text(TASK_FILE)
    server.script("script/geo", rules=[{"if_contains": "France", "reply": "Paris [BEST]"}], default="Not sure.")
    server.script("script/geo2", rules=[{"if_contains": "Italy", "reply": "Rome"}], default="Madrid?")
    spec = f"{tmp_path / 'task.py' if absolute else 'task.py'}@capitals"
    done = cli(
        eval_env, "eval", spec, "--pool", "script/geo,script/geo2", "--judge", "mock/judge", "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    rows = {r["system"]: r for r in json.loads(done.stdout)["rows"]}
    assert rows["script/geo"]["accuracy"] == pytest.approx(1 / 3)
    assert rows["script/geo2"]["accuracy"] == pytest.approx(2 / 3)
    assert rows["oracle (any candidate)"]["accuracy"] == 1.0


def test_generic_jsonl_with_numeric_and_model_scorers(
    server: TestServer, eval_env: dict[str, str], tmp_path: Path
) -> None:
    tasks = tmp_path / "math.jsonl"
    problems = [("Tom has 3 apples and buys 4 more. How many?", "7"), ("What is 6 times 7?", "42")]
    tasks.write_text("".join(json.dumps({"input": q, "target": a}) + "\n" for q, a in problems))
    server.script("script/calc", rules=[{"if_contains": "apples", "reply": "3 + 4 = 7"}], default="It is 41.")
    server.script("script/grader", replies=["GRADE: C"], default="GRADE: C")
    numeric = evaluate(tasks, pool="script/calc", scorer="numeric", out_dir=tmp_path / "n")
    assert [s.score for s in numeric.samples] == [1.0, 0.0]
    # Every target is a number, so numeric is also the default; exact would fail "3 + 4 = 7".
    inferred = evaluate(tasks, pool="script/calc", out_dir=tmp_path / "d")
    assert [s.score for s in inferred.samples] == [1.0, 0.0]
    exact = evaluate(tasks, pool="script/calc", scorer="exact", out_dir=tmp_path / "e")
    assert [s.score for s in exact.samples] == [0.0, 0.0]
    graded = evaluate(tasks, pool="script/calc", scorer="model", grader="fusion/script/grader", out_dir=tmp_path / "m")
    assert [s.score for s in graded.samples] == [1.0, 1.0]  # this grader says yes to everything
    assert any(r["model"] == "script/grader" for r in server.log())


def test_max_cost_refuses_before_the_start(server: TestServer, eval_env: dict[str, str], tmp_path: Path) -> None:
    script_coders(server)
    tasks = code_subset(tmp_path)
    done = cli(eval_env, "eval", str(tasks), "--pool", "script/good,script/bad", "--judge", "mock/judge",
               "--max-cost", "0.000001", "--out", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 2
    assert "could cost up to" in done.stderr and "--max-cost" in done.stderr
    assert "Traceback" not in done.stderr
    assert not [r for r in server.log() if r.get("model", "").startswith("script/")]


def test_spending_stops_at_max_cost_during_the_run(
    server: TestServer, eval_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "task.py").write_text(TASK_FILE)
    logs = tmp_path / "logs"
    done = subprocess.run(
        [sys.executable, "-m", "inspect_ai", "eval", "task.py", "--model", "fusion/mock/alpha", "-M",
         "max_cost=0.000001", "--max-samples", "1", "--log-dir", str(logs), "--display", "none",
         "--no-fail-on-error"],
        env=eval_env, cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [path] = logs.glob("*.eval")
    samples = read_eval_log(str(path)).samples or []
    answered = [s for s in samples if s.error is None]
    stopped = [s for s in samples if s.error is not None]
    assert len(answered) == 1 and len(stopped) == 2
    assert all("--max-cost" in (s.error.message if s.error else "") for s in stopped)
    assert len([r for r in server.log() if r["model"] == "mock/alpha"]) == 1


def test_a_rerun_takes_finished_samples_from_the_cache(
    server: TestServer, eval_env: dict[str, str], tmp_path: Path
) -> None:
    script_coders(server)
    tasks = code_subset(tmp_path)
    first = evaluate(tasks, pool="script/good,script/bad", judges=("mock/judge",), limit=2, out_dir=tmp_path / "a")
    paid = chat_requests(server)
    assert paid == 2 * 3  # two samples: two candidates and one judge call each
    again = evaluate(tasks, pool="script/good,script/bad", judges=("mock/judge",), limit=3, out_dir=tmp_path / "b")
    assert chat_requests(server) == paid + 3  # only the third sample was new
    before = {(s.id, s.system): s.answer for s in first.samples}
    after = {(s.id, s.system): s.answer for s in again.samples}
    assert all(after[key] == answer for key, answer in before.items())


def test_missing_extra_is_one_clear_line() -> None:
    # sys.modules[name] = None makes the import fail, as it does without the [eval] extra.
    script = (
        "import sys; sys.modules['inspect_ai'] = None; from fusion_cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "eval", "x.jsonl", "--pool", "mock/alpha"],
        env=dict(os.environ, FUSION_NO_LOG="1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "[eval] extra" in done.stderr and "Traceback" not in done.stderr


async def test_the_python_api_works_inside_a_running_event_loop(
    server: TestServer, eval_env: dict[str, str], tmp_path: Path
) -> None:
    # As in Jupyter, where a loop already runs in the calling thread.
    script_coders(server)
    report = evaluate(code_subset(tmp_path, ("add",)), pool="script/good", out_dir=tmp_path / "out")
    assert [(r.system, r.accuracy) for r in report.rows] == [("script/good", 1.0)]
    assert "<table>" in report._repr_html_()


def test_fusion_starts_without_importing_inspect() -> None:
    script = (
        "import sys; from fusion_cli.main import build_parser; build_parser(); import fusion_core.eval; "
        "sys.exit(1 if {'inspect_ai', 'matplotlib'} & set(sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", script], timeout=60).returncode == 0
