"""Run untrusted Python (model-written code) in a bounded subprocess and read back what it did.

Used by ``fusion eval``'s code scorer and meant for any judge that executes
candidates. Two calls, both sync with async twins:

* :func:`run_checks` runs ``program`` followed by one check at a time, each in
  its own fresh process: a check passes only when the runner reports that it
  reached the end of the check. An ``exit(0)`` or ``os._exit(0)`` inside the
  program therefore fails the check instead of passing it silently.
* :func:`call_function` runs ``program`` once and calls ``entry_point(*args)``
  for each input expression, returning each result's ``repr`` or the error.

Results come back through the runner's own channel: a file descriptor opened
by this process and inherited by the child, on which the trusted runner writes
JSON lines. The candidate's stdout and stderr go to separate files that are
returned for display and never parsed, so printing fake results changes nothing.

Each run gets: a wall-clock timeout (the whole process group is killed), rlimits
on address space, CPU time, file size and number of processes, a fresh
temporary working directory (removed afterwards), a minimal environment, and
no network. As root the runner also drops to the ``nobody`` user (so the
process limit counts only sandboxed processes and files outside the temp
directory are read-only to it), and the process runs under ``unshare --net
--pid``: an empty network namespace and its own PID namespace, so every
process it forked dies with it. Without ``unshare`` (not root, or no
permission) an audit hook refuses socket connects and binds instead.

What this does NOT protect against (use a container or VM for hostile code,
e.g. inspect's docker sandbox, see README "Is fusion worth it?"): reading
world-readable files on the host; CPU and memory contention with the rest of
the machine within the limits; kernel exploits; and, when not root, anything
the current user may do. Code running inside the child can also write to the
result descriptor itself (it is an open file in its own process), so a
deliberately adversarial program can forge its own result; a program that
merely prints, exits early or crashes cannot.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

__all__ = [
    "CallResult",
    "CheckResult",
    "Isolation",
    "Limits",
    "acall_function",
    "arun_checks",
    "call_function",
    "isolation",
    "run_checks",
]

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 1024
DEFAULT_FILE_MB = 16
DEFAULT_MAX_PROCESSES = 32
DEFAULT_CALL_TIMEOUT_S = 2.0
# What is kept of the candidate's own output, for display only.
MAX_OUTPUT_CHARS = 4000
MAX_REPR_CHARS = 2000
NOBODY_UID = 65534
NOBODY_GID = 65534
UNSHARE = ("unshare", "--net", "--pid", "--fork", "--kill-child", "--")
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"

CheckStatus = Literal["passed", "failed", "error", "timeout", "crashed"]


@dataclass(frozen=True)
class Limits:
    """Resource limits for one sandboxed process."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB
    cpu_s: int | None = None  # default: the timeout, rounded up, plus one second
    file_mb: int = DEFAULT_FILE_MB
    max_processes: int = DEFAULT_MAX_PROCESSES
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S

    def to_runner(self) -> dict[str, int]:
        cpu = self.cpu_s if self.cpu_s is not None else int(self.timeout_s) + 1
        return {
            "RLIMIT_AS": self.memory_mb * 1024 * 1024,
            "RLIMIT_CPU": cpu,
            "RLIMIT_FSIZE": self.file_mb * 1024 * 1024,
            "RLIMIT_NPROC": self.max_processes,
            "RLIMIT_CORE": 0,
        }


@dataclass(frozen=True)
class CheckResult:
    """How one check went. ``error`` is ``"Type: message"`` from the runner, or why the process died."""

    status: CheckStatus
    error: str = ""
    duration_s: float = 0.0
    stdout: str = ""
    stderr: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "error": self.error, "duration_s": round(self.duration_s, 4)}


@dataclass(frozen=True)
class CallResult:
    """One call's outcome: the ``repr`` of the value, or the error."""

    ok: bool
    value: str = ""
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "value": self.value, "error": self.error}


@dataclass(frozen=True)
class Isolation:
    """What this machine allows: namespaces, a separate user, and the interpreter that runs code."""

    namespaces: bool
    drop_to_nobody: bool
    python: str

    def describe(self) -> str:
        """One line for reports: how sandboxed runs are isolated here."""
        parts = ["rlimits", "fresh temp dir", "process-group kill"]
        parts.append("unshare: no network, own PID namespace" if self.namespaces else "audit hook refuses sockets")
        parts.append("runs as nobody" if self.drop_to_nobody else "runs as the current user")
        return ", ".join(parts)


