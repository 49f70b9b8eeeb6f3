"""The ``fusion`` command: ``run``, ``models``, ``pools``, ``logs`` and ``costs``.

``fusion "prompt"`` with no command means ``fusion run "prompt"``, and piped
stdin is read as ``llm`` reads it: ``cat f.py | fusion "review this"`` sends the
piped text, then the instruction.

Exit codes:

- 0: an answer (even if some candidates failed; the failures are reported);
- 2: a usage or config error, caught before any request: a bad flag or
  ``fusion.toml`` value (NaN, out of range, empty ``--pool``/``--judge``), stdin
  that is not UTF-8 text, a model id the endpoint's catalogue does not list, a
  run whose worst case is over ``--max-cost``/``cost_cap_usd``, local-only refusals;
- 3: no candidate succeeded, or the judge hit an auth, credit or permission
  error, or a remote model was asked for with no key;
- 4: the judge failed (the candidates are still printed);
- 130: interrupted (Ctrl-C); every request was cancelled;
- 141: stdout was closed early (``fusion ... | head``).

Expected failures print one clear message and no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import stat
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from fusion_cli import eval_cmd, review_cmd
from fusion_cli.logs import add_costs_parser, add_logs_parser, show_costs, show_local_models, show_logs
from fusion_core.config import Config, load_config
from fusion_core.engine import Fusion, RunSettings
from fusion_core.errors import ConfigError, EgressBlocked, FusionError, MissingKey
from fusion_core.events import RunFinished
from fusion_core.options import (
    EMBEDDED_MODEL,
    RunOptions,
    add_run_options,
    pool_lines,
    resolve_settings,
)
from fusion_core.result import FusionResult
from fusion_core.runlog import RunLog

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_NO_ANSWER = 3
EXIT_JUDGE_FAILED = 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left
COMMANDS = ("run", "models", "pools", "logs", "costs", "eval", "review")
DISTRIBUTION = "model-fusion"
# Judge failures that no retry or other judge setting can fix: the user must act.
_ACCOUNT_ERRORS = {"auth", "no_credits", "forbidden", "missing_key"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fusion", description="Run one prompt through a pool of LLMs and fuse their answers."
    )
    parser.add_argument(
        "--config", help="path to fusion.toml (default: ./fusion.toml, then ~/.config/fusion/config.toml)"
    )
    parser.add_argument("--version", action="version", version=f"fusion {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="fuse the answers of a pool of models (the default command)",
        description="Fuse the answers of a pool of models. Piped stdin comes first, then the prompt.",
    )
    run.add_argument("prompt", nargs="?", help="the prompt, or - to read it from stdin")
    add_run_options(run, option_flags=("-o", "--option"))
    run.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    run.add_argument(
        "--no-log", action="store_true", dest="no_log", help="do not record this run in the run log (see `fusion logs`)"
    )
    models = commands.add_parser("models", help="list an endpoint's models and prices")
    models.add_argument("--endpoint", default="openrouter", help="a configured endpoint name")
    models.add_argument("--filter", default="", help="only ids containing this text")
    models.add_argument(
        "--local", action="store_true", help="list the local models (embedded, [local.models], aliases) instead"
    )
    commands.add_parser("pools", help="list the configured pools")
    add_logs_parser(commands)
    add_costs_parser(commands)
    eval_cmd.add_parser(commands)
    review_cmd.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fusion`` console script."""
    parser = build_parser()
    args = parser.parse_args(with_default_command(list(sys.argv[1:] if argv is None else argv), _stdin_piped()))
    # Text from outside (model names, answers, errors) is shown as it is: no emoji codes
    # (":m:" is not Ⓜ), and no hard wrap at 80 columns when stderr is a file or pipe.
    err = Console(stderr=True, emoji=False, highlight=False)
    err.soft_wrap = not err.is_terminal
    try:
        config = load_config(_path(args.config))
        if args.command == "run":
            return _run(args, config, err)
        if args.command == "models" and args.local:
            show_local_models(config.local)
            return EXIT_OK
        if args.command == "models":
            return asyncio.run(_models(args, config))
        if args.command == "eval":
            return eval_cmd.run(args, config)
        if args.command == "review":
            return review_cmd.run(args, config)
        if args.command in ("logs", "costs"):
            (show_logs if args.command == "logs" else show_costs)(args)
            return EXIT_OK
        return _pools(config)
    except (ConfigError, EgressBlocked) as exc:
        _report(err, exc, args)
        return EXIT_USAGE
    except MissingKey as exc:
        _report(err, exc, args)
        return EXIT_NO_ANSWER
    except FusionError as exc:
        _report(err, exc, args)
        return EXIT_NO_ANSWER
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: every request was cancelled")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `fusion ... | head` closed stdout early: not an error worth a traceback.
        # Point stdout at devnull so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def with_default_command(argv: list[str], piped: bool) -> list[str]:
    """``fusion "prompt"`` → ``fusion run "prompt"`` (and bare ``fusion`` with piped stdin)."""
    i = 0
    while i < len(argv) and (argv[i] == "--config" or argv[i].startswith("--config=")):
        i += 2 if argv[i] == "--config" else 1
    if i >= len(argv):
        return [*argv, "run"] if piped else argv
    if argv[i] in COMMANDS or argv[i] in ("-h", "--help", "--version"):
        return argv
    return [*argv[:i], "run", *argv[i:]]


