"""``fusion review``: the fused review of files or of a change, for pull requests and pre-commit.

It runs the same pipeline as the language server (:mod:`fusion_core.review`):
models and static analysers (``tool:ruff``, ``tool:bandit``) review each file,
and findings merge by agreement. With ``--diff`` or ``--staged`` only the
changed hunks are reviewed. Each file's findings are cached by (content,
pool, prompt version), so a second run on unchanged files sends nothing.

Exit codes: 0 nothing at or above ``--fail-on``; 1 a finding at or above it;
2 a usage or config error; 3 no reviewer could run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fusion_cli.review_files import Source, collect_changes, collect_paths
from fusion_cli.review_output import FORMATS, FileReview, render
from fusion_core.analysers import DEFAULT_ANALYSER_POOL, NO_LLM_NOTICE
from fusion_core.config import Config
from fusion_core.cost import check_cost
from fusion_core.engine import Fusion
from fusion_core.errors import ConfigError
from fusion_core.events import Notice
from fusion_core.options import REMOTE_DEFAULT_POOL, REVIEW_POOL_NAME, is_builtin, resolve_pool
from fusion_core.result import ErrorInfo
from fusion_core.review import (
    DEFAULT_REVIEW_MAX_TOKENS,
    DEFAULT_REVIEW_TEMPERATURE,
    DEFAULT_REVIEW_TIMEOUT_S,
    Finding,
    ReviewSettings,
    ReviewTarget,
    merge_findings,
    plan_review,
    run_plan,
)
from fusion_core.review_diff import scope_to_changes

__all__ = ["OFFLINE_NOTICE", "add_parser", "review_pool", "run"]

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_NO_REVIEWER = 0, 1, 2, 3
OFFLINE_NOTICE = NO_LLM_NOTICE[:-1] + ", or pass --pool."
# Bump when the review prompt or the merge changes, so cached findings are not reused.
PROMPT_VERSION = "review-1"
FILES_AT_ONCE = 4
CACHE_DIR_ENV = "FUSION_CACHE_DIR"
_RANK = {"error": 3, "warning": 2, "info": 1, "hint": 0}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``fusion review`` to the ``fusion`` command's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser("review", help="fused code review of files or a change")
    p.add_argument("paths", nargs="*", help="files or folders (default: the current folder)")
    p.add_argument("--diff", nargs="?", const="", default=None, metavar="BASE", help="review only changes since BASE")
    p.add_argument("--staged", action="store_true", help="review only the staged changes (pre-commit)")
    p.add_argument("--pool", help="comma-separated reviewer specs (models, tool:ruff, tool:bandit), or @name")
    p.add_argument("--format", choices=FORMATS, default="text", dest="fmt", help="output format (default text)")
    p.add_argument("--fail-on", choices=("error", "warning", "never"), default="error", dest="fail_on")
    p.add_argument("--max-cost", type=float, dest="max_cost", help="refuse to start if the estimate is over USD")
    p.add_argument("--output", help="write the report to FILE instead of stdout")
    p.add_argument("--no-cache", action="store_true", dest="no_cache", help="ignore cached findings")
    return p


def run(args: argparse.Namespace, config: Config) -> int:
    """Run ``fusion review``; returns the exit code. FusionErrors propagate to the caller."""
    if args.diff is not None and args.staged:
        raise ConfigError("--diff and --staged cannot be combined", hint="Use one of them.")
    if args.max_cost is not None and args.max_cost < 0:
        raise ConfigError("--max-cost must not be negative")
    pool, offline = review_pool(args.pool, config)
    if offline:
        print(OFFLINE_NOTICE, file=sys.stderr)
    if args.diff is not None or args.staged:
        sources, notes = collect_changes(args.paths, base=args.diff, staged=args.staged)
    else:
        sources, notes = collect_paths(args.paths or ["."])
    settings = _settings(pool, config)
    files, ran = asyncio.run(_review_all(sources, settings, config, args))
    files = [*(FileReview(path=p, note=n) for p, n in notes), *files]
    report = render(files, args.fmt)
    if args.output:
        Path(args.output).write_text(report, encoding="utf-8")
    else:
        sys.stdout.write(report)
    cached = sum(f.cached for f in files)
    if cached:
        print(f"{cached} of {len(sources)} file(s) from the cache: no requests, no cost", file=sys.stderr)
    if sources and not ran:
        print("error: no reviewer could run on any file", file=sys.stderr)
        for hint in sorted({e.hint for f in files for e in f.failures.values() if e.hint}):
            print(f"  → {hint}", file=sys.stderr)
        return EXIT_NO_REVIEWER
    if args.fail_on != "never":
        worst = [f for r in files for f, _ in r.findings if _RANK[f.severity] >= _RANK[args.fail_on]]
        if worst:
            return EXIT_FINDINGS
    return EXIT_OK


def review_pool(flag: str | None, config: Config) -> tuple[tuple[str, ...], bool]:
    """The review pool from ``--pool``, ``[pools.review]`` or the defaults; also whether it is the offline one."""
    if flag:
        flag = flag.strip()
        if flag.startswith("@"):
            return resolve_pool(flag[1:], config, os.environ).models, False
        return tuple(p.strip() for p in flag.split(",")), False
    pool = resolve_pool(REVIEW_POOL_NAME, config, os.environ, builtin_fallback=True)
    if not is_builtin(pool):
        return pool.models, False
    if pool is REMOTE_DEFAULT_POOL:
        return (*DEFAULT_ANALYSER_POOL, *pool.models), False
    return DEFAULT_ANALYSER_POOL, True


def _settings(pool: tuple[str, ...], config: Config) -> ReviewSettings:
    conf = config.pools.get(REVIEW_POOL_NAME)
    return ReviewSettings(
        pool=pool,
        timeout_s=(conf.timeout if conf and conf.timeout else DEFAULT_REVIEW_TIMEOUT_S),
        max_tokens=(conf.max_tokens if conf and conf.max_tokens else DEFAULT_REVIEW_MAX_TOKENS),
        temperature=(conf.temperature if conf and conf.temperature is not None else DEFAULT_REVIEW_TEMPERATURE),
        quorum=conf.quorum if conf else None,
        max_concurrency=config.concurrency,
    )


@dataclass
class _Work:
    source: Source
    key: str
    cached: FileReview | None = None


async def _review_all(
    sources: list[Source], settings: ReviewSettings, config: Config, args: argparse.Namespace
) -> tuple[list[FileReview], bool]:
    """Review every source (cached ones are read back); also whether any reviewer ran."""
    fusion = Fusion(config, local_only=config.local_only)
    cache = None if args.no_cache else _cache_dir()
    try:
        work = [_Work(s, _cache_key(s, settings)) for s in sources]
        for w in work:
            w.cached = _load(cache, w) if cache else None
        todo = [w for w in work if w.cached is None]
        plans = [await plan_review(fusion, _target(w.source), settings, emit=_note) for w in todo]
        if args.max_cost is not None:
            # Every file's requests together, before the first one is sent (fusion_core.cost).
            await check_cost([job for plan in plans for job in plan.jobs], args.max_cost)
        gate = asyncio.Semaphore(FILES_AT_ONCE)
        tty = sys.stderr.isatty()
        done = 0

        async def one(w: _Work, plan: Any) -> FileReview:
            nonlocal done
            async with gate:
                outcome = await run_plan(plan, settings)
            done += 1
            if tty:
                print(f"[{done}/{len(todo)}] {w.source.path}: {len(outcome.findings)} finding(s)", file=sys.stderr)
            per = _per_reviewer(outcome.findings, outcome.responders)
            review = _scoped(w.source, per, outcome.failures)
            if cache and not outcome.failures and outcome.responders:
                _store(cache, w, review)
            return review

        fresh = await asyncio.gather(*(one(w, p) for w, p in zip(todo, plans, strict=True)))
    finally:
        await fusion.aclose()
    by_path = {r.path: r for r in fresh}
    reviews = [w.cached or by_path[w.source.path] for w in work]
    ran = any(r.reviewers for r in reviews)
    return reviews, ran


def _note(event: Any) -> None:
    if isinstance(event, Notice):
        print(f"note: {event.message}", file=sys.stderr)


def _target(source: Source) -> ReviewTarget:
    return ReviewTarget(text=source.text, path=source.path, changed=source.changed)


def _per_reviewer(findings: Any, responders: tuple[str, ...]) -> dict[str, list[Finding]]:
    per: dict[str, list[Finding]] = {name: [] for name in responders}
    for merged in findings:
        for report in merged.reports:
            per.setdefault(report.model, []).append(report)
    return per


def _scoped(source: Source, per: dict[str, list[Finding]], failures: dict[str, ErrorInfo]) -> FileReview:
    """Merge each reviewer's findings and keep those that count for this change."""
    merged = merge_findings(per, len(per), source.text.splitlines())
    if source.changed is None:
        kept = [(f, False) for f in merged]
    else:
        kept = scope_to_changes(merged, source.changed)
    return FileReview(path=source.path, findings=tuple(kept), reviewers=per, failures=failures)


