"""Fixtures: the real fusion-lsp server as a subprocess (pytest-lsp), pointed at the loopback test server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsp_helpers import BASE_OPTIONS, SERVER_COMMAND, capabilities
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

Starter = Callable[..., Awaitable[LanguageClient]]


@pytest.fixture
def lsp_env(remote_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The server's environment: the test server as OpenRouter, and no user config."""
    env = dict(remote_env)
    env["XDG_CACHE_HOME"] = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    env["HOME"] = str(tmp_path / "home")
    env.pop("FUSION_CONFIG", None)
    return env


@pytest_asyncio.fixture
async def start_lsp(lsp_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Starter]:
    """``await start_lsp(editor, options)`` → an initialized client talking to a fresh server."""
    clients: list[LanguageClient] = []

    async def start(
        editor: str = "visual_studio_code",
        options: dict[str, Any] | None = None,
        *,
        inline: bool = False,
        root: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> LanguageClient:
        config = ClientServerConfig(server_command=SERVER_COMMAND, server_env=env or lsp_env)
        client = await config.start()
        assert isinstance(client, LanguageClient)
        clients.append(client)
        client.applied_edits = []  # type: ignore[attr-defined]

        @client.feature(types.WORKSPACE_APPLY_EDIT)
        def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
            client.applied_edits.append(params)  # type: ignore[attr-defined]
            return types.ApplyWorkspaceEditResult(applied=True)

        workspace = root or tmp_path
        client.initialize_result = await client.initialize_session(
            types.InitializeParams(  # type: ignore[attr-defined]
                capabilities=capabilities(editor, inline=inline),
                initialization_options=BASE_OPTIONS if options is None else options,
                root_uri=workspace.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="ws")],
            )
        )
        return client

    yield start
    for client in clients:
        try:
            async with asyncio.timeout(10):
                await client.shutdown_session()
        except Exception:  # noqa: BLE001 - a test that killed the server already failed
            pass
        await client.stop()
