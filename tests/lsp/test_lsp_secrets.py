"""Secrets through the real language server: nothing planted in code reaches the test server,
"explain finding" redacts the whole file before cutting its excerpt, and a custom endpoint's
key echoed back by the endpoint never shows in the editor's messages or log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from lsp_helpers import (
    BASE_OPTIONS,
    REVIEW_POOL,
    all_text_seen,
    finding,
    findings_reply,
    fusion_diagnostics,
    open_doc,
    review,
    wait_for,
)
from lsprotocol import types
from secret_corpus import CORPUS, corpus_file, rand

from fusion_core.testing.server import TestServer, run_test_server

# Not shaped like any provider's key: only the registry of configured keys can catch it.
CUSTOM_KEY = "lab-Wombat3" + "Kx7pR2" * 6


def sent_upstream(server: TestServer) -> str:
    """Every request body the test server received, as one string."""
    return "\n".join(json.dumps(entry["messages"], ensure_ascii=False) for entry in server.log())


async def test_no_planted_secret_reaches_the_remote_reviewers(start_lsp, server: TestServer, tmp_path: Path) -> None:
    for name in REVIEW_POOL:
        server.script(name, replies=[findings_reply(finding(2, "a remark", severity="warning"))])
    client = await start_lsp("visual_studio_code")
    uri = open_doc(client, tmp_path, corpus_file(), name="settings.py")

    result = await review(client, uri)

    assert result["findings"] == 1 and result["redacted"] >= len(CORPUS)
    upstream = sent_upstream(server)
    assert len(server.log()) == len(REVIEW_POOL) and "REDACTED_SECRET_" in upstream
    leaked = [p.kind for p in CORPUS if any(s in upstream for s in p.secrets)]
    assert leaked == []
    await wait_for(lambda: [m for m in client.log_messages if "redacted" in m.message and "secrets" in m.message])


async def test_explain_finding_redacts_a_private_key_whose_markers_are_outside_the_excerpt(
    start_lsp, server: TestServer, tmp_path: Path
) -> None:
    body = [rand(64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(25)]
    source = "\n".join(
        ["import ssl", "", "KEY = '''-----BEGIN RSA PRIVATE KEY-----", *body, "-----END RSA PRIVATE KEY-----'''", ""]
    )
    middle = 3 + 13  # line 16: the BEGIN line (3) and END line (29) are both > 8 lines away
    for name in REVIEW_POOL:
        server.script(name, replies=[findings_reply(finding(middle, "a private key is committed to the repo"))])
    server.script("script/judge", replies=["Real: a private key must not live in source code."])
    client = await start_lsp("visual_studio_code", {**BASE_OPTIONS, "reviewJudge": "script/judge"})
    uri = open_doc(client, tmp_path, source, name="tls.py")
    await review(client, uri)
    diags = await wait_for(lambda: fusion_diagnostics(client, uri))

    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="fusion.explain", arguments=[uri, diags[0].data["id"]])
    )

    assert "private key must not live" in result["explanation"]
    judge = [e for e in server.log() if e["model"] == "script/judge"]
    assert len(judge) == 1
    prompt = judge[0]["messages"][-1]["content"]
    assert f"{middle}| REDACTED_SECRET_" in prompt  # the excerpt is there, redacted
    assert [line for line in body if line in sent_upstream(server)] == []


@pytest.fixture(scope="module")
def custom_key_server() -> Iterator[TestServer]:
    """A self-hosted endpoint that only accepts CUSTOM_KEY and echoes it back on request."""
    with run_test_server(key=CUSTOM_KEY) as server:
        yield server


async def test_a_custom_endpoint_key_echoed_back_never_reaches_the_editor(
    start_lsp, custom_key_server: TestServer, lsp_env: dict[str, str], tmp_path: Path
) -> None:
    custom_key_server.reset()
    custom_key_server.script("script/rev-a", replies=[findings_reply(finding(3, "Off-by-one in the loop bound"))])
    (tmp_path / "fusion.toml").write_text(
        f'[endpoints.lab]\nbase_url = "{custom_key_server.base_url}"\napi_key_env = "LAB_KEY"\n'
    )
    pool = ["lab:script/rev-a", "lab:mock/echo-key-event", "lab:mock/echo-key-usage"]
    client = await start_lsp(
        "visual_studio_code", {**BASE_OPTIONS, "reviewPool": pool}, env={**lsp_env, "LAB_KEY": CUSTOM_KEY}
    )
    uri = open_doc(client, tmp_path)

    result = await review(client, uri)

    # The non-JSON event fails at the wire; the usage echo is dropped at the boundary (a token
    # count that is not a number), so that model fails only for not answering with findings.
    assert result["failed"]["lab:mock/echo-key-event"] == "bad_response"
    logged = await wait_for(lambda: [m.message for m in client.log_messages if "models failed" in m.message])
    assert "not JSON" in logged[0]  # the echo was reported...
    seen = all_text_seen(client)
    assert CUSTOM_KEY not in seen and CUSTOM_KEY[:16] not in seen and CUSTOM_KEY[-16:] not in seen  # ...without it