# -- cache ---------------------------------------------------------------------------------


def _cache_dir() -> Path:
    root = os.environ.get(CACHE_DIR_ENV) or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    base = Path(root) if os.environ.get(CACHE_DIR_ENV) else Path(root) / "fusion"
    return base / "review"


def _cache_key(source: Source, settings: ReviewSettings) -> str:
    parts = [PROMPT_VERSION, list(settings.pool), source.path, source.text, source.changed]
    return hashlib.sha256(json.dumps(parts, default=list).encode("utf-8", "surrogatepass")).hexdigest()


def _load(cache: Path, w: _Work) -> FileReview | None:
    try:
        data = json.loads((cache / f"{w.key}.json").read_text(encoding="utf-8"))
        per = {
            name: [Finding(**{**x, "fix_lines": tuple(x["fix_lines"]) if x.get("fix_lines") else None}) for x in found]
            for name, found in data["reviewers"].items()
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no entry, or one from another version: review again
    review = _scoped(w.source, per, {})
    return FileReview(path=review.path, findings=review.findings, reviewers=per, cached=True)


def _store(cache: Path, w: _Work, review: FileReview) -> None:
    try:
        cache.mkdir(parents=True, exist_ok=True)
        data = {"reviewers": {name: [asdict(x) for x in found] for name, found in review.reviewers.items()}}
        tmp = cache / f"{w.key}.tmp"
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(cache / f"{w.key}.json")
    except OSError as exc:
        print(f"warning: findings not cached: {exc}", file=sys.stderr)
