"""The execution judge (``--judge exec``): run code candidates and pick the one that works.

For a prompt asking for a Python function (CodeT, AlphaCode's filtering, MBR-exec):

1. the prompt's visible tests are extracted by parsing only
   (:mod:`fusion_core.judges.visible_tests`);
2. every candidate runs once in the sandbox (:mod:`fusion_core.sandbox`), with
   its function called on each visible test's arguments and on simple
   type-preserving variations of them, all candidates concurrently, each with
   a time limit per call and per candidate;
3. candidates whose outputs agree on every input form a group (behavioural
   consensus);
4. the ranking is: visible tests passed, then the size of the candidate's
   group, then the tie-break (a likelihood or LLM judge, else the greedy
   sample). A candidate that does not parse, times out or crashes ranks last.

Results come only from the sandbox runner's own channel (values ``repr``-ed by
the trusted runner, compared here against the prompt's expected values); the
candidate's stdout is never read, so printing "PASS" changes nothing.
"""

from __future__ import annotations

import ast
import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fusion_core.eval.grading import program_for
from fusion_core.judges.visible_tests import (
    VisibleTest,
    entry_point,
    extract_visible_tests,
    signature_inputs,
    variations,
)
from fusion_core.result import Candidate
from fusion_core.sandbox import CallResult, Limits, acall_function, arun_checks
from fusion_core.verdicts import ExecRun, ExecSummary

__all__ = [
    "CandidateRun",
    "ExecReport",
    "execute_candidates",
    "rank",
]

# A candidate's whole run (import, every call) and each single call are bounded.
CANDIDATE_TIMEOUT_S = 2.0
CALL_TIMEOUT_S = 0.5
EXEC_MEMORY_MB = 512
MAX_INPUTS = 24
MAX_PROGRAM_CHARS = 100_000


@dataclass(frozen=True)
class CandidateRun:
    """What one candidate did: visible tests passed out of run, its group, and any error."""

    model: str
    label: str
    passed: int = 0
    run: int = 0
    error: str = ""
    outputs: tuple[str, ...] = ()
    group: int | None = None
    group_size: int = 0
    seconds: float = 0.0

    @property
    def broken(self) -> bool:
        """It did not parse, its import crashed, or it timed out: it ranks last."""
        return bool(self.error)

    def row(self) -> ExecRun:
        """The verdict's record of this run."""
        return ExecRun(self.label, self.passed, self.run, self.group, self.group_size, self.error, self.seconds)

    def describe(self) -> str:
        """``2/3 visible tests, group 1 (3 agree)`` or ``SyntaxError: ...``."""
        parts = [f"{self.passed}/{self.run} visible tests" if self.run else "no visible tests"]
        if self.group is not None:
            parts.append(f"group {self.group} ({self.group_size} agree)")
        if self.error:
            parts.append(self.error[:120])
        return ", ".join(parts)


@dataclass(frozen=True)
class ExecReport:
    """The execution of every candidate: per-candidate runs, what was run, and notes."""

    function: str | None
    tests: tuple[VisibleTest, ...]
    inputs: tuple[str, ...]
    runs: tuple[CandidateRun, ...]
    seconds: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> ExecSummary:
        """The verdict's record of what was run."""
        return ExecSummary(self.function, self.tests, self.inputs, self.seconds, self.notes)

    def facts(self) -> dict[str, str]:
        """Each candidate's execution results in words, by label (for an LLM judge's framing)."""
        out = {}
        for run in self.runs:
            text = f"Ran in a sandbox: {run.describe()}."
            shown = [f"{self.function}({a}) returned {o}" for a, o in zip(self.inputs, run.outputs, strict=False)]
            if shown:
                text += " Outputs: " + "; ".join(shown[:8])
            out[run.label] = text
        return out


async def execute_candidates(
    prompt: str,
    candidates: Sequence[Candidate],
    *,
    clock: Callable[[], float] = time.perf_counter,
    timeout_s: float = CANDIDATE_TIMEOUT_S,
    extra_inputs: Sequence[str] = (),
) -> ExecReport:
    """Run every candidate on the prompt's visible tests and their variations, in the sandbox.

    ``extra_inputs`` (argument lists, e.g. proposed by a model: :mod:`fusion_core.judges.codet`)
    join the consensus inputs after the visible tests' own.
    """
    started = clock()
    function = entry_point(prompt)
    notes: list[str] = []
    if function is None:
        notes.append("the prompt defines no function, so nothing was run")
        runs = tuple(CandidateRun(c.model, c.label) for c in candidates)
        return ExecReport(None, (), (), runs, clock() - started, tuple(notes))
    tests = extract_visible_tests(prompt, function)
    called = [t.args for t in tests if t.args is not None]
    extra = variations(list(tests)) if called else signature_inputs(prompt, function)
    inputs = list(dict.fromkeys(called + list(extra_inputs) + extra))
    if len(inputs) > MAX_INPUTS:
        notes.append(f"behavioural consensus stopped at {MAX_INPUTS} of {len(inputs)} inputs")
        inputs = inputs[:MAX_INPUTS]
    if not tests:
        notes.append(f"the prompt shows no tests for {function}; ranking by agreement only")
    limits = Limits(timeout_s=timeout_s, call_timeout_s=CALL_TIMEOUT_S, memory_mb=EXEC_MEMORY_MB)
    done = await asyncio.gather(*(_run_one(prompt, c, function, tests, inputs, limits, clock) for c in candidates))
    grouped = _group(list(done))
    return ExecReport(function, tuple(tests), tuple(inputs), tuple(grouped), clock() - started, tuple(notes))