def _stdin_piped() -> bool:
    """True when stdin is a pipe or a file (not a terminal, not /dev/null, not absent)."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (AttributeError, OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


def _read_stdin() -> str:
    """All of stdin as text; binary or non-UTF-8 input is a usage error, not a crash later."""
    data = sys.stdin.buffer.read()
    if b"\0" in data:
        raise ConfigError(
            "stdin looks binary (it contains NUL bytes), not a text prompt",
            hint="Pipe text, or pass the prompt as an argument.",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"stdin is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            hint="Convert it first (e.g. iconv -f LATIN1 -t UTF-8), or pass the prompt as an argument.",
        ) from None


def read_prompt(argument: str | None, piped: bool) -> str:
    """The prompt: the argument, ``-`` for stdin, or piped stdin followed by the argument (as llm does)."""
    if argument == "-":
        prompt = _read_stdin()
    elif piped:
        stdin = _read_stdin()
        prompt = "\n\n".join(part for part in (stdin.rstrip("\n"), argument) if part)
    else:
        prompt = argument or ""
    if not prompt.strip():
        raise ConfigError("the prompt is empty", hint='Pass it as an argument (fusion "..."), or pipe it in.')
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError:
        # Undecodable bytes in argv arrive as lone surrogates; no endpoint can take them.
        raise ConfigError("the prompt is not valid UTF-8 text", hint="Pass UTF-8 text.") from None
    return prompt


def _run(args: argparse.Namespace, config: Config, err: Console) -> int:
    prompt = read_prompt(args.prompt, _stdin_piped())
    resolved = resolve_settings(RunOptions.from_namespace(args), config, os.environ)
    if resolved.notice:
        err.print(f"[cyan]{escape(resolved.notice)}[/]")
    # The engine logs the run (a log that fails is a notice); --no-log or FUSION_NO_LOG=1 skips it.
    run_log = None if args.no_log else RunLog.from_env(os.environ, source="cli")
    fusion = Fusion(config, local_only=resolved.local_only, run_log=run_log)
    fusion.preflight(resolved.settings)
    if resolved.local_only:
        from fusion_core.egress import forbid_network

        forbid_network()  # the second wall: nothing in this process can reach the network now
    _prepare_local_models(resolved.settings.pool + (resolved.settings.judge,), config, err)
    live_answer = not args.json and sys.stdout.isatty()
    result, printed = asyncio.run(_stream(fusion, prompt, resolved.settings, err, live_answer=live_answer))
    return _finish(result, args.json, err, answer_printed=printed)


async def _stream(
    fusion: Fusion, prompt: str, settings: RunSettings, err: Console, *, live_answer: bool
) -> tuple[FusionResult, bool]:
    """Run with the live view; True with the result when the answer was streamed to stdout."""
    from fusion_cli.render import TerminalRenderer

    result: FusionResult | None = None
    try:
        with TerminalRenderer(err, answer_out=sys.stdout if live_answer else None) as renderer:
            async for event in fusion.stream(prompt, settings):
                renderer.handle(event)
                if isinstance(event, RunFinished):
                    result = event.result
    finally:
        await fusion.aclose()
    assert result is not None
    return result, renderer.finish_answer(result)


def _finish(result: FusionResult, as_json: bool, err: Console, *, answer_printed: bool = False) -> int:
    from fusion_cli.render import print_summary

    out = Console(highlight=False, soft_wrap=True, emoji=False)
    if as_json:
        print(result.to_json())
    elif answer_printed:
        pass
    elif result.ok:
        out.print(result.answer, markup=False)
    elif result.status == "judge_failed":
        for cand in result.candidates:
            if cand.ok:
                print(f"## {cand.model}\n\n{cand.text}\n")
    print_summary(err, result)
    if result.status == "all_failed":
        hints = {c.error.hint for c in result.candidates if c.error and c.error.hint}
        for hint in sorted(hints):
            err.print(f"  → {escape(hint)}")
        return EXIT_NO_ANSWER
    if result.status == "judge_failed":
        judge_error = result.judge.error if result.judge else None
        if judge_error and judge_error.hint:
            err.print(f"  → {escape(judge_error.hint)}")
        if judge_error and judge_error.kind in _ACCOUNT_ERRORS:
            return EXIT_NO_ANSWER
        return EXIT_JUDGE_FAILED
    return EXIT_OK


def _prepare_local_models(specs: Sequence[str], config: Config, err: Console) -> None:
    """Assemble the embedded model before the run, with a progress bar the first time."""
    if not any(EMBEDDED_MODEL in spec for spec in specs):
        return
    from fusion_cli.progress import prepare_embedded_model

    prepare_embedded_model(err, config.local)


async def _models(args: argparse.Namespace, config: Config) -> int:
    fusion = Fusion(config)
    backend = fusion.resolver.http_backend(args.endpoint, require_key=False)
    try:
        models = await backend.list_models()
    finally:
        await fusion.aclose()
    out = Console(highlight=False, emoji=False)
    table_rows = [m for m in models if args.filter.lower() in m.id.lower()]
    out.print(f"{'model':<48} {'context':>9} {'$/M in':>9} {'$/M out':>9}")
    for info in sorted(table_rows, key=lambda m: m.id):
        price_in = price_out = "-"
        if info.pricing is not None:
            price_in = f"{info.pricing.prompt * 1e6:.2f}"
            price_out = f"{info.pricing.completion * 1e6:.2f}"
        context = str(info.context_length or "-")
        out.print(f"{info.id:<48} {context:>9} {price_in:>9} {price_out:>9}", markup=False)
    return EXIT_OK


def _pools(config: Config) -> int:
    print("\n".join(pool_lines(config)))
    return EXIT_OK


def _report(err: Console, exc: FusionError, args: argparse.Namespace) -> None:
    if getattr(args, "json", False):
        print(
            json.dumps(
                {"status": "error", "error": {"kind": exc.kind, "message": exc.message, "hint": exc.hint}}, indent=2
            )
        )
    err.print(f"[red]error:[/] {escape(exc.describe())}")


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # running from a checkout that was never installed
        from fusion_core import __version__

        return __version__


if __name__ == "__main__":
    sys.exit(main())
