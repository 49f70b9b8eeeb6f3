"""``%%fuse`` (and ``%fuse`` on one line, see :mod:`fusion_jupyter.line`), ``%fuse_pools``, ``%fuse_config``.

How the panes stay live while the cell is busy
----------------------------------------------
The kernel runs every cell inside its own, already running asyncio loop, where
``asyncio.run`` is forbidden. So the magic consumes :meth:`Fusion.iter_events`:
the engine runs on a background event-loop thread owned by the session's one
:class:`~fusion_core.Fusion` (see :mod:`fusion_core.sync`) and hands its events
over a queue. The kernel thread only waits on that queue and applies each event
to the widget view. Every widget trait change is sent to the front end as a
comm message at once, so the panes stream while the cell stays busy until the
run ends; :mod:`fusion_jupyter.view` throttles the redraws.

Interrupting
------------
Interrupting the kernel raises ``KeyboardInterrupt`` in the kernel thread,
which is waiting on the queue. Closing the event iterator cancels the run on
the loop thread, which closes every in-flight HTTP stream (a local model stops
at its next token) and returns once they have all stopped. The panes keep what
had arrived and show "cancelled", and the cell ends with one short message
instead of a traceback. It still counts as a failed cell, so "Run All" stops
there rather than starting the next (possibly paid) run.

Expected errors (:class:`~fusion_core.FusionError`: no key, a bad pool name,
a broken ``fusion.toml``...) end the cell the same way: one short message.
"""

from __future__ import annotations

import argparse
import keyword
import re
import shlex
import sys
from collections.abc import Generator, Mapping
from typing import Any, NoReturn, cast

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, no_var_expand
from IPython.display import display
from traitlets import CaselessStrEnum, Float

from fusion_core.backends.llama.models import EMBEDDED_MODEL, embedded_model_ready, prepare_embedded_model
from fusion_core.backends.openai_http import OPENROUTER_BASE_URL_ENV, OPENROUTER_KEY_ENV
from fusion_core.errors import FusionError
from fusion_core.events import Event, RunFinished
from fusion_core.options import RunOptions, add_run_options, pool_lines
from fusion_core.result import FusionResult
from fusion_jupyter.fallback import TOKENS_LINE_INTERVAL_S, AssemblyReporter, FusionOutput, TextAssembly, TextProgress
from fusion_jupyter.line import code_of, split_line
from fusion_jupyter.session import FusionSession, Prepared

LAST_RESULT_NAME = "_fusion_result"
INTERRUPTED_MESSAGE = "fusion: interrupted; every in-flight request was cancelled (the panes keep what had arrived)"

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
FORMATS = ("markdown", "code")


class FusionMagicError(Exception):
    """An expected failure, shown by IPython as these few lines instead of a traceback."""

    def _render_traceback_(self) -> list[str]:
        return str(self).splitlines()


def interpolate(template: str, namespace: Mapping[str, Any]) -> str:
    """Fill ``{name}`` from ``namespace``; unknown names stay as they are, ``{{``/``}}`` escape braces."""

    def fill(match: re.Match[str]) -> str:
        token, name = match.group(0), match.group(1)
        if name is None:
            return token[0]  # "{{" -> "{", "}}" -> "}"
        return str(namespace[name]) if name in namespace else token

    return _PLACEHOLDER.sub(fill, template)


class _Exit(Exception):
    """argparse wanted to exit (after ``--help``)."""


class _MagicParser(argparse.ArgumentParser):
    """argparse that reports mistakes as IPython usage errors instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            print(message, file=sys.stderr)
        raise _Exit(status)


def fuse_parser() -> argparse.ArgumentParser:
    """The ``%%fuse`` / ``%fuse`` options: the CLI's run options plus ``-o NAME`` and ``-f FORMAT``."""
    parser = _MagicParser(
        prog="%%fuse",
        description="Fuse the answers of a pool of models to the prompt in the cell body, or after the "
        "options in the one-line form `%fuse [options] [--] prompt` ({name} is filled from the notebook's "
        "variables).",
    )
    add_run_options(parser)
    parser.add_argument("-o", "--output", metavar="NAME", help="store the FusionResult in this variable")
    parser.add_argument(
        "-f",
        "--format",
        choices=FORMATS,
        default=FORMATS[0],
        help="markdown (default): show the answer; code: also put the answer's code into a new cell below",
    )
    return parser


def config_parser() -> argparse.ArgumentParser:
    """The ``%fuse_config`` options: the run options become session defaults."""
    parser = _MagicParser(
        prog="%fuse_config",
        description="Show the effective configuration; with "
        "options, set them as defaults for this session's %%fuse cells.",
    )
    add_run_options(parser)
    parser.add_argument("--reset", action="store_true", help="forget the session defaults")
    return parser


