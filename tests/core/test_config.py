"""fusion.toml parsing: pools, endpoints, and errors that name the file and line."""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from fusion_core.config import PoolConfig, PoolOptions, load_config, parse_config
from fusion_core.errors import ConfigError
from fusion_core.option_specs import OPTION_SPECS, SPECS_BY_NAME, specs_in
from fusion_core.options import LOCAL_DEFAULT_POOL, RunOptions, add_run_options, resolve_settings

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


def _options(*argv: str) -> RunOptions:
    parser = argparse.ArgumentParser()
    add_run_options(parser)
    return RunOptions.from_namespace(parser.parse_args(list(argv)))


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


def test_bad_numbers_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _options("--pool", "a/b", "--judge", "c/d", "--rounds", "0")
    assert exit_info.value.code == 2
    assert "--rounds: must be a whole number from 1 to 6, not 0" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--rounds must be a whole number from 1 to 6, not 0"):
        RunOptions(pool="a/b", judge="c/d", rounds=0)


def test_the_option_table_is_the_run_options() -> None:
    names = {f.name for f in fields(RunOptions)}
    assert names == {spec.name for spec in OPTION_SPECS} | {"provider_options"}
    # Every pool key of fusion.toml is a run option, checked by the same spec.
    assert {spec.key for spec in specs_in("pool")} == set(PoolConfig.__dataclass_fields__) - {"name"}
    # ... and declared once: a pool and the flags share PoolOptions.
    assert issubclass(PoolConfig, PoolOptions) and issubclass(RunOptions, PoolOptions)
    assert {f.name for f in fields(PoolOptions)} == {spec.name for spec in specs_in("pool")} - {"models"}


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("temperature", 2.5, "must be a number from 0 to 2, not 2.5"),
        ("temperature", float("nan"), "must be a finite number, not nan"),
        ("timeout", 0, "must be a number above 0, not 0"),
        ("timeout", float("inf"), "must be a finite number, not inf"),
        ("max_tokens", True, "must be a whole number of at least 1, not bool True"),
        ("max_cost", -0.01, "must be a number of at least 0, not -0.01"),
        ("judge", " ", "must not be empty"),
        ("system", "bad \udcff byte", "must be UTF-8 text"),
        ("mode", "vote", "must be one of best-of, merge, debate, not 'vote'"),
    ],
)
def test_one_rule_for_python_flags_and_config(name: str, value: object, reason: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(reason)):
        RunOptions(**{name: value})  # type: ignore[arg-type]
    spec = SPECS_BY_NAME[name]
    # TOML itself cannot hold a lone surrogate; every other value goes through the same spec there.
    if spec.section is not None and isinstance(value, float | int | str) and str(value).isascii():
        table = f"{spec.key} = {json.dumps(value) if isinstance(value, str) else _toml_number(value)}"
        text = table + "\n" if spec.section == "top" else f'[pools.p]\nmodels = ["a/b"]\n{table}\n'
        with pytest.raises(ConfigError, match=re.escape(reason)):
            parse_config(text)


