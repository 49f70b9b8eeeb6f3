"""The report of a review evaluation: recall and precision per reviewer and for the fused review.

Plain data built from the scored samples of inspect's log, independent of
inspect, so it prints as a table, renders as Markdown for the README, and
serialises to JSON (``fusion eval --json``). Rows: each reviewer alone, then
the fused review keeping findings that at least 1, 2, ... reviewers agree on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fusion_core.eval.findings_score import Tally
from fusion_core.eval.report import markdown_table, text_table
from fusion_core.eval.stats import percentile, wilson_ci95

__all__ = ["ReviewReport", "ReviewRow", "build_review_report"]

RowKind = Literal["reviewer", "fused"]


@dataclass(frozen=True)
class ReviewRow:
    """One reviewer's (or the fused review's) totals over the dev set."""

    system: str
    kind: RowKind
    files: int
    tally: Tally
    latency_p50_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        recall_ci = wilson_ci95(self.tally.found, self.tally.planted)
        precision_ci = wilson_ci95(self.tally.true, self.tally.reported)
        return {
            "system": self.system,
            "kind": self.kind,
            "files": self.files,
            **self.tally.to_dict(),
            "recall_ci95": list(recall_ci),
            "precision_ci95": list(precision_ci),
            "latency_p50_s": self.latency_p50_s,
        }


@dataclass
class ReviewReport:
    """What a review evaluation measured. ``str()`` is the table."""

    rows: list[ReviewRow]
    pool: tuple[str, ...]
    samples: list[dict[str, Any]] = field(default_factory=list)
    log_dir: str | None = None
    notes: list[str] = field(default_factory=list)
    log_file: str | None = None

    def row(self, system: str) -> ReviewRow:
        """The row of ``system``."""
        return next(r for r in self.rows if r.system == system)

    def to_dict(self) -> dict[str, Any]:
        """rows, samples (per file: each system's tally), the pool, the inspect log and notes."""
        return {
            "task": "review",
            "pool": list(self.pool),
            "rows": [r.to_dict() for r in self.rows],
            "samples": self.samples,
            "log_dir": self.log_dir,
            "log_file": self.log_file,
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def table_rows(self) -> list[list[str]]:
        """Header and cells, as text."""
        lines = [
            [
                "reviewer",
                "recall",
                "precision",
                "findings",
                "on clean files",
                "same category",
                "failed files",
                "p50 s/file",
            ]
        ]
        for r in self.rows:
            t = r.tally
            lines.append(
                [
                    r.system,
                    f"{_pct(t.recall)} ({t.found}/{t.planted})",
                    f"{_pct(t.precision)} ({t.true}/{t.reported})",
                    str(t.reported),
                    str(t.clean_reported),
                    f"{t.found_same_category}/{t.found}",
                    str(t.failed_files),
                    "" if r.latency_p50_s is None else f"{r.latency_p50_s:.2f}",
                ]
            )
        return lines

    def kind_rows(self) -> list[list[str]]:
        """Planted kinds against systems: how many of each kind each system found."""
        kinds = sorted({k for r in self.rows for k in r.tally.by_kind})
        lines = [["kind", *(r.system for r in self.rows)]]
        for kind in kinds:
            cells = []
            for r in self.rows:
                found, planted = r.tally.by_kind.get(kind, [0, 0])
                cells.append(f"{found}/{planted}")
            lines.append([kind, *cells])
        return lines

    def table(self) -> str:
        """The table as aligned plain text, with its footnotes."""
        return "\n".join([text_table(self.table_rows()), "", *self.footnotes()])

    def markdown(self) -> str:
        """The table (and the per-kind table) in Markdown, for a README."""
        return "\n".join(
            [markdown_table(self.table_rows()), "", markdown_table(self.kind_rows()), ""] + self.footnotes()
        )

    def footnotes(self) -> list[str]:
        files = self.rows[0].files if self.rows else 0
        notes = [
            f"{files} files; a finding matches a planted problem when their line ranges overlap; "
            "recall = planted problems found, precision = findings that match one",
        ]
        if any(r.kind == "fused" for r in self.rows):
            notes.append("fused, agreed by >= k: the merged review keeping findings that k or more reviewers reported")
        return notes + self.notes

    def __str__(self) -> str:
        return self.table()

    def write(self, out_dir: Path) -> Path:
        """Write ``report.json`` and ``report.md`` into ``out_dir``; the JSON's path."""
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "report.json"
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        (out_dir / "report.md").write_text(self.markdown() + "\n", encoding="utf-8")
        return path

    def _repr_markdown_(self) -> str:
        return self.markdown()


def build_review_report(
    samples: Sequence[tuple[str, dict[str, Any]]],
    pool: Sequence[str],
    *,
    log_dir: str | None = None,
    notes: Sequence[str] = (),
) -> ReviewReport:
    """Sum each system's tallies over ``samples`` (sample id, score metadata) into rows."""
    totals: dict[str, Tally] = {}
    latencies: dict[str, list[float]] = {}
    for _, meta in samples:
        for system, data in meta["systems"].items():
            totals[system] = totals.get(system, Tally()) + Tally.from_dict(data)
        for name, seconds in (meta.get("latency_s") or {}).items():
            latencies.setdefault(name, []).append(float(seconds))
        if meta.get("wall_s") is not None:
            latencies.setdefault("", []).append(float(meta["wall_s"]))
    rows = []
    for system, total in totals.items():
        fused = system not in pool
        seconds = latencies.get("" if fused else system, [])
        rows.append(ReviewRow(system, "fused" if fused else "reviewer", len(samples), total, percentile(seconds, 50)))
    per_file = [{"id": sample_id, "systems": meta["systems"]} for sample_id, meta in samples]
    return ReviewReport(rows=rows, pool=tuple(pool), samples=per_file, log_dir=log_dir, notes=list(notes))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"
