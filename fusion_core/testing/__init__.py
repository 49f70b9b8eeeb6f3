"""Test doubles for Fusion: an OpenRouter-compatible HTTP server with mock models.

The server lives in :mod:`fusion_core.testing.server`; its names are re-exported
here lazily, so ``python -m fusion_core.testing.server`` does not import the
module twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fusion_core.testing.server import TestServer, TestServerError, create_app, run_test_server

__all__ = ["TestServer", "TestServerError", "create_app", "run_test_server"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from fusion_core.testing import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
