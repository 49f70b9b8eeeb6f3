"""The language server's settings: fusion.toml, then initializationOptions, then the editor's settings.

``fusion.toml`` in the workspace root supplies the pools named ``review`` and
``completion`` (models, judge, timeout, max_tokens, quorum, temperature),
``local_only``, ``cost_cap_usd`` and an ``[lsp]`` table with any of the keys
below. ``initializationOptions`` and ``workspace/didChangeConfiguration``
override them, as a flat object (optionally under a ``fusion`` key); keys may
be snake_case or camelCase (``reviewOnSave``)::

    {"fusion": {"reviewPool": ["anthropic/claude-sonnet-4", "openai/gpt-4o"],
                "reviewOnSave": false, "costCapUsd": 0.05}}
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fusion_core.analysers import DEFAULT_ANALYSER_POOL
from fusion_core.completion import DEFAULT_COMPLETION_MAX_TOKENS, DEFAULT_DEADLINE_S
from fusion_core.config import Config, PoolConfig
from fusion_core.options import EMBEDDED_MODEL, LOCAL_DEFAULT_POOL, default_pool
from fusion_core.review import DEFAULT_REVIEW_MAX_TOKENS, DEFAULT_REVIEW_TIMEOUT_S

REVIEW_POOL_NAME = "review"
COMPLETION_POOL_NAME = "completion"
DEFAULT_DEBOUNCE_S = 0.05
# Reviews of bigger files are refused with a hint to review a selection.
DEFAULT_MAX_REVIEW_BYTES = 512_000
DEFAULT_COMPLETION_POOL = (EMBEDDED_MODEL,)
OPTIONS_SECTION = "fusion"

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@dataclass(frozen=True)
class LspSettings:
    """Everything the server needs to know to review and complete."""

    review_pool: tuple[str, ...] = DEFAULT_ANALYSER_POOL
    review_judge: str | None = None
    review_timeout_s: float = DEFAULT_REVIEW_TIMEOUT_S
    review_max_tokens: int = DEFAULT_REVIEW_MAX_TOKENS
    review_quorum: int | None = None
    review_temperature: float | None = None
    review_on_save: bool = False
    completion_enabled: bool = True
    completion_pool: tuple[str, ...] = DEFAULT_COMPLETION_POOL
    completion_judge: str | None = None
    completion_deadline_s: float = DEFAULT_DEADLINE_S
    completion_quorum: int | None = None
    completion_max_tokens: int = DEFAULT_COMPLETION_MAX_TOKENS
    completion_temperature: float | None = None
    debounce_s: float = DEFAULT_DEBOUNCE_S
    local_only: bool = False
    cost_cap_usd: float | None = None
    max_review_bytes: int = DEFAULT_MAX_REVIEW_BYTES
    preload_local: bool = True
    # Log the server's fusion runs to the run log (fusion_core.runlog); off: editors run often.
    run_log: bool = False


_KINDS: dict[str, tuple[type, ...]] = {}
for _field in dataclasses.fields(LspSettings):
    _type = str(_field.type)
    _KINDS[_field.name] = (
        (tuple,)
        if _type.startswith("tuple")
        else (bool,)
        if _type == "bool"
        else (int,)
        if _type.startswith("int")
        else (float, int)
        if _type.startswith("float")
        else (str,)
    )
_OPTIONAL = {f.name for f in dataclasses.fields(LspSettings) if "None" in str(f.type)}
_NON_NEGATIVE = {"review_timeout_s", "completion_deadline_s", "debounce_s", "cost_cap_usd"}
_POSITIVE = {"review_max_tokens", "completion_max_tokens", "max_review_bytes", "review_quorum", "completion_quorum"}


def build_settings(config: Config, overrides: Sequence[Any], env: Mapping[str, str]) -> tuple[LspSettings, list[str]]:
    """Settings from ``config`` and then each override object in turn; also returns problems found."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    local_only = config.local_only
    builtin = default_pool(env, local_only)
    # With no key the analysers review, offline and in seconds, rather than a base model.
    values["review_pool"] = builtin.models if builtin is not LOCAL_DEFAULT_POOL else DEFAULT_ANALYSER_POOL
    if builtin is not LOCAL_DEFAULT_POOL:
        values["review_judge"] = builtin.judge
    _from_pool(values, config.pools.get(REVIEW_POOL_NAME), "review")
    _from_pool(values, config.pools.get(COMPLETION_POOL_NAME), "completion")
    values["local_only"] = local_only
    if config.cost_cap_usd is not None:
        values["cost_cap_usd"] = config.cost_cap_usd
    lsp_table = config.extra.get("lsp")
    for source, data in [("[lsp] in fusion.toml", lsp_table), *[("settings", o) for o in overrides]]:
        _apply(values, data, source, problems)
    return LspSettings(**values), problems


