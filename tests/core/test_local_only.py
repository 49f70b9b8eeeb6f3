"""--local-only provably opens no socket: an audit hook watches every socket.connect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

# Runs the CLI in a fresh interpreter with an audit hook installed first, so even a
# connection attempted during import would be seen. The hook records; it does not block.
WATCHED_CLI = textwrap.dedent(
    """
    import json, sys
    connects = []
    def hook(event, args):
        if event in ("socket.connect", "socket.getaddrinfo"):
            connects.append([event, repr(args[1] if len(args) > 1 else args)])
    sys.addaudithook(hook)
    from fusion_cli.main import main
    code = main(sys.argv[1:])
    print("CONNECTS=" + json.dumps(connects), file=sys.stderr)
    sys.exit(code)
    """
)


def run_watched(*args: str, extra_env: dict[str, str] | None = None) -> tuple[int, str, str, list[list[str]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENROUTER_")}
    env.update(extra_env or {})
    run = subprocess.run(
        [sys.executable, "-c", WATCHED_CLI, *args], env=env, capture_output=True, text=True, timeout=600
    )
    marker = next(line for line in run.stderr.splitlines() if line.startswith("CONNECTS="))
    return run.returncode, run.stdout, run.stderr, json.loads(marker.removeprefix("CONNECTS="))


def test_remote_models_refused_before_any_socket() -> None:
    code, _, stderr, connects = run_watched(
        "run",
        "q",
        "--local-only",
        "--pool",
        "openai/gpt-4o,local/gemma-3-270m",
        "--judge",
        "anthropic/claude-3.7-sonnet",
        extra_env={"OPENROUTER_API_KEY": "sk-or-v1-" + "0" * 64},
    )
    assert code == 2
    assert "openai/gpt-4o" in stderr and "anthropic/claude-3.7-sonnet" in stderr
    assert connects == []


@pytest.mark.local
def test_local_only_run_opens_no_socket() -> None:
    code, stdout, stderr, connects = run_watched("run", "def fib(n):", "--local-only", "--max-tokens", "24")
    assert code == 0, stderr
    assert stdout.strip()
    assert connects == []


BLOCKED_CONNECT = textwrap.dedent(
    """
    import socket, sys
    from fusion_core.egress import forbid_network
    from fusion_core.errors import EgressBlocked
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    socket.create_connection(("127.0.0.1", port)).close()  # allowed before
    forbid_network()
    for attempt in (lambda: socket.create_connection(("127.0.0.1", port)),
                    lambda: socket.getaddrinfo("example.org", 443)):
        try:
            attempt()
        except EgressBlocked as exc:
            print("blocked:", exc.message)
        else:
            print("CONNECTED")
    left, right = socket.socketpair(socket.AF_UNIX)  # local pipes still work
    print("unix ok")
    """
)


def test_after_forbid_network_no_connection_or_lookup_is_possible() -> None:
    run = subprocess.run([sys.executable, "-c", BLOCKED_CONNECT], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "CONNECTED" not in run.stdout
    assert [line.split(":")[0] for line in lines] == ["blocked", "blocked", "unix ok"], lines
