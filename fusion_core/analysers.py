"""Static analysers as review pool members: ``tool:ruff``, ``tool:bandit``, ``tool:semgrep``.

Every serious review bot runs linters and SAST tools beside its models; here
they are reviewers like any model. Each runs as a subprocess with JSON output
on the code *as it is* (they run locally, so nothing is redacted), with a
timeout and a bounded output, and each result becomes a
:class:`fusion_core.review.Finding` that merges with the models' findings by
agreement ("3 of 4 reviewers").

Severity mapping (documented in the README):

* ruff: syntax errors, ``E9``, ``F63``, ``F7``, ``F82`` (undefined names) → error;
  ``S`` (bandit rules), ``B`` (bugbear), ``ASYNC``, ``PLE`` and other ``F`` → warning;
  everything else → info. A *safe* ruff fix becomes the finding's replacement.
* bandit: ``HIGH`` → error, ``MEDIUM`` → warning, ``LOW`` → info; category security.
* semgrep: ``ERROR`` → error, ``WARNING`` → warning, ``INFO`` → info; the category from
  the rule's ``metadata.category`` (security, correctness → bug, performance, ...).
  Offline it needs local rules: ``$FUSION_SEMGREP_CONFIG`` or ``.semgrep.yml`` (e.g. a
  copy of ``examples/semgrep/python.yml``); it runs with metrics and the version check off.

ruff also checks the bug-finding rule families in :data:`RUFF_REVIEW_RULES`
on top of the project's own ruff configuration.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fusion_core.errors import BackendTimeout, BadResponse, ConfigError, FusionError
from fusion_core.events import CandidateFailed, CandidateFinished, CandidateStarted, Event, Notice
from fusion_core.pool import error_info
from fusion_core.result import Candidate
from fusion_core.usage import Usage

if TYPE_CHECKING:
    from fusion_core.findings import Finding
    from fusion_core.review import ReviewTarget

__all__ = [
    "ANALYSERS",
    "DEFAULT_ANALYSER_POOL",
    "SEMGREP_RULES_ENV",
    "TOOL_PREFIX",
    "ToolRun",
    "is_tool_spec",
    "plain_finding",
    "run_analysers",
]

TOOL_PREFIX = "tool:"
ANALYSERS = ("ruff", "bandit", "semgrep")
# The review pool with no key and no instruct model: useful in seconds, offline (CLI and editor).
DEFAULT_ANALYSER_POOL = ("tool:ruff", "tool:bandit")
NO_LLM_NOTICE = (
    "No LLM reviewer is configured: reviewing with ruff and bandit only. To add models, set "
    'OPENROUTER_API_KEY, or add a [pools.review] to fusion.toml (models = ["tool:ruff", '
    '"anthropic/claude-sonnet-4", ...]).'
)
DEFAULT_TOOL_TIMEOUT_S = 60.0
MAX_TOOL_OUTPUT_BYTES = 8_000_000
MAX_FINDINGS_PER_TOOL = 200
RUFF_REVIEW_RULES = "F,E9,B,S,ASYNC,PLE"
PYTHON_SUFFIXES = (".py", ".pyi")
SEMGREP_RULES_ENV = "FUSION_SEMGREP_CONFIG"
SEMGREP_RULE_FILES = (".semgrep.yml", ".semgrep.yaml", ".semgrep")

Emit = Callable[[Event], None]


def is_tool_spec(spec: str) -> bool:
    """True for ``tool:NAME`` pool members (static analysers, run locally)."""
    return spec.startswith(TOOL_PREFIX)


def check_tool_spec(spec: str) -> str:
    """The analyser's name in ``tool:NAME``; ConfigError for an unknown one."""
    name = spec[len(TOOL_PREFIX) :].strip()
    if name not in ANALYSERS:
        raise ConfigError(
            f"unknown analyser {spec!r}", hint=f"Known analysers: {', '.join('tool:' + a for a in ANALYSERS)}."
        )
    return name


@dataclass(frozen=True)
class ToolRun:
    """One analyser's review of one file: its candidate (for progress and failures) and findings."""

    member: str
    candidate: Candidate | None  # None: the analyser does not apply to this file
    findings: tuple[Finding, ...] = ()


async def run_analysers(
    members: Sequence[tuple[str, str]], target: ReviewTarget, *, emit: Emit, timeout_s: float = DEFAULT_TOOL_TIMEOUT_S
) -> list[ToolRun]:
    """Run every ``(member name, tool:NAME spec)`` on ``target`` concurrently."""
    return list(await asyncio.gather(*(_run_one(name, spec, target, emit, timeout_s) for name, spec in members)))