def local_threads(cpu_count: int | None) -> int:
    """llama.cpp threads for the server's local models when ``[local] n_threads`` is unset: half the cores.

    The server shares the machine with the editor and everything else, and llama.cpp's threads
    spin-wait for each other: on 2 busy cores (load 12) two threads generated 1-3 tokens/s and
    one thread 9-23, so completions missed every deadline.
    """
    return max(1, (cpu_count or 1) // 2)


def server_config(config: Config) -> Config:
    """``config`` with the server's defaults for what it leaves unset (llama.cpp threads)."""
    if config.local.n_threads is not None:
        return config
    local = dataclasses.replace(config.local, n_threads=local_threads(os.cpu_count()))
    return dataclasses.replace(config, local=local)


def _from_pool(values: dict[str, Any], pool: PoolConfig | None, prefix: str) -> None:
    if pool is None:
        return
    values[f"{prefix}_pool"] = pool.models
    values[f"{prefix}_judge"] = pool.judge
    if pool.max_tokens is not None:
        values[f"{prefix}_max_tokens"] = pool.max_tokens
    if pool.quorum is not None:
        values[f"{prefix}_quorum"] = pool.quorum
    if pool.temperature is not None:
        values[f"{prefix}_temperature"] = pool.temperature
    if pool.timeout is not None and prefix == "review":
        values["review_timeout_s"] = pool.timeout


def _apply(values: dict[str, Any], data: Any, source: str, problems: list[str]) -> None:
    if data is None:
        return
    if not isinstance(data, Mapping):
        problems.append(f"{source}: expected an object of settings, got {type(data).__name__}")
        return
    if isinstance(data.get(OPTIONS_SECTION), Mapping):
        data = data[OPTIONS_SECTION]
    for raw_key, value in data.items():
        key = _CAMEL.sub("_", str(raw_key)).lower()
        if key not in _KINDS:
            problems.append(f"{source}: unknown setting {raw_key!r}")
            continue
        if value is None and key not in _OPTIONAL:
            continue  # editors send null for settings the user never set: keep what fusion.toml says
        try:
            values[key] = _check(key, value)
        except ValueError as exc:
            problems.append(f"{source}: {raw_key}: {exc}")


def _check(key: str, value: Any) -> Any:
    if value is None:
        return None
    kinds = _KINDS[key]
    if kinds == (tuple,):
        if not isinstance(value, list | tuple) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise ValueError("must be a non-empty list of model specs")
        return tuple(v.strip() for v in value)
    if isinstance(value, bool) and bool not in kinds:
        raise ValueError(f"must be a {kinds[0].__name__}, not a boolean")
    if not isinstance(value, kinds):
        raise ValueError(f"must be a {kinds[0].__name__}, not {type(value).__name__}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if key in _NON_NEGATIVE and value < 0:
            raise ValueError("must not be negative")
        if key in _POSITIVE and value < 1:
            raise ValueError("must be at least 1")
        return float(value) if kinds[0] is float else value
    return value
