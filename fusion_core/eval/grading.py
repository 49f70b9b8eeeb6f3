"""Grading one answer text: code by execution in the sandbox, text by exact, includes, regex, numeric or choice.

Plain functions with no inspect import, so the same grading serves the fused
answer, every candidate, and any other tool. Code answers run in
:mod:`fusion_core.sandbox`: a pass means ``check(entry_point)`` ran to its end;
partial credit is the share of the test's separate ``assert`` statements that
pass, each run on its own.
"""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from fusion_core.sandbox import Limits, run_checks

__all__ = ["GRADERS", "Grade", "grade_code", "grade_text", "program_for", "split_checks"]

TEXT_GRADERS = ("exact", "includes", "regex", "numeric", "choice")
GRADERS = (*TEXT_GRADERS, "model")
CODE_LIMITS = Limits(timeout_s=10.0)
# A bounded cache: the same text (e.g. a member's answer that is also the fused pick) runs once.
CODE_CACHE_SIZE = 4096
MAX_ANSWER_CHARS = 200_000

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_FENCE = re.compile(r"```[\w+-]*\n(.*?)(?:```|$)", re.DOTALL)
_CHOICE = re.compile(r"(?:ANSWER|Answer|answer)\s*[:=]?\s*\(?([A-Z])\b")
_LETTER = re.compile(r"\b([A-Z])\b")


@dataclass(frozen=True)
class Grade:
    """A score in [0, 1], partial credit for code, and the text that was scored."""

    value: float
    answer: str
    partial: float | None = None
    explanation: str = ""


def grade_text(kind: str, answer: str, targets: Sequence[str]) -> Grade:
    """Grade ``answer`` against any of ``targets`` with one of :data:`TEXT_GRADERS`."""
    answer = answer[:MAX_ANSWER_CHARS]
    ok = any(_matches(kind, answer, target) for target in targets)
    return Grade(1.0 if ok else 0.0, answer, explanation=f"{kind} vs {list(targets)!r}")


def _matches(kind: str, answer: str, target: str) -> bool:
    if kind == "exact":
        return _norm(answer) == _norm(target)
    if kind == "includes":
        return _norm(target) in _norm(answer)
    if kind == "regex":
        return re.search(target, answer, re.MULTILINE) is not None
    if kind == "numeric":
        numbers = _NUMBER.findall(answer)
        return bool(numbers) and _same_number(numbers[-1], target)
    if kind == "choice":
        marked = _CHOICE.search(answer)
        letter = marked.group(1) if marked else next(iter(_LETTER.findall(answer)), "")
        return letter == target.strip().upper()[:1]
    raise ValueError(f"unknown grader {kind!r}")


def _norm(text: str) -> str:
    return " ".join(text.split()).strip().strip(".").lower()


def _same_number(found: str, target: str) -> bool:
    try:
        return abs(float(found.replace(",", "")) - float(target.replace(",", ""))) < 1e-6
    except ValueError:
        return False


def program_for(prompt: str, completion: str, entry_point: str) -> str:
    """The program to test: the prompt continued by the completion, or a full definition the model wrote.

    A chat model often answers with a fenced block holding the whole function; a base
    model continues the prompt. Imports from the prompt are kept in both cases.
    """
    fenced = _FENCE.search(completion)
    body = fenced.group(1) if fenced else completion
    if re.search(rf"^\s*(async\s+)?def\s+{re.escape(entry_point)}\s*\(", body, re.MULTILINE):
        imports = [line for line in prompt.splitlines() if line.startswith(("import ", "from "))]
        return "\n".join(imports) + "\n" + body
    return prompt + completion


def split_checks(test: str, entry_point: str) -> tuple[str, list[str]]:
    """(the whole check, one check per top-level assert of ``check``), as code to append to the program.

    Statements of ``check`` that hold no assert (setup) are kept in every split check.
    """
    whole = f"{test}\n\ncheck({entry_point})\n"
    try:
        module = ast.parse(test)
    except SyntaxError:
        return whole, [whole]
    check = next((n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None)
    if check is None:
        return whole, [whole]
    others = [n for n in module.body if n is not check]
    asserting = [s for s in check.body if any(isinstance(n, ast.Assert) for n in ast.walk(s))]
    if len(asserting) < 2:
        return whole, [whole]
    parts = []
    for keep in asserting:
        body = [s for s in check.body if s is keep or s not in asserting]
        function = copy.copy(check)
        function.body = body
        tree = ast.Module(body=[*others, function], type_ignores=[])
        parts.append(f"{ast.unparse(ast.fix_missing_locations(tree))}\n\ncheck({entry_point})\n")
    return whole, parts


def grade_code(prompt: str, completion: str, test: str, entry_point: str) -> Grade:
    """Pass if the whole test runs to its end; partial = share of single asserts that pass."""
    return _grade_code(prompt, completion[:MAX_ANSWER_CHARS], test, entry_point)


@lru_cache(maxsize=CODE_CACHE_SIZE)
def _grade_code(prompt: str, completion: str, test: str, entry_point: str) -> Grade:
    program = program_for(prompt, completion, entry_point)
    whole, parts = split_checks(test, entry_point)
    [full] = run_checks(program, [whole], CODE_LIMITS)
    if full.passed:
        return Grade(1.0, completion, 1.0, "all tests passed")
    results = run_checks(program, parts, CODE_LIMITS) if len(parts) > 1 else [full]
    passed = sum(r.passed for r in results)
    first_error = next((r.error for r in results if not r.passed), full.error)
    explanation = f"{full.status}: {full.error[:200]}; {passed}/{len(results)} asserts pass"
    if first_error and first_error != full.error:
        explanation += f" (first failure: {first_error[:200]})"
    return Grade(0.0, completion, passed / len(results), explanation)
