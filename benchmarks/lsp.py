"""Benchmark the language server against the loopback OpenRouter-compatible test server.

Run from the repository root::

    python benchmarks/lsp.py [--reps 20] [--latency-ms 300] [--json results.json]

(a) overhead on a completion request: the time ``textDocument/completion`` takes
    through the real ``fusion-lsp`` process ÷ the backend's own time for the same
    request (``mock/lat-<ms>`` streamed through ``fusion_core``'s HTTP backend),
    with the debounce off and at its default;
(b) ``$/cancelRequest`` → the test server seeing the upstream connection close,
    for a completion and for a review;
(c) time to answer ``initialize``: from spawning the process, and from sending
    the request;
(d) with ``--local``: the defaults a first user has (no key, no fusion.toml, no
    settings, the embedded Gemma 3 270M warm), the time each ``textDocument/completion``
    takes and how many come back non-empty, p50/p95 over repeated requests at
    different places in a few files. ``--local-only`` runs just this part.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    import fusion_lsp  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from fusion_core.backends.base import ChatRequest, Message, complete
from fusion_core.engine import Fusion
from fusion_core.testing.server import TestServer, run_test_server
from fusion_lsp.settings import DEFAULT_DEBOUNCE_S

KEY = "sk-or-v1-benchmark-" + "0" * 40
DEFAULT_REPS = 20
DEFAULT_LATENCY_MS = 300
CODE = "def add(a, b):\n    return \n"
CURSOR = types.Position(line=1, character=11)
# Where a first user asks for a completion: the code before the cursor (the cursor is at its end).
LOCAL_SNIPPETS = [
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return ",
    "import os\n\n\ndef list_python_files(root):\n    return [name for name in os.listdir(root) if ",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        ",
    "def mean(values):\n    total = sum(values)\n    return ",
    "with open(path) as handle:\n    for line in handle:\n        ",
]
LOAD_TIMEOUT_S = 300.0


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "p90": percentile(ordered, 0.9),
        "p95": percentile(ordered, 0.95),
        "min": ordered[0],
        "max": ordered[-1],
    }


async def start(
    env: dict[str, str], root: Path, options: dict[str, Any], settle_s: float = 0.0
) -> tuple[LanguageClient, float, float]:
    """A client on a fresh server; returns (client, s from spawn to initialize answer, s for the request).

    With ``settle_s`` the request is sent only that long after the spawn, so the
    second figure is the answer time of an already started process.
    """
    spawned = time.perf_counter()
    client = await ClientServerConfig(server_command=[sys.executable, "-m", "fusion_lsp"], server_env=env).start()
    assert isinstance(client, LanguageClient)
    await asyncio.sleep(settle_s)
    sent = time.perf_counter()
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual_studio_code"),
            root_uri=root.as_uri(),
            initialization_options=options,
        )
    )
    answered = time.perf_counter()
    return client, answered - spawned, answered - sent


async def stop(client: LanguageClient) -> None:
    await client.shutdown_session()
    await client.stop()


def open_doc(client: LanguageClient, root: Path, text: str = CODE, name: str = "bench.py") -> str:
    uri = (root / name).as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
        )
    )
    return uri


async def backend_time(env: dict[str, str], model: str, reps: int) -> list[float]:
    """The HTTP backend's own time for one streamed request (what the server waits for)."""
    fusion = Fusion(env=env)
    backend, model_id = fusion.resolver.resolve(model)
    request = ChatRequest(model=model_id, messages=(Message("user", "def add(a, b):\n    return "),), max_tokens=64)
    times = []
    try:
        await complete(backend, request)  # warm the connection pool, as the server's would be
        for _ in range(reps):
            started = time.perf_counter()
            await complete(backend, request)
            times.append(time.perf_counter() - started)
    finally:
        await fusion.aclose()
    return times


async def completion_times(env: dict[str, str], root: Path, model: str, reps: int, debounce: float) -> list[float]:
    options = {
        "completionPool": [model],
        "completionDeadlineS": 30.0,
        "debounceS": debounce,
        "preloadLocal": False,
        "reviewPool": [model],
    }
    client, _, _ = await start(env, root, options)
    uri = open_doc(client, root)
    params = types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=CURSOR)
    times = []
    try:
        await client.text_document_completion_async(params)  # warm-up: imports, first connection
        for _ in range(reps):
            started = time.perf_counter()
            result = await client.text_document_completion_async(params)
            times.append(time.perf_counter() - started)
            assert result.items, "the completion came back empty"
    finally:
        await stop(client)
    return times


