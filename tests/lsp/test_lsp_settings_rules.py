"""An editor setting, a fusion.toml key and a ``fusion run`` flag are refused by the same rule, in the same words."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest

from fusion_core.config import parse_config
from fusion_core.errors import ConfigError
from fusion_core.option_specs import SPECS_BY_NAME
from fusion_core.options import LOCAL_DEFAULT_POOL, REMOTE_DEFAULT_POOL, add_run_options
from fusion_lsp.settings import RULES, LspSettings, build_settings

KEY_ENV = {"OPENROUTER_API_KEY": "sk-or-v1-test"}


@pytest.mark.parametrize(
    ("setting", "option", "value", "reason"),
    [
        ("reviewTemperature", "temperature", 5, "must be a number from 0 to 2, not 5"),
        ("completionTemperature", "temperature", -1, "must be a number from 0 to 2, not -1"),
        ("reviewTimeoutS", "timeout", 0, "must be a number above 0, not 0"),
        ("completionMaxTokens", "max_tokens", 0, "must be a whole number of at least 1, not 0"),
        ("reviewQuorum", "quorum", 0, "must be a whole number of at least 1, not 0"),
        ("costCapUsd", "max_cost", -1, "must be a number of at least 0, not -1"),
    ],
)
def test_the_same_bad_value_gets_the_same_words_everywhere(
    setting: str, option: str, value: float, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = SPECS_BY_NAME[option]
    settings, problems = build_settings(parse_config(""), [{setting: value}], KEY_ENV)
    assert problems == [f"settings: {setting}: {reason}"]
    assert settings == build_settings(parse_config(""), [], KEY_ENV)[0]  # not applied

    table = f"{spec.key} = {value}"
    toml = table if spec.section == "top" else f'[pools.review]\nmodels = ["a/b"]\n{table}'
    with pytest.raises(ConfigError, match=re.escape(f"{spec.key} {reason}")):
        parse_config(toml)

    parser = argparse.ArgumentParser()
    add_run_options(parser)
    with pytest.raises(SystemExit):
        parser.parse_args([spec.flag, str(value)])
    assert f"{spec.flag}: {reason}" in capsys.readouterr().err


def test_every_setting_has_a_rule() -> None:
    assert set(RULES) == {f.name for f in dataclasses.fields(LspSettings)}


def test_lsp_only_settings_use_the_same_checks() -> None:
    _, problems = build_settings(
        parse_config(""),
        [{"debounceS": -0.5, "maxReviewBytes": 1.5, "preloadLocal": 1, "reviewPool": ["a/b", " "]}],
        {},
    )
    assert problems == [
        "settings: debounceS: must be a number of at least 0, not -0.5",
        "settings: maxReviewBytes: must be a whole number of at least 1, not float 1.5",
        "settings: preloadLocal: must be true or false, not int 1",
        "settings: reviewPool: has a bad entry ' ': it must not be empty",
    ]
    good, problems = build_settings(parse_config(""), [{"debounce_s": 0, "reviewPool": [" a/b "]}], {})
    assert problems == [] and good.debounce_s == 0.0 and good.review_pool == ("a/b",)


def test_pools_resolve_like_the_cli() -> None:
    # No [pools.review]: the built-in pool for the key (the analysers without one), never default_pool.
    config = parse_config('default_pool = "p"\n[pools.p]\nmodels = ["x/y"]\njudge = "x/j"\n')
    remote, _ = build_settings(config, [], KEY_ENV)
    assert remote.review_pool == REMOTE_DEFAULT_POOL.models and remote.review_judge == REMOTE_DEFAULT_POOL.judge
    local, _ = build_settings(config, [], {})
    assert local.review_pool != LOCAL_DEFAULT_POOL.models and local.review_judge is None
    named = parse_config(
        '[pools.review]\nmodels = ["r/m"]\ntemperature = 0.5\ntimeout = 9\n[pools.completion]\nmodels = ["c/m"]'
    )
    settings, _ = build_settings(named, [], KEY_ENV)
    assert settings.review_pool == ("r/m",) and settings.review_judge is None
    assert settings.review_temperature == 0.5 and settings.review_timeout_s == 9.0
    assert settings.completion_pool == ("c/m",)