async def _run_one(
    prompt: str,
    cand: Candidate,
    function: str,
    tests: Sequence[VisibleTest],
    inputs: Sequence[str],
    limits: Limits,
    clock: Callable[[], float],
) -> CandidateRun:
    started = clock()
    text = cand.text[:MAX_PROGRAM_CHARS]
    # A front end may strip the prompt's last newline (a notebook cell); the body still starts a line.
    head = prompt if prompt.endswith("\n") or text.startswith(("\n", "\r")) else prompt + "\n"
    program = program_for(head, text, function)
    base = CandidateRun(cand.model, cand.label, run=len(tests))
    try:
        ast.parse(program)
    except SyntaxError as exc:
        return replace(base, error=f"SyntaxError: {exc.msg} (line {exc.lineno})", seconds=clock() - started)
    except (ValueError, RecursionError, MemoryError) as exc:
        return replace(base, error=f"{type(exc).__name__}: does not parse", seconds=clock() - started)
    calls = await acall_function(program, function, list(inputs), limits) if inputs else []
    by_args = dict(zip(inputs, calls, strict=True))
    passed = 0
    opaque = [t for t in tests if t.args is None]
    for test in tests:
        if test.args is not None and test.expected is not None:
            passed += _matches(by_args[test.args], test.expected)
    if opaque:
        checks = await arun_checks(program, [t.source for t in opaque], limits)
        passed += sum(c.passed for c in checks)
    error = _fatal(calls)
    outputs = tuple(_output(c) for c in calls)
    return replace(base, passed=passed, error=error, outputs=outputs, seconds=clock() - started)


def _fatal(calls: Sequence[CallResult]) -> str:
    """Why the candidate as a whole failed (crashed on import, killed, timed out), or ''."""
    if not calls:
        return ""
    timeouts = [c.error for c in calls if not c.ok and c.error.startswith(("timeout", "CallTimeout"))]
    if timeouts:
        return timeouts[0] if timeouts[0].startswith("timeout") else f"timeout: {timeouts[0]}"
    errors = {c.error for c in calls if not c.ok}
    # The very same error on every call: the program itself failed (import-time crash, no such
    # function, killed), or its function always raises, which is no better.
    if len(errors) == 1 and not any(c.ok for c in calls):
        return next(iter(errors))
    return ""


def _output(call: CallResult) -> str:
    if call.ok:
        return call.value
    return "raised " + call.error.split(":", 1)[0]


def _matches(call: CallResult, expected: str) -> bool:
    """Whether the runner-reported value equals the expected literal (same type, floats to 1e-6)."""
    if not call.ok:
        return False
    try:
        got, want = ast.literal_eval(call.value), ast.literal_eval(expected)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return call.value.strip() == expected.strip()
    return _same(got, want)


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, float) and isinstance(got, int | float) and not isinstance(got, bool):
        return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9)
    if type(got) is not type(want):
        return False
    if isinstance(want, list | tuple):
        return len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, dict):
        return got.keys() == want.keys() and all(_same(got[k], want[k]) for k in want)
    return bool(got == want)


def _group(runs: list[CandidateRun]) -> list[CandidateRun]:
    """Number groups of candidates with identical outputs on every input, largest first."""
    members: dict[tuple[str, ...], list[int]] = {}
    for i, run in enumerate(runs):
        # A candidate that fails on every input agrees with nothing.
        if run.broken or not run.outputs or all(o.startswith("raised ") for o in run.outputs):
            continue
        members.setdefault(run.outputs, []).append(i)
    ordered = sorted(members.values(), key=lambda idx: (-len(idx), idx[0]))
    out = list(runs)
    for number, idx in enumerate(ordered, start=1):
        for i in idx:
            out[i] = replace(runs[i], group=number, group_size=len(idx))
    return out


def rank(runs: Sequence[CandidateRun], tie_break: Sequence[float]) -> list[int]:
    """Indices of ``runs`` best first: not broken, visible tests passed, group size, then ``tie_break``."""
    return sorted(
        range(len(runs)),
        key=lambda i: (runs[i].broken, -runs[i].passed, -runs[i].group_size, -tie_break[i], i),
    )