async def _run_one(member: str, spec: str, target: ReviewTarget, emit: Emit, timeout_s: float) -> ToolRun:
    tool = check_tool_spec(spec)
    if tool in ("ruff", "bandit") and not _is_python(target):
        emit(Notice(message=f"{member} skipped {target.path or 'the file'}: it only reviews Python"))
        return ToolRun(member=member, candidate=None)
    started = time.perf_counter()
    emit(CandidateStarted(model=member, label=member))
    try:
        findings = await _ANALYSE[tool](member, target, timeout_s)
    except FusionError as exc:
        info = error_info(exc)
        latency = time.perf_counter() - started
        emit(CandidateFailed(model=member, error=info, latency_s=latency))
        return ToolRun(member, Candidate(model=member, label=member, status="failed", error=info, latency_s=latency))
    findings = findings[:MAX_FINDINGS_PER_TOOL]
    if target.lines is not None:
        lo, hi = target.lines
        findings = [f for f in findings if f.end_line >= lo and f.start_line <= hi]
    latency = time.perf_counter() - started
    text = json.dumps({"findings": [plain_finding(f) for f in findings]})
    emit(CandidateFinished(model=member, text=text, usage=Usage(), latency_s=latency))
    cand = Candidate(model=member, label=member, status="ok", text=text, latency_s=latency)
    return ToolRun(member, cand, tuple(findings))


def plain_finding(f: Finding) -> dict[str, Any]:
    """A finding as the plain data a tool candidate's text holds."""
    return {
        "start_line": f.start_line,
        "end_line": f.end_line,
        "severity": f.severity,
        "category": f.category,
        "message": f.message,
        "rule": f.rule,
    }


def _is_python(target: ReviewTarget) -> bool:
    return target.language.lower() == "python" or target.path.endswith(PYTHON_SUFFIXES)


# -- running a subprocess ----------------------------------------------------------------


