"""Scoring a review against planted problems: the matching rule, and recall and precision.

Plain functions and data with no inspect import, so the rule is tested on
hand-made findings and reused by any tool. A review dev set is a folder of
small source files and a ``manifest.jsonl`` with one line per file::

    {"file": "user_lookup.py", "problems": [{"start_line": 14, "end_line": 14,
     "kind": "sql-injection", "category": "security", "note": "..."}]}

A file with ``"problems": []`` is clean: everything reported there is a false positive.

The matching rule (documented in the README, "Review quality, measured"):

* a reported finding **matches** a planted problem when their line ranges
  overlap (both inclusive; no tolerance, so a finding one line off misses);
* **recall**: the share of planted problems matched by at least one finding;
* **precision**: the share of findings that match at least one planted problem
  in their file (two findings on one problem are both true: a reviewer is not
  punished for reporting one bug under two rules);
* **category** is not needed for a match; how many found problems had a
  matching finding of the planted category is reported beside it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fusion_core.errors import ConfigError

__all__ = [
    "MANIFEST_NAME",
    "Planted",
    "Reported",
    "ReviewFile",
    "Tally",
    "is_review_set",
    "manifest_path",
    "matches",
    "read_manifest",
    "tally",
]

MANIFEST_NAME = "manifest.jsonl"
MAX_MANIFEST_BYTES = 5_000_000
MAX_REVIEW_FILE_BYTES = 200_000


@dataclass(frozen=True)
class Planted:
    """A known problem at lines ``start_line..end_line`` (1-based, inclusive)."""

    start_line: int
    end_line: int
    kind: str
    category: str
    note: str = ""


@dataclass(frozen=True)
class Reported:
    """The part of a reported finding the score looks at."""

    start_line: int
    end_line: int
    category: str = "other"


@dataclass(frozen=True)
class ReviewFile:
    """One file of a dev set: its path and its planted problems (none: a clean file)."""

    path: Path
    problems: tuple[Planted, ...]

    @property
    def clean(self) -> bool:
        return not self.problems


def matches(finding: Reported, problem: Planted) -> bool:
    """True when the finding's line range overlaps the problem's (the matching rule)."""
    return finding.start_line <= problem.end_line and problem.start_line <= finding.end_line


@dataclass
class Tally:
    """One reviewer (or fused review) on one or more files: counts behind recall and precision."""

    planted: int = 0
    found: int = 0
    found_same_category: int = 0
    reported: int = 0
    true: int = 0
    clean_reported: int = 0  # findings on clean files: false positives where nothing is wrong
    failed_files: int = 0  # files where this reviewer could not run (it reported nothing there)
    by_kind: dict[str, list[int]] = field(default_factory=dict)  # kind -> [found, planted]

    @property
    def recall(self) -> float | None:
        return self.found / self.planted if self.planted else None

    @property
    def precision(self) -> float | None:
        return self.true / self.reported if self.reported else None

    def __add__(self, other: Tally) -> Tally:
        kinds = {k: list(v) for k, v in self.by_kind.items()}
        for kind, (found, planted) in other.by_kind.items():
            mine = kinds.setdefault(kind, [0, 0])
            mine[0] += found
            mine[1] += planted
        return Tally(
            planted=self.planted + other.planted,
            found=self.found + other.found,
            found_same_category=self.found_same_category + other.found_same_category,
            reported=self.reported + other.reported,
            true=self.true + other.true,
            clean_reported=self.clean_reported + other.clean_reported,
            failed_files=self.failed_files + other.failed_files,
            by_kind=kinds,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["recall"], data["precision"] = self.recall, self.precision
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tally:
        """The inverse of :meth:`to_dict` (the derived recall and precision are dropped)."""
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})


def tally(problems: Sequence[Planted], findings: Iterable[Reported], *, failed: bool = False) -> Tally:
    """Score one file's findings against its planted problems with :func:`matches`."""
    found = list(findings)
    hit = [p for p in problems if any(matches(f, p) for f in found)]
    same = [p for p in hit if any(matches(f, p) and f.category == p.category for f in found)]
    kinds: dict[str, list[int]] = {}
    for p in problems:
        counts = kinds.setdefault(p.kind, [0, 0])
        counts[0] += p in hit
        counts[1] += 1
    return Tally(
        planted=len(problems),
        found=len(hit),
        found_same_category=len(same),
        reported=len(found),
        true=sum(any(matches(f, p) for p in problems) for f in found),
        clean_reported=0 if problems else len(found),
        failed_files=int(failed),
        by_kind=kinds,
    )


# -- the dev set ----------------------------------------------------------------------------


def manifest_path(spec: str | Path) -> Path | None:
    """The manifest of a review dev set named by ``spec`` (its folder or the manifest), else None."""
    path = Path(spec).expanduser()
    if path.is_dir():
        candidate = path / MANIFEST_NAME
        return candidate if candidate.is_file() else None
    if path.name == MANIFEST_NAME and path.is_file():
        return path
    return None


def is_review_set(spec: str | Path) -> bool:
    """True when ``spec`` names a review dev set rather than an answer-grading task."""
    return manifest_path(spec) is not None


def read_manifest(spec: str | Path) -> list[ReviewFile]:
    """The files of a review dev set, each with its planted problems; ConfigError on a bad manifest."""
    path = manifest_path(spec)
    if path is None:
        raise ConfigError(f"{spec} is not a review dev set (no {MANIFEST_NAME})")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_MANIFEST_BYTES // 1_000_000} MB")
    files = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
            source = path.parent / str(row["file"])
            problems = tuple(_planted(p) for p in row["problems"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{where}: not a review manifest line ({type(exc).__name__}: {exc})",
                hint='Each line: {"file": "x.py", "problems": [{"start_line": 1, "end_line": 1, '
                '"kind": "...", "category": "security"}]}.',
            ) from exc
        if not source.is_file():
            raise ConfigError(f"{where}: no file {source}")
        if source.stat().st_size > MAX_REVIEW_FILE_BYTES:
            raise ConfigError(f"{where}: {source} is over {MAX_REVIEW_FILE_BYTES:,} bytes")
        files.append(ReviewFile(path=source, problems=problems))
    if not files:
        raise ConfigError(f"{path} lists no files")
    return files


def _planted(item: Any) -> Planted:
    start, end = int(item["start_line"]), int(item["end_line"])
    if start < 1 or end < start:
        raise ValueError(f"bad line range {start}-{end}")
    return Planted(start, end, str(item["kind"]), str(item["category"]), str(item.get("note", "")))
