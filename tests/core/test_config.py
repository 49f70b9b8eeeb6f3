"""fusion.toml parsing: pools, endpoints, and errors that name the file and line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from fusion_core.config import load_config, parse_config
from fusion_core.errors import ConfigError
from fusion_core.options import LOCAL_DEFAULT_POOL, add_run_options, resolve_settings

GOOD = """
local_only = false

[endpoints.vllm]
base_url = "http://127.0.0.1:8000/v1"

[pools.review]
models = ["anthropic/claude-3.7-sonnet", "vllm:qwen"]
judge = "openai/gpt-4o"
mode = "debate"
rounds = 3
"""


def _options(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_options(parser)
    return parser.parse_args(list(argv))


def test_pools_and_endpoints_load() -> None:
    config = parse_config(GOOD)
    pool = config.pool("review")
    assert pool.models == ("anthropic/claude-3.7-sonnet", "vllm:qwen")
    assert pool.mode == "debate" and pool.rounds == 3
    assert config.endpoints["vllm"].base_url.endswith("/v1")


def test_unknown_key_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "fusion.toml"
    path.write_text('[pools.review]\nmodels = ["a/b"]\njudeg = "x/y"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}:3" in info.value.message
    assert "judge" in info.value.hint


def test_bad_toml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "fusion.toml"
    path.write_text('[pools.review]\nmodels = ["a/b"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in info.value.message and "line" in info.value.message


def test_bad_mode_is_reported() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config('[pools.x]\nmodels = ["a/b"]\nmode = "vote"\n')
    assert "<config>:3" in info.value.message and "best-of" in info.value.hint


def test_unknown_pool_lists_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(GOOD).pool("nope")
    assert "@review" in info.value.hint


def test_flags_override_pool_settings() -> None:
    resolved = resolve_settings(_options("--pool", "@review", "--mode", "merge"), parse_config(GOOD), {})
    assert resolved.settings.mode == "merge"
    assert resolved.settings.rounds == 3
    assert resolved.settings.judge == "openai/gpt-4o"


def test_no_key_and_no_pool_runs_locally() -> None:
    resolved = resolve_settings(_options(), parse_config(""), {})
    assert resolved.settings.pool == LOCAL_DEFAULT_POOL.models
    assert resolved.settings.judge == "exec+likelihood:local/gemma-3-270m"
    assert resolved.notice and "locally" in resolved.notice


def test_comma_pool_from_flag() -> None:
    resolved = resolve_settings(_options("--pool", "a/b, c/d", "--judge", "e/f"), parse_config(""), {})
    assert resolved.settings.pool == ("a/b", "c/d")


def test_bad_numbers_are_usage_errors() -> None:
    with pytest.raises(ConfigError):
        resolve_settings(_options("--pool", "a/b", "--judge", "c/d", "--rounds", "0"), parse_config(""), {})


def test_key_selects_the_remote_default_unless_local_only() -> None:
    from fusion_core.options import REMOTE_DEFAULT_POOL

    env = {"OPENROUTER_API_KEY": "sk-or-v1-test"}
    assert resolve_settings(_options(), parse_config(""), env).settings.pool == REMOTE_DEFAULT_POOL.models
    local = resolve_settings(_options("--local-only"), parse_config(""), env)
    assert local.settings.pool == LOCAL_DEFAULT_POOL.models and local.local_only