def _parse(parser: argparse.ArgumentParser, line: str) -> argparse.Namespace | None:
    try:
        tokens = shlex.split(line)
    except ValueError as exc:  # shlex: unbalanced quotes
        raise UsageError(f"{parser.prog}: {exc}") from None
    return _parse_tokens(parser, tokens)


def _parse_tokens(parser: argparse.ArgumentParser, tokens: list[str]) -> argparse.Namespace | None:
    try:
        return parser.parse_args(tokens)
    except _Exit:
        return None


@magics_class
class FusionMagics(Magics):
    """``%%fuse``, ``%fuse_pools`` and ``%fuse_config``, sharing one :class:`FusionSession`."""

    view = CaselessStrEnum(
        ("auto", "widget", "text"),
        default_value="auto",
        help="How %%fuse shows a run: live widgets, progress lines, or auto (widgets in a kernel).",
    ).tag(config=True)
    progress_interval = Float(
        TOKENS_LINE_INTERVAL_S,
        help="Without widgets, print each streaming model's tokens so far at most this often (seconds).",
    ).tag(config=True)

    def __init__(self, shell: Any = None, session: FusionSession | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.session = session or FusionSession()
        self.last_view: Any = None
        self.last_assembly: AssemblyReporter | None = None

    @property
    def _namespace(self) -> dict[str, Any]:
        """The notebook's variables."""
        assert self.shell is not None, "FusionMagics needs a shell"
        namespace: dict[str, Any] = self.shell.user_ns
        return namespace

    # -- %%fuse ---------------------------------------------------------------------

    @no_var_expand  # {name} is filled by interpolate(), the same way in the line and in the cell
    @line_cell_magic
    def fuse(self, line: str, cell: str | None = None) -> FusionOutput | None:
        """Fuse a pool of models' answers: ``%%fuse [options]`` + prompt, or ``%fuse [options] prompt``.

        See ``%%fuse --help``.
        """
        parser = fuse_parser()
        line = interpolate(line, self._namespace)
        if cell is None:
            parser.prog = "%fuse"
            tokens, prompt = split_line(parser, line)
            options = _parse_tokens(parser, tokens)
        else:
            options = _parse(parser, line)
            prompt = interpolate(cell, self._namespace).strip()
        if options is None:
            return None
        output = options.output
        if output is not None and (not output.isidentifier() or keyword.iskeyword(output)):
            raise UsageError(f"{parser.prog}: -o needs a variable name, not {output!r}")
        if not prompt:
            where = "after the options (%fuse [options] [--] prompt)" if cell is None else "below the %%fuse line"
            raise UsageError(f"{parser.prog}: the prompt is empty; write it {where}")
        try:
            prepared = self.session.prepare(RunOptions.from_namespace(options))
        except FusionError as exc:
            raise self._error(exc) from None
        if prepared.notice:
            print(prepared.notice, file=sys.stderr)
        widgets_on = self._use_widgets()
        self._assemble_embedded_model(prepared, widgets_on)
        result = self._run(prompt, prepared, widgets_on)
        self._namespace[LAST_RESULT_NAME] = result
        if output:
            self._namespace[output] = result
        if options.format == "code" and result.ok:
            assert self.shell is not None
            # In a notebook this opens a new cell below (what jupyter-ai's -f code does);
            # terminal IPython puts the code at its next prompt.
            self.shell.set_next_input(code_of(result.answer), replace=False)
        return FusionOutput(result)

    def _assemble_embedded_model(self, prepared: Prepared, widgets_on: bool) -> None:
        """Before the first run on the embedded model, write it out (~250 MB) with a progress bar."""
        settings = prepared.resolved.settings
        if not any(EMBEDDED_MODEL in spec for spec in (*settings.pool, settings.judge)):
            return
        cache_dir = prepared.config.local.cache_dir
        if embedded_model_ready(cache_dir):
            return
        progress: AssemblyReporter
        if widgets_on:
            from fusion_jupyter.view import AssemblyProgress

            progress = AssemblyProgress(f"local/{EMBEDDED_MODEL}")
            display(progress)  # type: ignore[no-untyped-call]
        else:
            progress = TextAssembly(f"local/{EMBEDDED_MODEL}")
        self.last_assembly = progress
        try:
            prepare_embedded_model(cache_dir, progress=progress.update)
        except KeyboardInterrupt:
            raise FusionMagicError("fusion: interrupted while assembling the embedded model") from None
        except FusionError as exc:
            raise self._error(exc) from None
        progress.finish()

    def _run(self, prompt: str, prepared: Prepared, widgets_on: bool) -> FusionResult:
        settings = prepared.resolved.settings
        view = None
        if widgets_on:
            from fusion_jupyter.view import FusionView

            view = FusionView(settings.pool, settings.judge)
            self.last_view = view
            display(view)  # type: ignore[no-untyped-call]
        handle = view.handle if view is not None else TextProgress(interval_s=self.progress_interval).handle
        # iter_events is a generator: closing it cancels the run and waits until it has stopped.
        events = cast(Generator[Event, None, None], prepared.fusion.iter_events(prompt, settings))
        result: FusionResult | None = None
        try:
            for event in events:
                handle(event)
                if isinstance(event, RunFinished):
                    result = event.result
        except KeyboardInterrupt:
            events.close()  # cancels the run and waits until every request has stopped
            if view is not None:
                view.cancel()
            raise FusionMagicError(INTERRUPTED_MESSAGE) from None
        except FusionError as exc:  # raised before the first event: the view has nothing to show
            if view is not None:
                view.hide()
            raise self._error(exc) from None
        finally:
            events.close()
        assert result is not None  # the stream always ends with RunFinished
        return result

    def _use_widgets(self) -> bool:
        if self.view != "auto":
            return bool(self.view == "widget")
        if getattr(self.shell, "kernel", None) is None:
            return False  # terminal IPython: no front end to draw widgets
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            return False
        return True

    def _error(self, exc: FusionError) -> FusionMagicError:
        text = f"fusion: {exc.describe()}"
        return FusionMagicError(self.session.redact(text))

    # -- %fuse_pools ------------------------------------------------------------------

    @line_magic
    def fuse_pools(self, line: str = "") -> None:
        """List the configured pools (``--pool @name``) and the built-in defaults."""
        try:
            config = self.session.load_config()
        except FusionError as exc:
            raise self._error(exc) from None
        print("\n".join(pool_lines(config)))

    # -- %fuse_config -----------------------------------------------------------------

    @line_magic
    def fuse_config(self, line: str = "") -> None:
        """Show the effective configuration (never the key); options set session defaults."""
        options = _parse(config_parser(), line)
        if options is None:
            return
        try:
            if options.reset:
                self.session.defaults = RunOptions()
            self.session.set_defaults(RunOptions.from_namespace(options))
            config = self.session.load_config()
        except FusionError as exc:
            raise self._error(exc) from None
        print(self.session.redact("\n".join(self._describe(config))))

    def _describe(self, config: Any) -> list[str]:
        env = self.session.env
        lines = [f"config file: {config.path or 'none (built-in defaults)'}"]
        key_set = bool(env.get(OPENROUTER_KEY_ENV, "").strip())
        lines.append(f"{OPENROUTER_KEY_ENV}: {'set' if key_set else 'not set'}")
        if env.get(OPENROUTER_BASE_URL_ENV):
            lines.append(f"{OPENROUTER_BASE_URL_ENV}: {env[OPENROUTER_BASE_URL_ENV]}")
        for endpoint in config.endpoints.values():
            key = ""
            if endpoint.api_key_env:
                state = "set" if env.get(endpoint.api_key_env, "").strip() else "not set"
                key = f" ({endpoint.api_key_env} {state})"
            lines.append(f"endpoint {endpoint.name}: {endpoint.base_url}{key}")
        lines.append(f"local_only: {str(config.local_only).lower()}")
        if self.session.defaults.given():
            lines.append(f"session defaults: {shlex.join(self.session.defaults.flags())}")
        else:
            lines.append("session defaults: none (set some with %fuse_config --pool ... --mode ...)")
        try:
            resolved, _ = self.session.resolve(RunOptions())
        except FusionError as exc:
            lines.append(f"a %%fuse cell without options would fail: {exc.describe()}")
            return lines
        s = resolved.settings
        lines.append("a %%fuse cell without options runs:")
        lines.append(f"  pool {', '.join(s.pool)}")
        lines.append(
            f"  judge {s.judge}, mode {s.mode}"
            + (f", rounds {s.rounds}" if s.mode == "debate" else "")
            + (f", quorum {s.quorum}" if s.quorum else "")
            + (", swap" if s.swap else "")
            + f", timeout {s.timeout_s:g} s"
        )
        extras = [
            f"{name} {value}"
            for name, value in (("temperature", s.temperature), ("max tokens", s.max_tokens))
            if value is not None
        ]
        if s.system:
            extras.append("a system prompt")
        if extras:
            lines.append("  " + ", ".join(extras))
        if resolved.notice:
            lines.append(f"  ({resolved.notice})")
        return lines
