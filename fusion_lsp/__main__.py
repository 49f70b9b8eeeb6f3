"""``fusion-lsp`` / ``python -m fusion_lsp``: start the language server (stdio, or ``--tcp HOST:PORT``).

Without the ``[lsp]`` extra it prints one line naming the extra and exits 2,
instead of a traceback that an editor shows as "quit with exit code 1".
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from fusion_lsp import __version__

LOG_LEVELS = ("debug", "info", "warning", "error")
EXIT_MISSING_EXTRA = 2
# What the [lsp] extra brings (and what those depend on).
LSP_PACKAGES = frozenset({"pygls", "lsprotocol", "cattrs", "attrs"})
LSP_EXTRA_HINT = 'install the lsp extra from the Fusion checkout: pip install -e ".[lsp]"'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fusion-lsp", description="Fused code review and completion for any LSP editor."
    )
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument("--stdio", action="store_true", help="speak LSP on stdin/stdout (the default)")
    transport.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        help="listen on this address only (port 0: any free port, printed on stderr); each client gets its own server",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="warning",
        help="what goes to stderr (default: warning); never message bodies below debug",
    )
    parser.add_argument("--version", action="version", version=f"fusion-lsp {__version__}")
    return parser


def parse_tcp(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--tcp takes HOST:PORT, not {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fusion-lsp`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    tcp = None
    if args.tcp:
        try:
            tcp = parse_tcp(args.tcp)
        except ValueError as exc:
            parser.error(str(exc))
    level = getattr(logging, args.log_level.upper())
    logging.basicConfig(stream=sys.stderr, level=level, format="fusion-lsp %(levelname)s %(name)s: %(message)s")
    # pygls logs whole messages (document text included) at info level; keep them out unless debugging.
    logging.getLogger("pygls").setLevel(level if level <= logging.DEBUG else max(level, logging.WARNING))

    try:
        from fusion_lsp.server import create_server
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in LSP_PACKAGES:
            raise
        print(f"fusion-lsp: {exc.name} is not installed; {LSP_EXTRA_HINT}", file=sys.stderr)
        return EXIT_MISSING_EXTRA

    if tcp is not None:
        from fusion_lsp.tcp import child_command, serve_tcp

        serve_tcp(*tcp, child_command(args.log_level))
        return 0

    create_server().start_io()
    return 0


if __name__ == "__main__":
    sys.exit(main())
