"""Review quality: the findings scorer on hand-made findings, and ``fusion eval`` on a review dev set.

The end-to-end runs go through the real ``fusion`` entry point on a few files
of examples/evals/review: ruff and bandit run for real (the offline default
pool), and a model reviewer is scripted on the loopback test server.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fusion_core.eval.findings_score import Planted, Reported, is_review_set, matches, read_manifest, tally
from fusion_core.testing.server import TestServer

ROOT = Path(__file__).resolve().parents[2]
DEV_SET = ROOT / "examples" / "evals" / "review"


# -- the scorer on hand-made findings ------------------------------------------------------


def test_a_finding_matches_a_planted_problem_when_the_line_ranges_overlap() -> None:
    problem = Planted(10, 12, "sql-injection", "security")
    assert matches(Reported(12, 15), problem) and matches(Reported(8, 10), problem)
    assert matches(Reported(11, 11), problem) and matches(Reported(1, 40), problem)
    assert not matches(Reported(9, 9), problem) and not matches(Reported(13, 20), problem)


def test_tally_counts_a_match_a_miss_and_a_false_positive() -> None:
    problems = [Planted(5, 5, "sql-injection", "security"), Planted(20, 22, "off-by-one", "bug")]
    found = [Reported(5, 5, "security"), Reported(4, 5, "bug"), Reported(40, 40, "style")]
    file = tally(problems, found)
    assert (file.planted, file.found, file.reported, file.true) == (2, 1, 3, 2)
    assert file.recall == 0.5 and file.precision == pytest.approx(2 / 3)
    assert file.found_same_category == 1 and file.clean_reported == 0
    assert file.by_kind == {"sql-injection": [1, 1], "off-by-one": [0, 1]}
    clean = tally([], [Reported(3, 3)])
    assert clean.clean_reported == 1 and clean.precision == 0.0 and clean.recall is None
    both = file + clean
    assert (both.planted, both.reported, both.true, both.precision) == (2, 4, 2, 0.5)
    assert tally(problems, []).precision is None  # nothing reported: precision is undefined, not 0


def test_the_agreement_threshold_keeps_findings_enough_reviewers_reported() -> None:
    pytest.importorskip("inspect_ai")
    from fusion_core.eval.review_task import fused_label, score_record

    problems = [Planted(5, 5, "sql-injection", "security"), Planted(20, 21, "off-by-one", "bug")]
    record = {
        "pool": ["tool:ruff", "tool:bandit", "m"],
        "reviewers": {
            "tool:ruff": [{"start_line": 5, "end_line": 5, "category": "security"}],
            "m": [
                {"start_line": 5, "end_line": 5, "category": "security"},
                {"start_line": 21, "end_line": 21, "category": "bug"},
                {"start_line": 30, "end_line": 30, "category": "style"},
            ],
        },
        "merged": [
            {"start_line": 5, "end_line": 5, "category": "security", "models": ["m", "tool:bandit", "tool:ruff"]},
            {"start_line": 21, "end_line": 21, "category": "bug", "models": ["m"]},
            {"start_line": 30, "end_line": 30, "category": "style", "models": ["m", "tool:ruff"]},
        ],
        "failures": {"tool:bandit": "tool:bandit did not finish within 60s"},
    }
    systems = score_record(problems, record)
    assert list(systems) == ["tool:ruff", "tool:bandit", "m", *(fused_label(k, 3) for k in (1, 2, 3))]
    assert systems["m"]["found"] == 2 and systems["m"]["true"] == 2 and systems["m"]["reported"] == 3
    assert systems["tool:bandit"]["failed_files"] == 1 and systems["tool:bandit"]["reported"] == 0
    one, two, three = (systems[fused_label(k, 3)] for k in (1, 2, 3))
    assert (one["found"], one["true"], one["reported"]) == (2, 2, 3)
    assert (two["found"], two["true"], two["reported"]) == (1, 1, 2)
    assert (three["found"], three["true"], three["reported"]) == (1, 1, 1)


def test_the_dev_set_manifest_matches_its_files() -> None:
    files = read_manifest(DEV_SET)
    assert is_review_set(DEV_SET) and is_review_set(DEV_SET / "manifest.jsonl")
    assert not is_review_set(ROOT / "examples" / "evals" / "code.jsonl")
    assert len(files) >= 30 and sum(f.clean for f in files) >= 5
    kinds = {p.kind for f in files for p in f.problems}
    assert {"sql-injection", "path-traversal", "off-by-one", "resource-leak", "race-condition"} <= kinds
    assert {"mutable-default", "hardcoded-secret", "shell-injection", "unsafe-deserialisation"} <= kinds
    for f in files:
        lines = f.path.read_text(encoding="utf-8").splitlines()
        for p in f.problems:
            assert p.end_line <= len(lines) and lines[p.start_line - 1].strip(), (f.path.name, p)


# -- end to end through `fusion eval` --------------------------------------------------------

SMALL_SET = ("user_lookup.py", "pagination.py", "clean_tokens.py")


def small_dev_set(tmp_path: Path) -> Path:
    """Three files of the dev set (a SQL injection, an off-by-one, a clean file) with their manifest lines."""
    folder = tmp_path / "devset"
    folder.mkdir()
    shutil.copy(DEV_SET / "ruff.toml", folder / "ruff.toml")
    rows = [json.loads(line) for line in (DEV_SET / "manifest.jsonl").read_text().splitlines() if line.strip()]
    chosen = [row for row in rows if row["file"] in SMALL_SET]
    for row in chosen:
        shutil.copy(DEV_SET / row["file"], folder / row["file"])
    (folder / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in chosen))
    return folder


def fusion_eval(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fusion_cli", "eval", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_offline_review_eval_scores_ruff_bandit_and_the_fused_review(tmp_path: Path) -> None:
    pytest.importorskip("inspect_ai")
    from inspect_ai.log import read_eval_log

    folder = small_dev_set(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENROUTER_")}
    done = fusion_eval([str(folder), "--json", "--out", str(tmp_path / "out")], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "No LLM reviewer is configured" in done.stderr
    report = json.loads(done.stdout)
    rows = {r["system"]: r for r in report["rows"]}
    assert list(rows) == ["tool:ruff", "tool:bandit", "fused, agreed by >= 1 of 2", "fused, agreed by >= 2 of 2"]
    for name in ("tool:ruff", "tool:bandit", "fused, agreed by >= 2 of 2"):
        # Both analysers flag the f-string SQL; neither sees that page 1 skips the first page.
        assert rows[name]["by_kind"] == {"sql-injection": [1, 1], "off-by-one": [0, 1]}, name
        assert rows[name]["recall"] == 0.5 and rows[name]["files"] == 3
    fused = rows["fused, agreed by >= 1 of 2"]
    assert fused["reported"] >= rows["fused, agreed by >= 2 of 2"]["reported"] >= 1
    # The report is the inspect log's scores, sample by sample.
    log = read_eval_log(report["log_file"])
    assert log.status == "success" and log.samples is not None
    logged = {str(s.id): s.scores["findings"].metadata["systems"] for s in log.samples if s.scores}
    assert logged == {s["id"]: s["systems"] for s in report["samples"]}
    assert set(logged) == set(SMALL_SET)
    assert (tmp_path / "out" / "report.md").read_text().startswith("| reviewer | recall | precision |")


def finding(line: int, message: str, category: str) -> dict[str, object]:
    item = {"start_line": line, "end_line": line, "severity": "error", "category": category}
    return {**item, "message": message, "replacement": None}


def test_a_model_reviewer_on_the_test_server_gets_its_own_row(
    tmp_path: Path, server: TestServer, remote_env: dict[str, str]
) -> None:
    pytest.importorskip("inspect_ai")
    folder = small_dev_set(tmp_path)
    off_by_one = finding(15, "page numbers start at 1, so page 1 skips the first page of items", "bug")
    false_alarm = finding(9, "tokens should be longer", "security")
    server.script(
        "script/reviewer",
        rules=[
            {"if_contains": "pagination.py", "reply": json.dumps({"findings": [off_by_one]})},
            {"if_contains": "clean_tokens.py", "reply": json.dumps({"findings": [false_alarm]})},
        ],
        default=json.dumps({"findings": []}),
    )
    args = [str(folder), "--pool", "tool:ruff,script/reviewer", "--json", "--out", str(tmp_path / "out")]
    done = fusion_eval(args, tmp_path, remote_env)
    assert done.returncode == 0, done.stderr
    rows = {r["system"]: r for r in json.loads(done.stdout)["rows"]}
    model = rows["script/reviewer"]
    assert model["by_kind"] == {"sql-injection": [0, 1], "off-by-one": [1, 1]}
    assert (model["reported"], model["true"], model["clean_reported"]) == (2, 1, 1)
    assert model["found_same_category"] == 1
    assert rows["fused, agreed by >= 1 of 2"]["found"] == 2  # ruff's SQL injection and the model's off-by-one
    assert rows["fused, agreed by >= 2 of 2"]["found"] == 0
    prompts = [entry["messages"][-1]["content"] for entry in server.log()]
    assert len(prompts) == 3 and all("Review the whole file." in p for p in prompts)


# inspect in this process: its task runner leaves anyio memory streams to the garbage collector,
# and its retry setup uses an argument tenacity deprecates (as in test_eval.py).
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in.*MemoryObjectReceiveStream:pytest.PytestUnraisableExceptionWarning"
)
@pytest.mark.filterwarnings("ignore:The 'initial' parameter is deprecated:DeprecationWarning")
def test_the_python_api_measures_a_dev_set_with_a_pool_of_one(tmp_path: Path) -> None:
    pytest.importorskip("inspect_ai")
    from fusion_core.eval import evaluate_review

    report = evaluate_review(small_dev_set(tmp_path), pool=("tool:bandit",), out_dir=tmp_path / "out")
    assert [r.system for r in report.rows] == ["tool:bandit"]  # one reviewer: nothing to fuse
    assert report.row("tool:bandit").tally.by_kind == {"sql-injection": [1, 1], "off-by-one": [0, 1]}
    assert str(report).startswith("reviewer") and (tmp_path / "out" / "report.json").is_file()
    # Collect inspect's leftovers now, under this test's warning filters, not in a later test.
    gc.collect()


def test_review_only_flags_are_refused_for_a_review_dev_set(tmp_path: Path) -> None:
    pytest.importorskip("inspect_ai")
    done = fusion_eval([str(DEV_SET), "--modes", "merge"], tmp_path, dict(os.environ))
    assert done.returncode == 2
    assert "--modes does not apply to a review dev set" in done.stderr and "Traceback" not in done.stderr
