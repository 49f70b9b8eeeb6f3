"""The language server's settings: fusion.toml, then initializationOptions, then the editor's settings.

``fusion.toml`` in the workspace root supplies the pools named ``review`` and
``completion`` (models, judge, timeout, max_tokens, quorum, temperature),
``local_only``, ``cost_cap_usd`` and an ``[lsp]`` table with any of the keys
below. ``initializationOptions`` and ``workspace/didChangeConfiguration``
override them, as a flat object (optionally under a ``fusion`` key); keys may
be snake_case or camelCase (``reviewOnSave``)::

    {"fusion": {"reviewPool": ["anthropic/claude-sonnet-4", "openai/gpt-4o"],
                "reviewOnSave": false, "costCapUsd": 0.05}}

The pools come from :func:`fusion_core.options.resolve_pool`, as they do for
``fusion run``, and every value is checked by an
:class:`~fusion_core.option_specs.OptionSpec`: the settings ``fusion run`` also
has (``reviewTemperature`` is ``--temperature``) by that flag's own rule.
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
from fusion_core.option_specs import SPECS_BY_NAME, OptionSpec
from fusion_core.options import EMBEDDED_MODEL, REMOTE_DEFAULT_POOL, REVIEW_POOL_NAME, is_builtin, resolve_pool
from fusion_core.review import DEFAULT_REVIEW_MAX_TOKENS, DEFAULT_REVIEW_TIMEOUT_S

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


# Each setting the language server shares with ``fusion run`` follows that option's rule in
# the option table, so a flag, a fusion.toml key and an editor setting can never be checked
# differently (``reviewTemperature: 5`` is refused with the words ``--temperature 5`` gets).
_SHARED_RULES = {
    "review_pool": "models",
    "review_judge": "judge",
    "review_timeout_s": "timeout",
    "review_max_tokens": "max_tokens",
    "review_quorum": "quorum",
    "review_temperature": "temperature",
    "completion_pool": "models",
    "completion_judge": "judge",
    "completion_deadline_s": "timeout",
    "completion_quorum": "quorum",
    "completion_max_tokens": "max_tokens",
    "completion_temperature": "temperature",
    "local_only": "local_only",
    "cost_cap_usd": "max_cost",
}
# The settings only the language server has, checked by the same OptionSpec rules.
LSP_ONLY_SPECS = (
    OptionSpec("review_on_save", bool, "review a file each time it is saved"),
    OptionSpec("completion_enabled", bool, "offer fused completions"),
    OptionSpec("debounce_s", float, "seconds a completion request waits before it starts", minimum=0.0),
    OptionSpec("max_review_bytes", int, "refuse to review a bigger file (review a selection)", positive=True),
    OptionSpec("preload_local", bool, "load the completion pool's local models at start-up"),
    OptionSpec("run_log", bool, "record the server's fusion runs in the run log (`fusion logs`)"),
)
RULES: dict[str, OptionSpec] = {key: SPECS_BY_NAME[name] for key, name in _SHARED_RULES.items()}
RULES |= {spec.name: spec for spec in LSP_ONLY_SPECS}
# null resets these to "not set"; for the others it means "keep what fusion.toml says".
_NULLABLE = {f.name for f in dataclasses.fields(LspSettings) if "None" in str(f.type)}


def build_settings(config: Config, overrides: Sequence[Any], env: Mapping[str, str]) -> tuple[LspSettings, list[str]]:
    """Settings from ``config`` and then each override object in turn; also returns problems found."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    review = resolve_pool(REVIEW_POOL_NAME, config, env, builtin_fallback=True)
    if review is REMOTE_DEFAULT_POOL:
        values["review_pool"], values["review_judge"] = review.models, review.judge
    elif not is_builtin(review):
        _from_pool(values, review, "review")
    # else: with no key the analysers review, offline and in seconds, rather than a base model.
    completion = resolve_pool(COMPLETION_POOL_NAME, config, env, builtin_fallback=True)
    if not is_builtin(completion):
        _from_pool(values, completion, "completion")
    values["local_only"] = config.local_only
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


def _from_pool(values: dict[str, Any], pool: PoolConfig, prefix: str) -> None:
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
        spec = RULES.get(key)
        if spec is None:
            problems.append(f"{source}: unknown setting {raw_key!r}")
            continue
        if value is None:
            if key in _NULLABLE:
                values[key] = None
            continue  # editors send null for settings the user never set: keep what fusion.toml says
        try:
            checked = spec.check(value)
        except ValueError as exc:
            problems.append(f"{source}: {raw_key}: {exc}")
            continue
        values[key] = tuple(v.strip() for v in checked) if spec.repeated else checked
