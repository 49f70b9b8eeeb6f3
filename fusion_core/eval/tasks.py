"""Tasks for ``fusion eval``: HumanEval-style JSONL, generic JSONL, or any inspect task file.

Every scorer here grades the fused answer *and* each candidate in the output's
``metadata["fusion"]``, and records the candidates' grades in the score's
metadata. That is how ``fusion eval`` gets each member's row from the fused run
without generating twice: the same samples, the same text, the same cost.

* HumanEval JSONL (``task_id``, ``prompt``, ``test``, ``entry_point``): the prompt
  goes to the model as is (a base model continues it, exactly as ``fusion run``
  does), and the answer is executed against the tests in the sandbox.
* Generic JSONL (``input``, ``target``; optional ``id``, ``choices``): scored with
  ``--scorer exact|includes|regex|numeric|choice|model`` (default: numeric when
  every target is a number, else exact).
* ``path/task.py@name``: the task's own scorers, wrapped to grade candidates too.
  The file is imported with importlib, so relative and absolute paths both work.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from inspect_ai import Task, task_with
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ModelOutput
from inspect_ai.scorer import (
    Score,
    Scorer,
    Target,
    accuracy,
    mean,
    model_graded_qa,
    scorer,
    stderr,
    value_to_float,
)
from inspect_ai.solver import TaskState, generate

from fusion_core.errors import ConfigError
from fusion_core.eval.grading import GRADERS, Grade, grade_code, grade_text
from fusion_core.eval.provider import METADATA_KEY

__all__ = ["load_task"]

MAX_TASK_FILE_BYTES = 50_000_000
CHOICE_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_to_float = value_to_float()


def load_task(spec: str, *, scorer_name: str | None = None, grader: str | None = None) -> Task:
    """The inspect Task for ``spec``: a ``.jsonl`` file or ``path/task.py@name``."""
    path_part, _, name = spec.partition("@")
    path = Path(path_part).expanduser()
    if path.suffix == ".py":
        return _task_file(path, name or None)
    rows = _read_jsonl(path)
    if all(k in rows[0] for k in ("prompt", "test", "entry_point")):
        if scorer_name not in (None, "code"):
            raise ConfigError(f"{path} is a HumanEval-style code task; --scorer does not apply to it")
        return _code_task(path, rows)
    if "input" not in rows[0] or "target" not in rows[0]:
        raise ConfigError(
            f"{path}: each line needs input and target (or task_id, prompt, test, entry_point for code)",
            hint="See README, 'Is fusion worth it?', for the task formats.",
        )
    return _generic_task(path, rows, scorer_name or _default_scorer(rows), grader)


def _default_scorer(rows: list[dict[str, Any]]) -> str:
    """``numeric`` when every target is a number (word problems), else ``exact``."""
    try:
        for row in rows:
            float(str(row["target"]).replace(",", ""))
    except ValueError:
        return "exact"
    return "numeric"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        if path.stat().st_size > MAX_TASK_FILE_BYTES:
            raise ConfigError(f"{path} is larger than {MAX_TASK_FILE_BYTES // 1_000_000} MB")
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", hint="Check the path.") from exc
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{path}:{number}: not JSON ({exc})", hint="One JSON object per line.") from exc
        if not isinstance(row, dict):
            raise ConfigError(f"{path}:{number}: expected a JSON object")
        rows.append(row)
    if not rows:
        raise ConfigError(f"{path} holds no tasks")
    return rows


def _code_task(path: Path, rows: list[dict[str, Any]]) -> Task:
    samples = [
        Sample(
            id=str(row.get("task_id", i)),
            input=row["prompt"],
            target="",
            metadata={"prompt": row["prompt"], "test": row["test"], "entry_point": row["entry_point"]},
        )
        for i, row in enumerate(rows)
    ]
    return Task(dataset=MemoryDataset(samples, name=path.stem), solver=generate(), scorer=code_scorer(), name=path.stem)


def _generic_task(path: Path, rows: list[dict[str, Any]], scorer_name: str, grader: str | None) -> Task:
    if scorer_name not in GRADERS:
        raise ConfigError(f"unknown --scorer {scorer_name!r}", hint=f"Use one of {', '.join(GRADERS)}.")
    samples = []
    for i, row in enumerate(rows):
        text = str(row["input"])
        choices = row.get("choices")
        if isinstance(choices, list) and choices:
            options = "\n".join(f"{CHOICE_LETTERS[j]}) {c}" for j, c in enumerate(choices))
            text = f"{text}\n\n{options}\n\nAnswer with the letter of the right choice, as ANSWER: X."
        target = row["target"]
        targets = [str(t) for t in target] if isinstance(target, list) else [str(target)]
        samples.append(Sample(id=str(row.get("id", i)), input=text, target=targets))
    if scorer_name == "model":
        chosen = with_candidates(model_graded_qa(model=grader))
    else:
        chosen = text_scorer(scorer_name)
    return Task(dataset=MemoryDataset(samples, name=path.stem), solver=generate(), scorer=chosen, name=path.stem)


def _task_file(path: Path, name: str | None) -> Task:
    if not path.is_file():
        raise ConfigError(f"no task file at {path}", hint="Write path/task.py@task_name.")
    module_name = f"fusion_eval_task_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path.resolve())
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file: report it in one line, as any config mistake
        raise ConfigError(f"{path} failed to import: {type(exc).__name__}: {exc}", hint="Fix the task file.") from exc
    tasks = {k: v for k, v in vars(module).items() if callable(v) and getattr(v, "__registry_info__", None)}
    if name is None and len(tasks) == 1:
        name = next(iter(tasks))
    if name not in vars(module) or not callable(vars(module)[name]):
        raise ConfigError(f"{path} has no task {name!r}", hint=f"Tasks in it: {', '.join(tasks) or 'none'}.")
    task = vars(module)[name]()
    if not isinstance(task, Task):
        raise ConfigError(f"{path}@{name} did not return an inspect Task")
    scorers = task.scorer or []
    return task_with(task, scorer=[with_candidates(s) for s in scorers])


def _candidates(state: TaskState) -> list[dict[str, Any]]:
    data = (state.output.metadata or {}).get(METADATA_KEY) or {}
    candidates = data.get("candidates") or []
    if data.get("mode") == "debate" and data.get("rounds"):
        candidates = data["rounds"][0]  # the independent first answers: each member alone
    return [c for c in candidates if isinstance(c, dict)]


def _candidate_record(cand: dict[str, Any], grade: Grade | None) -> dict[str, Any]:
    return {
        "model": cand.get("model"),
        "status": cand.get("status"),
        "score": grade.value if grade else 0.0,
        "partial": grade.partial if grade else None,
        "answer": cand.get("text", "") if grade is None else grade.answer,
        "truncated": bool(cand.get("truncated")),
        "latency_s": cand.get("latency_s"),
        "usage": cand.get("usage") or {},
    }


def _score(main: Grade, state: TaskState, graded: list[dict[str, Any]]) -> Score:
    truncated = state.output.stop_reason == "max_tokens"
    return Score(
        value=main.value,
        answer=main.answer,
        explanation=main.explanation,
        metadata={"partial": main.partial, "truncated": truncated, "candidates": graded},
    )


@scorer(metrics=[accuracy(), stderr()], name="fusion_code")
def code_scorer() -> Scorer:
    """Execute the answer (and each candidate) against the sample's tests in the sandbox."""

    async def score(state: TaskState, target: Target) -> Score:
        import asyncio

        meta = state.metadata

        async def run(text: str) -> Grade:
            return await asyncio.to_thread(grade_code, meta["prompt"], text, meta["test"], meta["entry_point"])

        main = await run(state.output.completion)
        graded = []
        for cand in _candidates(state):
            grade = await run(cand.get("text", "")) if cand.get("status") == "ok" else None
            record = _candidate_record(cand, grade)
            record["partial"] = grade.partial if grade else 0.0
            graded.append(record)
        return _score(main, state, graded)

    return score