async def _execute(tool: str, argv: list[str], stdin: str, cwd: str | None, timeout_s: float) -> Any:
    """Run ``argv`` with ``stdin``; its stdout parsed as JSON. Output and time are bounded."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
        )
    except OSError as exc:
        raise ConfigError(f"tool:{tool} could not start: {exc}", hint=_install_hint(tool)) from exc
    try:
        out, err = await asyncio.wait_for(_bounded(proc, stdin.encode("utf-8", "surrogatepass")), timeout_s)
    except TimeoutError as exc:
        proc.kill()
        await proc.wait()
        raise BackendTimeout(
            f"tool:{tool} did not finish within {timeout_s:g}s",
            model=f"tool:{tool}",
            hint="Review fewer files at once.",
        ) from exc
    except _TooMuch as exc:
        proc.kill()
        await proc.wait()
        raise BadResponse(f"tool:{tool} wrote more than {MAX_TOOL_OUTPUT_BYTES:,} bytes", model=f"tool:{tool}") from exc
    try:
        return json.loads(out)
    except json.JSONDecodeError as exc:
        detail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise BadResponse(f"tool:{tool} did not print JSON ({detail[0][:200]})", model=f"tool:{tool}") from exc


class _TooMuch(Exception):
    pass


async def _bounded(proc: asyncio.subprocess.Process, data: bytes) -> tuple[bytes, bytes]:
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

    async def feed() -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(data)
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the tool stopped reading; its output says why
        finally:
            proc.stdin.close()

    async def drain(stream: asyncio.StreamReader) -> bytes:
        chunks, size = [], 0
        while chunk := await stream.read(65536):
            size += len(chunk)
            if size > MAX_TOOL_OUTPUT_BYTES:
                raise _TooMuch
            chunks.append(chunk)
        return b"".join(chunks)

    _, out, err = await asyncio.gather(feed(), drain(proc.stdout), drain(proc.stderr))
    await proc.wait()
    return out, err


def _install_hint(tool: str) -> str:
    if tool == "semgrep":
        # In fusion's own environment semgrep's pins would downgrade click and jsonschema.
        return (
            "Install semgrep in its own environment (pipx install semgrep) so that `semgrep` is on PATH, "
            "or drop tool:semgrep from the pool."
        )
    return f"Install the review extra: pip install 'model-fusion[review]' (it brings {tool})."


def _cwd(target: ReviewTarget) -> str | None:
    """Run in the file's folder so the tool finds the project's configuration."""
    parent = Path(target.path).parent if target.path else None
    return str(parent) if parent is not None and parent.is_dir() else None


# -- ruff ---------------------------------------------------------------------------------


def _ruff_binary() -> str:
    try:
        from ruff.__main__ import find_ruff_bin  # the ruff wheel's own locator

        return str(find_ruff_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("ruff")
        if found is None:
            raise ConfigError("tool:ruff is not installed", hint=_install_hint("ruff")) from None
        return found


async def _ruff(member: str, target: ReviewTarget, timeout_s: float) -> list[Finding]:
    name = os.path.abspath(target.path) if target.path else "untitled.py"
    argv = [_ruff_binary(), "check", "--output-format", "json", "--no-cache", "--exit-zero"]
    argv += ["--extend-select", RUFF_REVIEW_RULES, "--stdin-filename", name, "-"]
    data = await _execute("ruff", argv, target.text, _cwd(target), timeout_s)
    if not isinstance(data, list):
        raise BadResponse("tool:ruff printed JSON that is not a list of results", model=member)
    lines = _lines(target.text)
    return [f for item in data if (f := _ruff_finding(member, item, lines)) is not None]


def _ruff_finding(member: str, item: Any, lines: list[str]) -> Finding | None:
    from fusion_core.findings import Finding

    if not isinstance(item, dict):
        return None
    start, end = _row(item.get("location")), _row(item.get("end_location"))
    if start is None:
        return None
    code = item.get("code") or "syntax-error"
    replacement, fix_lines = _ruff_fix(item.get("fix"), lines)
    return Finding(
        model=member,
        start_line=start,
        end_line=max(start, end or start),
        severity=_ruff_severity(code),
        category=_ruff_category(code),
        message=f"{code}: {str(item.get('message', '')).strip()}"[:500],
        replacement=replacement,
        rule=f"ruff/{code}",
        url=item.get("url") if isinstance(item.get("url"), str) else None,
        fix_lines=fix_lines,
    )


def _ruff_severity(code: str) -> Any:
    if code == "syntax-error" or code.startswith(("E9", "F63", "F7", "F82")):
        return "error"
    if code.startswith(("S", "B", "ASYNC", "PLE", "F")):
        return "warning"
    return "info"


def _ruff_category(code: str) -> str:
    for prefix, category in (("S", "security"), ("ASYNC", "concurrency"), ("PERF", "performance")):
        if code.startswith(prefix):
            return category
    if code.startswith(("BLE", "TRY")):
        return "error-handling"
    if code == "syntax-error" or code.startswith(("B", "F", "E9", "PLE")):
        return "bug"
    return "style"


def _ruff_fix(fix: Any, lines: list[str]) -> tuple[str | None, tuple[int, int] | None]:
    """A safe fix's edits as the new text of the whole lines they touch."""
    if not isinstance(fix, dict) or fix.get("applicability") != "safe" or not isinstance(fix.get("edits"), list):
        return None, None
    edits = []
    for edit in fix["edits"]:
        loc, end = edit.get("location", {}), edit.get("end_location", {})
        try:
            edits.append(
                ((int(loc["row"]), int(loc["column"])), (int(end["row"]), int(end["column"])), str(edit["content"]))
            )
        except (KeyError, TypeError, ValueError):
            return None, None
    if not edits:
        return None, None
    first = min(e[0][0] for e in edits)
    last = max(e[1][0] for e in edits)
    # An edit ending at column 1 of a later line deletes up to the end of the line before it.
    eats_newline = last > first and any(e[1] == (last, 1) for e in edits) and all(e[0][0] < last for e in edits)
    if eats_newline:
        last -= 1  # an edit ending at column 1 of the next line deletes this line's end
    if last > len(lines):
        return None, None
    segment = "\n".join(lines[first - 1 : last]) + ("\n" if eats_newline else "")

    def offset(row: int, col: int) -> int:
        return sum(len(lines[r - 1]) + 1 for r in range(first, row)) + col - 1

    for (srow, scol), (erow, ecol), content in sorted(edits, reverse=True):
        segment = segment[: offset(srow, scol)] + content + segment[offset(erow, ecol) :]
    if eats_newline:
        segment = segment[:-1] if segment.endswith("\n") else segment
    return segment, (first, last)


def _row(loc: Any) -> int | None:
    return int(loc["row"]) if isinstance(loc, dict) and isinstance(loc.get("row"), int) else None


def _lines(text: str) -> list[str]:
    return re.split(r"\r\n|\r|\n", text)


# -- bandit -------------------------------------------------------------------------------

_BANDIT_SEVERITY: dict[str, Any] = {"HIGH": "error", "MEDIUM": "warning", "LOW": "info"}


