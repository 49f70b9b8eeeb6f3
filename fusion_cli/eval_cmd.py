"""``fusion eval TASKS --pool ...``: does the pool beat its members? One table, a JSON report, a chart.

Kept apart from :mod:`fusion_cli.main`, which only calls :func:`add_parser`
and :func:`run`; inspect_ai is imported only when the command runs, so
``fusion`` starts fast without the ``[eval]`` extra.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from fusion_core.config import MODES, Config
from fusion_core.errors import ConfigError

__all__ = ["add_parser", "run"]

SCORERS = ("exact", "includes", "regex", "numeric", "choice", "model")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``fusion eval`` to the ``fusion`` command's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "eval",
        help="measure whether a pool beats its members on a task set (needs the [eval] extra)",
        description="Run every pool member alone and each fusion mode on the same samples, "
        "then print accuracy, paired tests, cost and latency. Tasks: HumanEval-style JSONL, "
        "generic JSONL (input, target) or path/task.py@name. A review dev set (a folder with "
        "manifest.jsonl, e.g. examples/evals/review) measures review quality instead: recall and "
        "precision of each reviewer and of the fused review.",
    )
    parser.add_argument("tasks", help="a .jsonl file, path/task.py@name, or a review dev set folder")
    parser.add_argument(
        "--pool", help="comma-separated model specs, SPEC*N, or @name (review sets: default the review pool)"
    )
    parser.add_argument("--modes", default="best-of", help="comma-separated fusion modes (default best-of)")
    parser.add_argument(
        "--judge", action="append", default=[], help="a judge; repeat (or comma-separate) to compare judges"
    )
    parser.add_argument("--limit", type=int, help="only the first N samples")
    parser.add_argument("--epochs", type=int, default=1, help="run each sample K times (default 1)")
    parser.add_argument("--max-cost", type=float, dest="max_cost", help="refuse or stop at this many USD")
    parser.add_argument("--scorer", choices=SCORERS, help="for generic JSONL (default exact)")
    parser.add_argument("--grader", help="the grader model for --scorer model (e.g. fusion/openai/gpt-4o)")
    parser.add_argument("--max-tokens", type=int, dest="max_tokens", help="token limit per answer")
    parser.add_argument("--temperature", type=float, help="sampling temperature for the pool")
    parser.add_argument("--timeout", type=float, help="seconds per model call")
    parser.add_argument("--local-only", action="store_true", dest="local_only", help="refuse every remote model")
    parser.add_argument("--json", action="store_true", help="print the JSON report on stdout")
    parser.add_argument("--out", help="output directory (default ./fusion-eval/TASKS-NAME)")
    return parser


def run(args: argparse.Namespace, config: Config) -> int:
    """Run ``fusion eval``; FusionErrors propagate to main's one-line reporting."""
    from fusion_core.eval.findings_score import is_review_set

    if is_review_set(args.tasks):
        return _run_review(args, config)
    if not args.pool:
        raise ConfigError("fusion eval needs --pool for this task set", hint="Pass --pool SPEC,SPEC or --pool @name.")
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    for mode in modes:
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r} in --modes", hint=f"Use {', '.join(MODES)}.")
    for name in ("limit", "epochs", "max_tokens"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, not {value}")
    judges = tuple(j.strip() for flag in args.judge for j in flag.split(",") if j.strip())
    err = Console(stderr=True)
    from fusion_core.eval import require_inspect

    require_inspect()
    from fusion_core.eval.run import evaluate

    options = _options(args, modes, judges, err)
    report = evaluate(options, config=config)
    if args.json:
        print(report.to_json())
    else:
        Console(highlight=False, soft_wrap=True).print(report.table(), markup=False)
    out = Path(report.log_dir).parent if report.log_dir else None
    if out is not None:
        err.print(f"report: {escape(str(out / 'report.json'))}, chart: {escape(str(out / 'chart.png'))}")
        err.print(f"logs: {escape(str(report.log_dir))} (inspect view --log-dir {escape(str(report.log_dir))})")
    sys.stdout.flush()
    return 0


def _options(args: argparse.Namespace, modes: tuple[str, ...], judges: tuple[str, ...], err: Console) -> Any:
    from fusion_core.eval.run import EvalOptions

    return EvalOptions(
        tasks=args.tasks,
        pool=args.pool,
        modes=modes or ("best-of",),
        judges=judges,
        limit=args.limit,
        epochs=args.epochs,
        max_cost=args.max_cost,
        scorer=args.scorer,
        grader=args.grader,
        out_dir=Path(args.out) if args.out else None,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        timeout_s=args.timeout,
        local_only=bool(args.local_only),
        display="full" if err.is_terminal else "none",
        config_path=Path(args.config) if getattr(args, "config", None) else None,
    )


def _run_review(args: argparse.Namespace, config: Config) -> int:
    """``fusion eval DEV_SET``: recall and precision of each reviewer and of the fused review."""
    for flag, given in (
        ("--modes", args.modes != "best-of"),
        ("--judge", bool(args.judge)),
        ("--scorer", args.scorer is not None),
        ("--grader", args.grader is not None),
        ("--epochs", args.epochs != 1),
    ):
        if given:
            raise ConfigError(f"{flag} does not apply to a review dev set", hint="Leave it out.")
    if args.limit is not None and args.limit <= 0:
        raise ConfigError(f"--limit must be positive, not {args.limit}")
    err = Console(stderr=True)
    from fusion_core.eval import require_inspect

    require_inspect()
    from fusion_cli.review_cmd import OFFLINE_NOTICE, review_pool
    from fusion_core.eval.review_task import evaluate_review

    pool, offline = review_pool(args.pool, config)
    if offline:
        print(OFFLINE_NOTICE, file=sys.stderr)
    report = evaluate_review(_options(args, ("best-of",), (), err), pool, config)
    if args.json:
        print(report.to_json())
    else:
        Console(highlight=False, soft_wrap=True).print(report.table(), markup=False)
    if report.log_dir:
        out = Path(report.log_dir).parent
        err.print(f"report: {escape(str(out / 'report.json'))}, table: {escape(str(out / 'report.md'))}")
        err.print(f"logs: {escape(str(report.log_dir))} (inspect view --log-dir {escape(str(report.log_dir))})")
    sys.stdout.flush()
    return 0
