"""Issue #9, the CLI as an ``llm`` user expects it, through the real ``fusion`` and the loopback server."""

from __future__ import annotations

import json
from pathlib import Path

from fusion_core import __version__
from fusion_core.testing.server import TestServer
from tests.core.cli_run import fusion


def models_called(server: TestServer) -> list[str]:
    return [entry["model"] for entry in server.log()]


def test_a_bare_prompt_means_run(server: TestServer, remote_env: dict[str, str], tmp_path: Path) -> None:
    bare = fusion(remote_env, "Why is the sky blue?", "-m", "mock/alpha", "--json", cwd=tmp_path)
    assert bare.returncode == 0, bare.stderr
    assert json.loads(bare.stdout)["candidates"][0]["model"] == "mock/alpha"
    # Flags first, and the global --config before it, work too.
    (tmp_path / "other.toml").write_text('[pools.solo]\nmodels = ["mock/beta"]\n')
    config_first = fusion(remote_env, "--config", "other.toml", "--pool", "@solo", "q", cwd=tmp_path)
    assert config_first.returncode == 0, config_first.stderr
    assert models_called(server) == ["mock/alpha", "mock/beta"]
    # Command names keep their meaning.
    assert "Configured pools" in fusion(remote_env, "--config", "other.toml", "pools", cwd=tmp_path).stdout


def test_piped_stdin_comes_first_then_the_instruction(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path
) -> None:
    code = "def add(a, b):\n    return a - b\n"
    run = fusion(remote_env, "run", "review this", "-m", "mock/alpha", cwd=tmp_path, stdin=code)
    assert run.returncode == 0, run.stderr
    sent = server.log()[0]["messages"][-1]["content"]
    assert sent == "def add(a, b):\n    return a - b\n\nreview this"
    # `-` still reads the whole prompt from stdin, and a bare pipe is the prompt.
    server.reset()
    assert fusion(remote_env, "run", "-", "-m", "mock/alpha", cwd=tmp_path, stdin="from stdin").returncode == 0
    assert fusion(remote_env, "-m", "mock/alpha", cwd=tmp_path, stdin="piped alone").returncode == 0
    assert [r["messages"][-1]["content"] for r in server.log()] == ["from stdin", "piped alone"]
    # No pipe and no prompt is a usage error, not a hang.
    empty = fusion(remote_env, "run", "-m", "mock/alpha", cwd=tmp_path)
    assert empty.returncode == 2 and "the prompt is empty" in empty.stderr


def test_one_model_runs_alone_without_a_judge(server: TestServer, remote_env: dict[str, str], tmp_path: Path) -> None:
    server.script("script/solo", default="the one answer")
    text = fusion(remote_env, "run", "q", "-m", "script/solo", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert text.stdout.strip() == "the one answer"
    assert "no judge" in text.stderr
    data = json.loads(fusion(remote_env, "run", "q", "-m", "script/solo", "--json", cwd=tmp_path).stdout)
    assert data["status"] == "ok" and data["judge"] is None and data["answer"] == "the one answer"
    assert models_called(server) == ["script/solo", "script/solo"]


def test_m_is_a_repeatable_pool_shortcut(server: TestServer, remote_env: dict[str, str], tmp_path: Path) -> None:
    run = fusion(remote_env, "q", "-m", "mock/alpha", "--model", "mock/beta", "--judge", "mock/judge", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert sorted(models_called(server)) == ["mock/alpha", "mock/beta", "mock/judge"]
    # Samples of one model are several candidates, so they are judged.
    server.reset()
    samples = fusion(remote_env, "q", "-m", "mock/alpha*2", "--judge", "mock/judge", "--json", cwd=tmp_path)
    assert samples.returncode == 0, samples.stderr
    assert len(json.loads(samples.stdout)["candidates"]) == 2
    both = fusion(remote_env, "q", "-m", "mock/alpha", "--pool", "mock/beta", cwd=tmp_path)
    assert both.returncode == 2 and "--pool and -m" in both.stderr


def test_version(tmp_path: Path, remote_env: dict[str, str]) -> None:
    run = fusion(remote_env, "--version", cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.strip() == f"fusion {__version__}"


def test_o_passes_provider_options_through(server: TestServer, remote_env: dict[str, str], tmp_path: Path) -> None:
    run = fusion(
        remote_env,
        *("q", "-m", "mock/alpha", "-o", "top_p", "0.9", "-o", "seed", "42"),
        *("--option", "reasoning", '{"effort": "high"}', "-o", "provider", "fast"),
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert server.log()[0]["params"] == {
        "stream_options": {"include_usage": True},
        "usage": {"include": True},
        "top_p": 0.9,
        "reasoning": {"effort": "high"},
        "provider": "fast",
    }
    assert server.log()[0]["seed"] == 42
    server.reset()
    own = fusion(remote_env, "q", "-m", "mock/alpha", "-o", "max_tokens", "5", cwd=tmp_path)
    assert own.returncode == 2 and "max_tokens is set by Fusion itself; use --max-tokens" in own.stderr
    assert server.log() == []


def test_pools_without_a_default_say_which_pool_ran(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "fusion.toml").write_text('[pools.mine]\nmodels = ["mock/alpha", "mock/beta"]\n')
    run = fusion(remote_env, "q", cwd=tmp_path)
    # The built-in pool is OpenRouter's, which the test server does not list: refused before any call.
    assert run.returncode == 2 and server.log() == []
    assert run.stderr.count("no default_pool is set") == 1
    assert 'default_pool = "mine"' in run.stderr and "--pool @mine" in run.stderr
    (tmp_path / "fusion.toml").write_text(
        'default_pool = "mine"\n[pools.mine]\nmodels = ["mock/alpha", "mock/beta"]\njudge = "mock/judge"\n'
    )
    chosen = fusion(remote_env, "q", cwd=tmp_path)
    assert chosen.returncode == 0, chosen.stderr
    assert "default_pool" not in chosen.stderr
    assert sorted(models_called(server)) == ["mock/alpha", "mock/beta", "mock/judge"]


def test_an_unlisted_model_gets_did_you_mean_before_any_call(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path
) -> None:
    run = fusion(remote_env, "q", "-m", "mock/alpha", "-m", "mock/gama", "--judge", "mock/judge", cwd=tmp_path)
    assert run.returncode == 2 and server.log() == []
    assert "unknown model: mock/gama (not listed by openrouter)" in run.stderr
    assert "Did you mean `mock/gamma`?" in run.stderr
    judge = fusion(remote_env, "q", "-m", "mock/alpha", "-m", "mock/beta", "--judge", "mock/juge", cwd=tmp_path)
    assert judge.returncode == 2 and "Did you mean `mock/judge`?" in judge.stderr
    assert server.log() == []


def test_non_tty_output_is_not_wrapped_and_names_a_model_once(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path
) -> None:
    run = fusion(
        remote_env, "q", "-m", "mock/alpha", "-m", "mock/no-credits-402", "--judge", "mock/judge", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if "no-credits-402" in line and "failed" in line]
    # One progress line and one summary line, each whole (the message is longer than 80 columns).
    assert len(lines) == 2 and all(len(line) > 80 for line in lines), run.stderr
    assert all(line.count("mock/no-credits-402") == 1 for line in lines), lines