async def _bandit(member: str, target: ReviewTarget, timeout_s: float) -> list[Finding]:
    from fusion_core.findings import Finding

    if importlib.util.find_spec("bandit") is None:
        raise ConfigError("tool:bandit is not installed", hint=_install_hint("bandit"))
    argv = [sys.executable, "-m", "bandit", "-f", "json", "-q", "-"]
    data = await _execute("bandit", argv, target.text, _cwd(target), timeout_s)
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list):
        raise BadResponse("tool:bandit printed JSON without results", model=member)
    found = []
    for item in results:
        if not isinstance(item, dict) or not isinstance(item.get("line_number"), int):
            continue
        span = [n for n in item.get("line_range", []) if isinstance(n, int)] or [item["line_number"]]
        test = str(item.get("test_id", "B000"))
        found.append(
            Finding(
                model=member,
                start_line=min(span),
                end_line=max(span),
                severity=_BANDIT_SEVERITY.get(str(item.get("issue_severity")), "warning"),
                category="security",
                message=f"{test}: {str(item.get('issue_text', '')).strip()}"[:500],
                rule=f"bandit/{test}",
                url=item.get("more_info") if isinstance(item.get("more_info"), str) else None,
            )
        )
    return found


# -- semgrep ------------------------------------------------------------------------------

_SEMGREP_SEVERITY: dict[str, Any] = {"ERROR": "error", "WARNING": "warning", "INFO": "info"}


def _semgrep_binary() -> str | None:
    """semgrep on PATH, else beside this Python (an environment that is not activated)."""
    found = shutil.which("semgrep")
    if found is None:
        beside = Path(sys.executable).parent / "semgrep"
        found = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None
    return found


async def _semgrep(member: str, target: ReviewTarget, timeout_s: float) -> list[Finding]:
    from fusion_core.findings import Finding

    binary = _semgrep_binary()
    if binary is None:
        raise ConfigError("tool:semgrep is not on PATH", hint=_install_hint("semgrep"))
    rules = os.environ.get(SEMGREP_RULES_ENV) or next((r for r in SEMGREP_RULE_FILES if Path(r).exists()), None)
    if rules is None:
        raise ConfigError(
            "tool:semgrep has no rules to run (offline, it cannot fetch a registry ruleset)",
            hint=f"Add {SEMGREP_RULE_FILES[0]} to the project, or set {SEMGREP_RULES_ENV} to a rules file.",
        )
    if not Path(rules).exists():
        raise ConfigError(f"tool:semgrep: the rules file {rules} does not exist", hint=f"Check {SEMGREP_RULES_ENV}.")
    import tempfile

    suffix = Path(target.path).suffix or ".txt"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"code{suffix}"
        path.write_text(target.text, encoding="utf-8")
        # Offline: no metrics, and no version check (it waits on the network before scanning).
        argv = [binary, "scan", "--json", "--quiet", "--metrics", "off", "--disable-version-check"]
        # Run beside the rules file: semgrep prefixes a rule's id with the rules file's folder
        # as seen from the working directory, so this keeps the ids as the file writes them.
        rules_path = Path(rules).resolve()
        argv += ["--config", rules_path.name, str(path)]
        data = await _execute("semgrep", argv, "", str(rules_path.parent), timeout_s)
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list):
        raise BadResponse("tool:semgrep printed JSON without results", model=member)
    found = []
    for item in results:
        start, end = _row_semgrep(item, "start"), _row_semgrep(item, "end")
        if start is None:
            continue
        extra = item.get("extra", {}) if isinstance(item.get("extra"), dict) else {}
        rule = str(item.get("check_id", "semgrep"))
        found.append(
            Finding(
                model=member,
                start_line=start,
                end_line=max(start, end or start),
                severity=_SEMGREP_SEVERITY.get(str(extra.get("severity")), "warning"),
                category=_semgrep_category(rule, extra.get("metadata")),
                message=f"{rule}: {str(extra.get('message', '')).strip()}"[:500],
                rule=f"semgrep/{rule}",
            )
        )
    return found


# semgrep rules name their category in metadata (the registry's convention).
_SEMGREP_CATEGORIES = {
    "security": "security",
    "correctness": "bug",
    "performance": "performance",
    "maintainability": "style",
    "best-practice": "style",
    "error-handling": "error-handling",
    "concurrency": "concurrency",
}


def _semgrep_category(rule: str, metadata: Any) -> str:
    declared = metadata.get("category") if isinstance(metadata, dict) else None
    if isinstance(declared, str) and declared.lower() in _SEMGREP_CATEGORIES:
        return _SEMGREP_CATEGORIES[declared.lower()]
    return "security" if "security" in rule else "bug"


def _row_semgrep(item: Any, key: str) -> int | None:
    where = item.get(key) if isinstance(item, dict) else None
    return int(where["line"]) if isinstance(where, dict) and isinstance(where.get("line"), int) else None


_ANALYSE: dict[str, Callable[[str, ReviewTarget, float], Any]] = {"ruff": _ruff, "bandit": _bandit, "semgrep": _semgrep}
