"""``fusion logs``, ``fusion costs`` and ``fusion models --local``: looking back and looking around.

These commands only read (the run log, the local model files); none of them
calls a model. :mod:`fusion_cli.main` registers their flags through the
``add_*`` functions here and dispatches to the ``show_*`` ones.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime

from rich.filesize import decimal

from fusion_core.config import LocalConfig
from fusion_core.display import format_cost
from fusion_core.errors import ConfigError
from fusion_core.runlog import NO_LOG_ENV, RunLog, default_log_path
from fusion_core.usage import Usage

DEFAULT_LOG_COUNT = 10
PROMPT_CHARS = 60
JSON_INDENT = 2


def add_logs_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``fusion logs``."""
    logs = commands.add_parser("logs", help="list logged runs, or show one run's result")
    logs.add_argument(
        "-n", "--count", type=int, default=DEFAULT_LOG_COUNT, help=f"how many recent runs (default {DEFAULT_LOG_COUNT})"
    )
    logs.add_argument("-q", "--query", default="", help="only runs whose prompt or answer contains TEXT")
    logs.add_argument("-m", "--model", default="", help="only runs in which a model containing TEXT took part")
    logs.add_argument("--id", type=int, dest="run_id", help="print this run's full result, as indented JSON")


def add_costs_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``fusion costs``."""
    costs = commands.add_parser("costs", help="calls, tokens and cost per model over the logged runs")
    costs.add_argument("--since", help="only runs from this date on (YYYY-MM-DD or YYYY-MM-DDTHH:MM, local time)")


def open_log() -> RunLog:
    """The run log this environment uses; a ConfigError when logging is off."""
    path = default_log_path(os.environ)
    if path is None:
        raise ConfigError(f"run logging is off ({NO_LOG_ENV} is set)", hint=f"Unset {NO_LOG_ENV}.")
    return RunLog(path)


def show_logs(args: argparse.Namespace) -> None:
    """Print recent runs under a header row, or one run's result JSON."""
    log = open_log()
    if args.run_id is not None:
        print(log.result_json(args.run_id, indent=JSON_INDENT))
        return
    if args.count <= 0:
        raise ConfigError(f"--count must be positive, not {args.count}")
    runs = log.recent(args.count, query=args.query, model=args.model)
    if not runs:
        searched = args.query or args.model
        print(f"no logged run matches in {log.path}" if searched else f"no runs logged yet in {log.path}")
        return
    print(f"{'id':>5}  {'finished':<16}  {'mode':<8} {'status':<12} {'cost':>11} {'wall':>8}  {'models':<40} prompt")
    for run in runs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.finished_at))
        prompt = " ".join(run.prompt.split())[:PROMPT_CHARS]
        cost = "n/a" if run.cost is None else f"${run.cost:.6f}"
        models = ", ".join(run.models)
        print(
            f"{run.id:>5}  {when:<16}  {run.mode:<8} {run.status:<12} {cost:>11} {run.wall_s:>7.2f}s  "
            f"{models:<40} {prompt}"
        )


def show_costs(args: argparse.Namespace) -> None:
    """Print calls, failures, tokens and cost per model; samples count under their model."""
    log = open_log()
    since = parse_since(args.since) if args.since else None
    totals = log.totals(since=since)
    if not totals:
        when = f" since {args.since}" if args.since else ""
        print(f"no runs logged{when} in {log.path}")
        return
    print(f"{'model':<44} {'calls':>6} {'failed':>6} {'tokens in':>10} {'tokens out':>10} {'cost':>12}")
    for row in totals:
        cost = format_cost(Usage(cost=row.cost, cost_estimated=row.estimated))
        print(
            f"{row.model:<44} {row.calls:>6} {row.failures:>6} {row.prompt_tokens:>10} "
            f"{row.completion_tokens:>10} {cost:>12}"
        )


def parse_since(text: str) -> float:
    """``2026-11-30`` or ``2026-11-30T14:00`` (local time) → a Unix timestamp."""
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ConfigError(
            f"--since {text!r} is not a date", hint="Write a date like 2026-11-30, or 2026-11-30T14:00."
        ) from None


def show_local_models(local: LocalConfig) -> None:
    """Print every local model name: the embedded one, ``[local.models]`` and the known aliases."""
    from fusion_core.backends.llama.models import local_model_entries

    print(f"{'model':<26} {'kind':<11} {'size':>9}  {'present':<7}  file")
    for entry in local_model_entries(local):
        size = decimal(entry.size) if entry.size is not None else "-"
        where = str(entry.path) if entry.path is not None else "-"
        present = "yes" if entry.present else "no"
        note = f"  ({entry.note})" if entry.note else ""
        print(f"{entry.name:<26} {entry.kind:<11} {size:>9}  {present:<7}  {where}{note}")
