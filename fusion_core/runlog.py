"""A SQLite log of finished runs, for looking back and for per-model cost accounting.

The log is an optional sink of the engine: ``Fusion(run_log=RunLog(path))``
records every run the session finishes, whichever front end started it. The
CLI and the notebook log to ``$XDG_DATA_HOME/fusion/runs.db`` (default
``~/.local/share/fusion/runs.db``) unless ``--no-log`` or ``FUSION_NO_LOG=1``
says not to; ``FUSION_LOG_DB`` points it elsewhere. The language server logs
only when its ``runLog`` setting is on. Only the result is stored: prompt,
answer, candidates, verdict and usage. No key is ever part of a result, and a
key pasted into the prompt is masked before it is written.

The schema is versioned (table ``schema_version``): opening a log written by an
older Fusion applies the missing :data:`MIGRATIONS` in one transaction.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fusion_core.errors import ConfigError, FusionError
from fusion_core.events import Notice
from fusion_core.result import FusionResult
from fusion_core.secrets import scrub_known

LOG_DB_ENV = "FUSION_LOG_DB"
NO_LOG_ENV = "FUSION_NO_LOG"
# Schema version N is MIGRATIONS[:N] applied in order. Never edit a shipped step: append one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the first log (written before the version table existed, hence IF NOT EXISTS).
    (
        """CREATE TABLE IF NOT EXISTS runs (
            id INTEGER PRIMARY KEY,
            finished_at REAL NOT NULL,
            mode TEXT NOT NULL,
            status TEXT NOT NULL,
            prompt TEXT NOT NULL,
            answer TEXT NOT NULL,
            wall_s REAL NOT NULL,
            cost REAL,
            result_json TEXT NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS calls (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            role TEXT NOT NULL,
            status TEXT NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cost REAL,
            cost_estimated INTEGER NOT NULL,
            latency_s REAL
        )""",
        "CREATE INDEX IF NOT EXISTS calls_model ON calls(model)",
    ),
    # 2: which front end ran it, now that notebook and language-server runs are logged too.
    ("ALTER TABLE runs ADD COLUMN source TEXT NOT NULL DEFAULT ''",),
)
SCHEMA_VERSION = len(MIGRATIONS)


class RunSink(Protocol):
    """Receives every run a :class:`~fusion_core.engine.Fusion` session finishes."""

    def record(self, prompt: str, result: FusionResult) -> object:
        """Store one finished run; raise FusionError when it cannot."""
        ...


def record_run(sink: RunSink, prompt: str, result: FusionResult) -> Notice | None:
    """Hand a finished run to ``sink``; a sink that failed costs a notice, never the answer."""
    try:
        sink.record(prompt, result)
    except FusionError as exc:
        return Notice(message=f"run not logged: {exc.message}")
    return None


def migrate(db: sqlite3.Connection) -> int:
    """Bring ``db`` to :data:`SCHEMA_VERSION` in one transaction; returns the version it had."""
    previous, db.isolation_level = db.isolation_level, None  # explicit transaction: DDL included, one writer at a time
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
            found = int(row[0]) if row and row[0] is not None else 0
            for steps in MIGRATIONS[found:]:
                for statement in steps:
                    db.execute(statement)
            if found < SCHEMA_VERSION:
                db.execute("DELETE FROM schema_version")
                db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    finally:
        db.isolation_level = previous
    return found


@dataclass(frozen=True)
class LoggedRun:
    id: int
    finished_at: float
    mode: str
    status: str
    prompt: str
    answer: str
    wall_s: float
    cost: float | None
    models: tuple[str, ...] = ()  # the pool members, SPEC#k samples folded into SPEC*N


@dataclass(frozen=True)
class ModelTotals:
    """One model's calls across every logged run."""

    model: str
    calls: int
    failures: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    estimated: bool

    def plus(self, other: ModelTotals) -> ModelTotals:
        """Both rows' counts under this row's model name."""
        return ModelTotals(
            self.model,
            self.calls + other.calls,
            self.failures + other.failures,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost + other.cost,
            self.estimated or other.estimated,
        )


_SAMPLE_SUFFIX = re.compile(r"#\d+$")


def sample_of(member: str) -> str:
    """The model a pool member runs: ``local/x#2`` (a sample of ``local/x*N``) → ``local/x``."""
    return _SAMPLE_SUFFIX.sub("", member)


def fold_samples(members: list[str]) -> tuple[str, ...]:
    """Pool members for display, the samples of one model folded: ``a#1, a#2, b`` → ``a*2, b``."""
    counts: dict[str, int] = {}
    for member in members:
        counts[sample_of(member)] = counts.get(sample_of(member), 0) + 1
    return tuple(model if n == 1 else f"{model}*{n}" for model, n in counts.items())


def default_log_path(env: Mapping[str, str]) -> Path | None:
    """Where runs are logged, or None when logging is switched off."""
    if env.get(NO_LOG_ENV, "").strip() not in ("", "0"):
        return None
    if env.get(LOG_DB_ENV):
        return Path(env[LOG_DB_ENV]).expanduser()
    base = env.get("XDG_DATA_HOME") or "~/.local/share"
    return Path(base).expanduser() / "fusion" / "runs.db"


class RunLog:
    """The run log at ``path``; every method opens, uses and closes its own connection.

    ``source`` names the front end whose runs this log records (``cli``, ``notebook``, ``lsp``).
    """

    def __init__(self, path: Path, *, source: str = "") -> None:
        self.path = path
        self.source = source

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, source: str = "") -> RunLog | None:
        """The default log (:func:`default_log_path`), or None when logging is switched off."""
        path = default_log_path(env)
        return None if path is None else cls(path, source=source)

    def record(self, prompt: str, result: FusionResult, *, now: float | None = None) -> int:
        """Store a finished run; returns its id."""
        with self._session(create=True) as db:
            cursor = db.execute(
                "INSERT INTO runs (finished_at, mode, status, prompt, answer, wall_s, cost, result_json, source)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time() if now is None else now,
                    result.mode,
                    result.status,
                    scrub_known(prompt),  # a pasted key stays out of the log
                    result.answer,
                    result.wall_s,
                    result.usage.cost,
                    result.to_json(indent=None),
                    self.source,
                ),
            )
            run_id = int(cursor.lastrowid or 0)
            calls = [
                (
                    run_id,
                    c.model,
                    "candidate",
                    c.status,
                    c.usage.prompt_tokens,
                    c.usage.completion_tokens,
                    c.usage.cost,
                    int(c.usage.cost_estimated),
                    c.latency_s,
                )
                for rnd in (result.rounds or (result.candidates,))
                for c in rnd
            ]
            if result.judge is not None:
                judge = result.judge
                calls.append(
                    (
                        run_id,
                        judge.model,
                        "judge",
                        "failed" if judge.error else "ok",
                        judge.usage.prompt_tokens,
                        judge.usage.completion_tokens,
                        judge.usage.cost,
                        int(judge.usage.cost_estimated),
                        None,
                    )
                )
            db.executemany("INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", calls)
        return run_id

    def recent(self, limit: int, *, query: str = "", model: str = "") -> list[LoggedRun]:
        """The latest ``limit`` runs, newest first; ``query`` searches prompt and answer, ``model`` the models."""
        where, params = ["1"], []
        if query:
            where.append("(instr(lower(prompt), lower(?)) > 0 OR instr(lower(answer), lower(?)) > 0)")
            params += [query, query]
        if model:
            where.append("id IN (SELECT run_id FROM calls WHERE instr(lower(model), lower(?)) > 0)")
            params.append(model)
        with self._session() as db:
            rows = db.execute(
                "SELECT id, finished_at, mode, status, prompt, answer, wall_s, cost FROM runs"
                f" WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
            members: dict[int, list[str]] = {}
            for run_id, name in db.execute(
                "SELECT DISTINCT run_id, model FROM calls WHERE role = 'candidate' AND run_id IN"
                f" ({', '.join('?' * len(rows))}) ORDER BY run_id, rowid",
                [row[0] for row in rows],
            ):
                members.setdefault(run_id, []).append(name)
        return [
            LoggedRun(run_id, finished, mode, status, prompt, answer, wall, cost, fold_samples(members.get(run_id, [])))
            for run_id, finished, mode, status, prompt, answer, wall, cost in rows
        ]

    def result_json(self, run_id: int, *, indent: int | None = None) -> str:
        """The full result JSON of one run (pretty-printed with ``indent``)."""
        with self._session() as db:
            row = db.execute("SELECT result_json FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise ConfigError(f"no logged run has id {run_id}", hint="`fusion logs` lists the runs.")
        text = str(row[0])
        return text if indent is None else json.dumps(json.loads(text), indent=indent, ensure_ascii=False)

    def totals(self, *, since: float | None = None) -> list[ModelTotals]:
        """Calls, tokens and cost per model over the logged runs (from ``since``), most expensive first.

        The samples of one model (``SPEC#1``, ``SPEC#2``, ... from ``SPEC*N``) count as that model.
        """
        with self._session() as db:
            rows = db.execute(
                "SELECT c.model, c.role, COUNT(*), SUM(c.status = 'failed'), SUM(c.prompt_tokens),"
                " SUM(c.completion_tokens), COALESCE(SUM(c.cost), 0), MAX(c.cost_estimated)"
                " FROM calls AS c JOIN runs AS r ON r.id = c.run_id"
                " WHERE r.finished_at >= ? GROUP BY c.model, c.role",
                (since if since is not None else float("-inf"),),
            ).fetchall()
        grouped: dict[str, ModelTotals] = {}
        for model, role, calls, failures, prompt, completion, cost, estimated in rows:
            name = model if role == "judge" else sample_of(model)
            row = ModelTotals(name, calls, failures, prompt, completion, cost, bool(estimated))
            seen = grouped.get(name)
            grouped[name] = row if seen is None else seen.plus(row)
        return sorted(grouped.values(), key=lambda t: (-t.cost, t.model))

    @contextmanager
    def _session(self, *, create: bool = False) -> Iterator[sqlite3.Connection]:
        db = self._connect(create=create)
        try:
            with db:  # commits, or rolls back on error
                yield db
        except sqlite3.Error as exc:
            raise ConfigError(
                f"the run log {self.path} failed: {exc}", hint=f"Remove the file, or set {NO_LOG_ENV}=1."
            ) from exc
        finally:
            db.close()

    def _connect(self, *, create: bool = False) -> sqlite3.Connection:
        if not create and not self.path.exists():
            # Reading an empty log is not an error: there is simply nothing yet.
            db = sqlite3.connect(":memory:")
            migrate(db)
            return db
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path)
            migrate(db)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot use the run log {self.path}: {exc}",
                hint=f"Fix or remove the file, point {LOG_DB_ENV} elsewhere, or set {NO_LOG_ENV}=1.",
            ) from exc
        return db