async def cancel_to_close(env: dict[str, str], root: Path, server: TestServer, reps: int, kind: str) -> list[float]:
    """Seconds from sending $/cancelRequest to the test server seeing the connection close."""
    server.script("script/bench-slow", replies=['{"findings": []}'], latency_s=60)
    options = {
        "completionPool": ["script/bench-slow"],
        "reviewPool": ["script/bench-slow"],
        "completionDeadlineS": 120.0,
        "debounceS": 0.0,
        "preloadLocal": False,
    }
    client, _, _ = await start(env, root, options)
    uri = open_doc(client, root)
    delays = []
    try:
        for rep in range(reps):
            server.reset()
            server.script("script/bench-slow", replies=['{"findings": []}'], latency_s=60)
            msg_id = f"{kind}-{rep}"
            if kind == "completion":
                client.protocol.send_request(
                    types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=CURSOR),
                    msg_id=msg_id,
                )
            else:
                client.protocol.send_request(
                    types.WORKSPACE_EXECUTE_COMMAND,
                    types.ExecuteCommandParams(command="fusion.review", arguments=[uri]),
                    msg_id=msg_id,
                )
            while not server.log():
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.05)  # the request is streaming (keep-alives) when it is cancelled
            cancelled_at = time.time()
            client.cancel_request(types.CancelParams(id=msg_id))
            while not (entry := server.log()[0])["disconnected"]:
                await asyncio.sleep(0.002)
            delays.append(entry["t_disconnect"] - cancelled_at)
    finally:
        await stop(client)
    return delays


