"""Local-only runs at the socket level: once forbidden, no network connection can be made.

``--local-only`` already refuses every remote model before anything is sent. This is the
second wall, for the CLI process: a Python audit hook that turns any attempt to resolve a
host name or connect an internet socket into :class:`EgressBlocked`, whoever makes it (our
code, a dependency, a plugin). Audit hooks cannot be removed, so only a process that will
never need the network installs it; the notebook kernel and the language server talk to
their clients over sockets and pipes and rely on the refusal alone.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from fusion_core.errors import EgressBlocked

_BLOCKED_EVENTS = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto", "socket.sendmsg"}
_installed = False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in _BLOCKED_EVENTS:
        return
    if event == "socket.connect" and args and getattr(args[0], "family", None) == socket.AF_UNIX:
        return  # a local pipe, not the network
    target = args[1] if event in {"socket.connect", "socket.sendto"} and len(args) > 1 else args[0] if args else ""
    raise EgressBlocked(f"local-only: a network connection to {target!r} was blocked")


def forbid_network() -> None:
    """Make every internet connection and name lookup in this process raise EgressBlocked."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