@cache
def isolation() -> Isolation:
    """Probe once what isolation works here (``unshare`` needs root or user namespaces)."""
    namespaces = False
    if shutil.which("unshare") is not None:
        try:
            probe = subprocess.run([*UNSHARE, "true"], capture_output=True, timeout=10)
            namespaces = probe.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            namespaces = False
    if os.geteuid() != 0:
        return Isolation(namespaces, False, sys.executable)
    # As nobody, the interpreter's standard library must be readable: a Python installed
    # under /root (pyenv) is not, so fall back to the system's python3.
    for python in dict.fromkeys([sys.executable, shutil.which("python3", path=SAFE_PATH) or ""]):
        if python and _runs_as_nobody(python):
            return Isolation(namespaces, True, python)
    return Isolation(namespaces, False, sys.executable)


def _runs_as_nobody(python: str) -> bool:
    try:
        probe = subprocess.run(
            [python, "-I", "-c", "import socket, decimal, json, resource"],
            capture_output=True,
            timeout=20,
            cwd="/",
            user=NOBODY_UID,
            group=NOBODY_GID,
            extra_groups=[],
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def run_checks(program: str, checks: Sequence[str], limits: Limits | None = None) -> list[CheckResult]:
    """Run ``program + check`` for each check, each in its own fresh sandboxed process."""
    limits = limits or Limits()
    results = []
    for check in checks:
        job = {"kind": "check", "program": program, "check": check}
        records, died, elapsed, out, err = _run(job, limits)
        results.append(_check_result(records, died, elapsed, out, err))
    return results


def call_function(
    program: str, entry_point: str, inputs: Sequence[str], limits: Limits | None = None
) -> list[CallResult]:
    """Run ``program`` once and call ``entry_point(*args)`` for each argument expression in ``inputs``.

    ``inputs`` are Python expressions for the argument list, e.g. ``"1, 2"`` or ``"[3, 1]"``.
    """
    limits = limits or Limits()
    job = {"kind": "calls", "program": program, "entry_point": entry_point, "inputs": list(inputs)}
    records, died, _, _, _ = _run(job, limits)
    calls: dict[int, CallResult] = {}
    setup_error = ""
    for record in records:
        if record.get("event") == "call":
            calls[int(record["index"])] = CallResult(
                ok=bool(record["ok"]), value=str(record.get("value", "")), error=str(record.get("error", ""))
            )
        elif record.get("event") == "error":
            setup_error = str(record.get("error", ""))
    missing = setup_error or died or "the process ended before this call"
    return [calls.get(i) or CallResult(ok=False, error=missing) for i in range(len(inputs))]


async def arun_checks(program: str, checks: Sequence[str], limits: Limits | None = None) -> list[CheckResult]:
    """:func:`run_checks` without blocking the event loop."""
    return await asyncio.to_thread(run_checks, program, checks, limits)


async def acall_function(
    program: str, entry_point: str, inputs: Sequence[str], limits: Limits | None = None
) -> list[CallResult]:
    """:func:`call_function` without blocking the event loop."""
    return await asyncio.to_thread(call_function, program, entry_point, inputs, limits)


def _check_result(records: list[dict[str, Any]], died: str, elapsed: float, out: str, err: str) -> CheckResult:
    events = {r.get("event"): r for r in records}
    if "passed" in events and not died:
        return CheckResult("passed", "", elapsed, out, err)
    if "error" in events:
        error = str(events["error"].get("error", ""))
        status: CheckStatus = "failed" if error.startswith("AssertionError") else "error"
        return CheckResult(status, error, elapsed, out, err)
    if died.startswith("timeout"):
        return CheckResult("timeout", died, elapsed, out, err)
    return CheckResult("crashed", died or "the process ended before the check finished", elapsed, out, err)


def _run(job: dict[str, Any], limits: Limits) -> tuple[list[dict[str, Any]], str, float, str, str]:
    """Run the runner on ``job``; returns (records, why it died or "", seconds, stdout, stderr)."""
    where = isolation()
    root = where.drop_to_nobody
    workdir = tempfile.mkdtemp(prefix="fusion-sandbox-")
    side = tempfile.mkdtemp(prefix="fusion-sandbox-io-")  # outside the candidate's reach when it is nobody
    try:
        if root:
            os.chown(workdir, NOBODY_UID, NOBODY_GID)
        job = {
            **job,
            "limits": limits.to_runner(),
            "uid": NOBODY_UID if root else None,
            "gid": NOBODY_GID if root else None,
            "call_timeout_s": limits.call_timeout_s,
            "block_network": not where.namespaces,
        }
        env = {"PATH": SAFE_PATH, "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        results_path, out_path, err_path = (os.path.join(side, n) for n in ("results", "stdout", "stderr"))
        with open(results_path, "w") as results, open(out_path, "wb") as out, open(err_path, "wb") as err:
            fd = results.fileno()
            prefix = list(UNSHARE) if where.namespaces else []
            command = [*prefix, where.python, "-I", "-c", _RUNNER, str(fd)]
            started = time.perf_counter()
            died = _supervise(command, json.dumps(job).encode(), env, workdir, fd, out, err, limits.timeout_s)
            elapsed = time.perf_counter() - started
        records = _read_records(results_path)
        return records, died, elapsed, _tail(out_path), _tail(err_path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(side, ignore_errors=True)


def _supervise(
    command: list[str], job: bytes, env: dict[str, str], cwd: str, fd: int, out: Any, err: Any, timeout_s: float
) -> str:
    """Run to the end or the timeout; kill the whole process group either way. Returns why it died."""
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=out,
        stderr=err,
        cwd=cwd,
        env=env,
        pass_fds=(fd,),
        start_new_session=True,
    )
    died = ""
    try:
        proc.communicate(job, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        died = f"timeout: still running after {timeout_s:g} s"
    finally:
        # Children it forked share its process group (and, under unshare, die with its PID namespace).
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
    if not died and proc.returncode < 0:
        died = f"killed by {signal.Signals(-proc.returncode).name}"
    elif not died and proc.returncode not in (0, None):
        died = f"exited with status {proc.returncode}"
    return died


def _read_records(path: str) -> list[dict[str, Any]]:
    records = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle.read(1_000_000).splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line from a killed process
            if isinstance(record, dict):
                records.append(record)
    return records


def _tail(path: str) -> str:
    with open(path, "rb") as handle:
        return handle.read(MAX_OUTPUT_CHARS).decode("utf-8", errors="replace")


# The trusted runner, run as `python -I -c _RUNNER FD` with the job as JSON on stdin.
# It sets the limits, drops privileges, then runs the candidate, reporting on FD only.
_RUNNER = (
    f"MAX_REPR_CHARS = {MAX_REPR_CHARS}\n"
    + r"""
import json, os, resource, signal, sys
job = json.loads(sys.stdin.buffer.read())
channel = os.fdopen(int(sys.argv[1]), "w", encoding="utf-8")
def emit(record):
    channel.write(json.dumps(record) + "\n")
    channel.flush()
for name, value in job["limits"].items():
    try:
        resource.setrlimit(getattr(resource, name), (value, value))
    except (ValueError, OSError):
        pass
if job["uid"] is not None:
    os.setgroups([])
    os.setgid(job["gid"])
    os.setuid(job["uid"])
if job["block_network"]:
    def _no_network(event, args):
        if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo"):
            raise PermissionError("network access is disabled in the sandbox")
    sys.addaudithook(_no_network)
sys.stdin = open(os.devnull)
def describe(exc):
    text = f"{type(exc).__name__}: {exc}"
    return text[:2000]
class CallTimeout(Exception):
    pass
def on_alarm(signum, frame):
    raise CallTimeout(f"call took longer than {job['call_timeout_s']} s")
namespace = {"__name__": "__main__"}
try:
    exec(compile(job["program"], "<program>", "exec"), namespace)
    if job["kind"] == "check":
        exec(compile(job["check"], "<check>", "exec"), namespace)
        emit({"event": "passed"})
    else:
        function = namespace[job["entry_point"]]
        signal.signal(signal.SIGALRM, on_alarm)
        for index, text in enumerate(job["inputs"]):
            try:
                signal.setitimer(signal.ITIMER_REAL, job["call_timeout_s"])
                args = eval("(" + text + ",)" if text.strip() else "()", dict(namespace))
                value = function(*args)
                signal.setitimer(signal.ITIMER_REAL, 0)
                emit({"event": "call", "index": index, "ok": True, "value": repr(value)[:MAX_REPR_CHARS]})
            except BaseException as exc:
                signal.setitimer(signal.ITIMER_REAL, 0)
                emit({"event": "call", "index": index, "ok": False, "error": describe(exc)})
except BaseException as exc:
    emit({"event": "error", "error": describe(exc)})
channel.close()
os._exit(0)
"""
)