async def local_completion(reps: int) -> dict[str, Any]:
    """A first user's completions: no key, no fusion.toml, no settings; the embedded model, warm."""
    import os

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "FUSION_"))}
        env["HOME"] = tmp
        env.setdefault("XDG_CACHE_HOME", str(Path("~/.cache").expanduser()))
        client, _, _ = await start(env, root, {})
        try:
            loaded = time.perf_counter()
            while not any("loaded local/" in m.message for m in client.log_messages):
                if time.perf_counter() - loaded > LOAD_TIMEOUT_S:
                    raise RuntimeError(f"the model did not load: {[m.message for m in client.log_messages]}")
                await asyncio.sleep(0.1)
            load_s = time.perf_counter() - loaded
            uris = [open_doc(client, root, text, f"snippet{i}.py") for i, text in enumerate(LOCAL_SNIPPETS)]
            times: list[float] = []
            nonempty: list[float] = []
            for rep in range(reps + 1):
                index = rep % len(LOCAL_SNIPPETS)
                lines = LOCAL_SNIPPETS[index].split("\n")
                position = types.Position(line=len(lines) - 1, character=len(lines[-1]))
                params = types.CompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uris[index]), position=position
                )
                started = time.perf_counter()
                result = await client.text_document_completion_async(params)
                elapsed = time.perf_counter() - started
                if rep == 0:
                    continue  # warm-up: the first prompt's prefill
                times.append(elapsed)
                if result.items:
                    nonempty.append(elapsed)
        finally:
            await stop(client)
    with open("/proc/loadavg") as loadavg:
        load = loadavg.read().split()[0]
    return {
        "completion_s": summary(times),
        "nonempty_s": summary(nonempty) if nonempty else None,
        "nonempty": len(nonempty),
        "requests": len(times),
        "model_ready_after_initialize_s": load_s,
        "load_average_1min_after": float(load),
        "cpus": os.cpu_count(),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if args.local or args.local_only:
        results["local"] = await local_completion(args.local_reps)
        if args.local_only:
            return results
    model = f"mock/lat-{args.latency_ms}"
    with run_test_server(key=KEY) as server, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENROUTER_")}
        env.update(OPENROUTER_API_KEY=KEY, OPENROUTER_BASE_URL=server.base_url, HOME=tmp)

        cold, warm = [], []
        for _ in range(args.init_reps):
            client, from_spawn, _ = await start(env, root, {"preloadLocal": False})
            await stop(client)
            cold.append(from_spawn)
            client, _, request = await start(env, root, {"preloadLocal": False}, settle_s=2.0)
            await stop(client)
            warm.append(request)
        results["initialize_from_spawn_s"] = summary(cold)
        results["initialize_request_s"] = summary(warm)

        backend = await backend_time(env, model, args.reps)
        results["backend_s"] = summary(backend)
        for label, debounce in (("no_debounce", 0.0), ("default_debounce", DEFAULT_DEBOUNCE_S)):
            lsp = await completion_times(env, root, model, args.reps, debounce)
            results[f"completion_{label}_s"] = summary(lsp)
            results[f"overhead_ratio_{label}"] = statistics.median(lsp) / statistics.median(backend)

        for kind in ("completion", "review"):
            results[f"cancel_to_close_{kind}_s"] = summary(
                await cancel_to_close(env, root, server, args.cancel_reps, kind)
            )
    results["params"] = {
        "model": model,
        "reps": args.reps,
        "cancel_reps": args.cancel_reps,
        "default_debounce_s": DEFAULT_DEBOUNCE_S,
    }
    return results


def report_local(local: dict[str, Any]) -> list[str]:
    def line(s: dict[str, float]) -> str:
        return f"p50 {s['median'] * 1000:7.1f} ms   p95 {s['p95'] * 1000:7.1f} ms   max {s['max'] * 1000:7.1f} ms"

    lines = [
        f"fusion-lsp, no key, no fusion.toml, embedded model warm ({local['cpus']} CPUs, "
        f"1-min load average {local['load_average_1min_after']:.1f} after the run)",
        f"  model ready, after initialize  {local['model_ready_after_initialize_s']:.2f} s",
        f"  completion, every request      {line(local['completion_s'])}",
        f"  non-empty items                {local['nonempty']} of {local['requests']}",
    ]
    if local["nonempty_s"]:
        lines.append(f"  completion, non-empty ones     {line(local['nonempty_s'])}")
    return lines


def report(results: dict[str, Any]) -> str:
    def ms(key: str) -> str:
        s = results[key]
        return f"median {s['median'] * 1000:7.1f} ms   p90 {s['p90'] * 1000:7.1f} ms   max {s['max'] * 1000:7.1f} ms"

    local = report_local(results["local"]) if "local" in results else []
    if "params" not in results:
        return "\n".join(local)
    p = results["params"]
    return "\n".join(
        local
        + [
            f"fusion-lsp benchmark ({p['model']}, {p['reps']} completion requests, {p['cancel_reps']} cancellations)",
            f"  initialize, from spawn          {ms('initialize_from_spawn_s')}",
            f"  initialize, started process     {ms('initialize_request_s')}",
            f"  backend alone (HTTP stream)     {ms('backend_s')}",
            f"  completion via LSP, debounce 0  {ms('completion_no_debounce_s')}",
            f"  completion via LSP, debounce {p['default_debounce_s'] * 1000:.0f} ms "
            f"{ms('completion_default_debounce_s')}",
            f"  overhead ratio (LSP ÷ backend)  {results['overhead_ratio_no_debounce']:.3f} without debounce, "
            f"{results['overhead_ratio_default_debounce']:.3f} with the default debounce",
            f"  $/cancelRequest → upstream closed, completion  {ms('cancel_to_close_completion_s')}",
            f"  $/cancelRequest → upstream closed, review      {ms('cancel_to_close_review_s')}",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=DEFAULT_REPS, help="completion requests per setting")
    parser.add_argument("--cancel-reps", type=int, default=10, help="cancellations per kind")
    parser.add_argument("--init-reps", type=int, default=5, help="server starts")
    parser.add_argument("--latency-ms", type=int, default=DEFAULT_LATENCY_MS, help="the mock model's latency")
    parser.add_argument("--local", action="store_true", help="also time completion with the embedded model")
    parser.add_argument("--local-only", action="store_true", help="only time completion with the embedded model")
    parser.add_argument("--local-reps", type=int, default=DEFAULT_REPS, help="local completion requests")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