def _toml_number(value: float | int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value != value:
        return "nan"
    return "inf" if value == float("inf") else repr(value)


def test_run_options_resolve_like_flags() -> None:
    config = parse_config('cost_cap_usd = 0.5\nmax_concurrency = 3\n[pools.p]\nmodels = ["a/b", "c/d"]\n')
    resolved = resolve_settings(RunOptions(pool="@p", judge="e/f", provider_options=(("top_p", 0.9),)), config, {})
    settings = resolved.settings
    assert settings.max_cost_usd == 0.5 and settings.max_concurrency == 3
    assert settings.provider_options == {"top_p": 0.9}
    assert resolve_settings(RunOptions(pool="@p", judge="e/f", max_cost=2.0), config, {}).settings.max_cost_usd == 2.0
    solo = resolve_settings(RunOptions(models=("a/b",)), config, {}).settings
    assert solo.judge == "" and solo.pool == ("a/b",)


def test_key_selects_the_remote_default_unless_local_only() -> None:
    from fusion_core.options import REMOTE_DEFAULT_POOL

    env = {"OPENROUTER_API_KEY": "sk-or-v1-test"}
    assert resolve_settings(_options(), parse_config(""), env).settings.pool == REMOTE_DEFAULT_POOL.models
    local = resolve_settings(_options("--local-only"), parse_config(""), env)
    assert local.settings.pool == LOCAL_DEFAULT_POOL.models and local.local_only


def test_resolve_pool_is_the_one_lookup_of_a_named_pool() -> None:
    from fusion_core.options import REMOTE_DEFAULT_POOL, is_builtin, resolve_pool

    key = {"OPENROUTER_API_KEY": "sk-or-v1-test"}
    config = parse_config('[pools.a]\nmodels = ["a/b"]\n[pools.b]\nmodels = ["c/d"]\n')
    assert resolve_pool("b", config, {}).models == ("c/d",)
    assert resolve_pool(None, config, key) is REMOTE_DEFAULT_POOL  # pools but no default_pool
    assert resolve_pool(None, config, {}) is LOCAL_DEFAULT_POOL  # no key
    assert resolve_pool(None, config, key, local_only=True) is LOCAL_DEFAULT_POOL
    assert resolve_pool(None, parse_config('local_only = true\n[pools.a]\nmodels = ["a/b"]'), key) is LOCAL_DEFAULT_POOL
    with_default = parse_config('default_pool = "b"\n[pools.b]\nmodels = ["c/d"]\n')
    assert resolve_pool(None, with_default, key).models == ("c/d",)
    with pytest.raises(ConfigError, match="unknown pool @nope") as info:
        resolve_pool("nope", config, key)
    assert "@a, @b" in (info.value.hint or "")
    # The language server's optional pools fall back to the built-in pool, never to default_pool.
    assert resolve_pool("review", with_default, key, builtin_fallback=True) is REMOTE_DEFAULT_POOL
    assert is_builtin(resolve_pool("review", with_default, {}, builtin_fallback=True))
    assert not is_builtin(resolve_pool("b", with_default, {}, builtin_fallback=True))
    # The flags resolve through it: --pool @b, and no pool at all.
    assert resolve_settings(RunOptions(pool="@b", judge="e/f"), with_default, key).settings.pool == ("c/d",)
    assert resolve_settings(RunOptions(), with_default, key).settings.pool == ("c/d",)


def test_one_table_of_modes_and_one_concurrency_default() -> None:
    from fusion_core.modes import MODES
    from fusion_core.pool import DEFAULT_MAX_CONCURRENCY

    assert SPECS_BY_NAME["mode"].choices == tuple(MODES)
    assert parse_config("").concurrency == DEFAULT_MAX_CONCURRENCY
    assert parse_config("max_concurrency = 2").concurrency == 2
    assert resolve_settings(RunOptions(models=("a/b",)), parse_config(""), {}).settings.max_concurrency == (
        DEFAULT_MAX_CONCURRENCY
    )


def test_run_options_merge_over_defaults_and_print_as_flags() -> None:
    assert RunOptions(swap=False, local_only=False).flags() == []  # a flag cannot say False: it is left out
    defaults = RunOptions(mode="debate", models=("a/b", "c/d"), provider_options=(("top_p", 0.9),), swap=True)
    merged = RunOptions(mode="merge", timeout=5).over(defaults)
    assert merged == RunOptions(
        mode="merge", timeout=5.0, models=("a/b", "c/d"), provider_options=(("top_p", 0.9),), swap=True
    )
    flags = merged.flags()
    assert flags == [
        *("--model", "a/b", "--model", "c/d", "--mode", "merge", "--swap", "--timeout", "5.0"),
        *("--option", "top_p", "0.9"),
    ]
    parser = argparse.ArgumentParser()
    add_run_options(parser)
    assert RunOptions.from_namespace(parser.parse_args(flags)) == merged  # the flags read back as they were