@scorer(metrics=[accuracy(), stderr()], name="fusion_text")
def text_scorer(kind: str) -> Scorer:
    """Grade text answers with exact, includes, regex, numeric or choice."""

    async def score(state: TaskState, target: Target) -> Score:
        targets = list(target.target)
        main = grade_text(kind, state.output.completion, targets)
        graded = []
        for cand in _candidates(state):
            grade = grade_text(kind, cand.get("text", ""), targets) if cand.get("status") == "ok" else None
            record = _candidate_record(cand, grade)
            record["partial"] = None
            graded.append(record)
        return _score(main, state, graded)

    return score


@scorer(metrics=[mean(), stderr()], name="fusion_candidates")
def with_candidates(base: Scorer) -> Scorer:
    """Wrap any inspect scorer so it also grades every candidate of a fused output."""

    async def score(state: TaskState, target: Target) -> Score:
        main = await base(state, target)
        if main is None:
            raise ConfigError("the task's scorer returned no score")
        graded = []
        for cand in _candidates(state):
            grade = None
            if cand.get("status") == "ok":
                alone = copy.copy(state)
                alone.output = ModelOutput.from_content(model=str(cand.get("model")), content=cand.get("text", ""))
                result = await base(alone, target)
                if result is not None:
                    grade = Grade(_to_float(result.value), result.answer or cand.get("text", ""))
            record = _candidate_record(cand, grade)
            record["partial"] = None
            graded.append(record)
        value = _to_float(main.value)
        metadata = {**(main.metadata or {}), "partial": None, "candidates": graded}
        metadata["truncated"] = state.output.stop_reason == "max_tokens"
        return Score(
            value=value,
            answer=main.answer if main.answer is not None else state.output.completion,
            explanation=main.explanation,
            metadata=metadata,
        )

    return score
