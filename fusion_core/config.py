"""``fusion.toml``: named pools, extra endpoints, local models and local-only mode.

Looked up in the working directory, then ``~/.config/fusion/config.toml``.
A mistake is reported with the file, the line and the fix::

    local_only = false            # true: refuse every remote model

    [endpoints.vllm]              # any OpenAI-compatible server
    base_url = "http://127.0.0.1:8000/v1"
    api_key_env = "VLLM_API_KEY"  # optional

    [local]
    n_ctx = 4096
    [local.models]
    gemma-3-27b = "/models/gemma-3-27b-it-q4_0.gguf"

    [pools.review]
    models = ["anthropic/claude-3.7-sonnet", "vllm:Qwen/Qwen2.5-Coder-32B"]
    judge = "openai/gpt-4o"
    mode = "merge"

    [limits]                      # bytes read from an endpoint: see fusion_core.limits
    answer_bytes = 4194304
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusion_core.errors import ConfigError
from fusion_core.limits import Limits, parse_limits
from fusion_core.modes import MODES as MODES  # re-exported: the modes a pool may name
from fusion_core.option_specs import SPECS_BY_NAME, OptionSpec, specs_in
from fusion_core.pool import DEFAULT_MAX_CONCURRENCY

CONFIG_FILENAME = "fusion.toml"
USER_CONFIG_PATH = Path("~/.config/fusion/config.toml")
CONFIG_ENV = "FUSION_CONFIG"

# Pool and top-level run options are checked by the same specs as the flags.
_POOL_KEYS = {spec.key for spec in specs_in("pool")}
_ENDPOINT_KEYS = {"base_url", "api_key_env", "attribution"}
_LOCAL_KEYS = {"models", "n_ctx", "n_gpu_layers", "n_threads", "instruct", "cache_dir"}
_TOP_KEYS = {"local_only", "default_pool", "endpoints", "pools", "local", "max_concurrency", "cost_cap_usd", "lsp"}
_TOP_KEYS |= {"limits"}  # byte limits on what endpoints send: fusion_core.limits


@dataclass(frozen=True)
class EndpointConfig:
    """An OpenAI-compatible server other than OpenRouter."""

    name: str
    base_url: str
    api_key_env: str | None = None
    attribution: bool = False


@dataclass(frozen=True, kw_only=True)
class PoolOptions:
    """The run options a ``[pools.X]`` table may set (None: not set), declared once.

    :class:`PoolConfig` and the flags' :class:`fusion_core.options.RunOptions` both
    extend it; each field is a ``section="pool"`` row of the option table.
    """

    judge: str | None = None
    mode: str | None = None
    rounds: int | None = None
    quorum: int | None = None
    swap: bool | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    system: str | None = None
    timeout: float | None = None


@dataclass(frozen=True, kw_only=True)
class PoolConfig(PoolOptions):
    """A named pool: ``--pool @name``. Unset fields fall back to the defaults."""

    name: str
    models: tuple[str, ...]


@dataclass(frozen=True)
class LocalConfig:
    """Settings for in-process llama.cpp models."""

    models: dict[str, str] = field(default_factory=dict)
    n_ctx: int | None = None
    n_gpu_layers: int | None = None
    n_threads: int | None = None
    # Overrides the GGUF metadata's answer to "is this an instruction-tuned model?"
    instruct: bool | None = None
    cache_dir: str | None = None


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    local_only: bool = False
    default_pool: str | None = None
    max_concurrency: int | None = None
    cost_cap_usd: float | None = None
    endpoints: dict[str, EndpointConfig] = field(default_factory=dict)
    pools: dict[str, PoolConfig] = field(default_factory=dict)
    local: LocalConfig = field(default_factory=LocalConfig)
    limits: Limits = field(default_factory=Limits)
    # Front-end sections (e.g. [lsp]) are passed through untouched.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def concurrency(self) -> int:
        """At most this many requests at once: ``max_concurrency``, else the pool's default."""
        return self.max_concurrency or DEFAULT_MAX_CONCURRENCY

    def pool(self, name: str) -> PoolConfig:
        """The pool called ``name`` (without the ``@``)."""
        try:
            return self.pools[name]
        except KeyError:
            known = ", ".join("@" + p for p in sorted(self.pools)) or "none are configured"
            where = f" in {self.path}" if self.path else ""
            raise ConfigError(
                f"unknown pool @{name}{where}",
                hint=f"Known pools: {known}. Define one under [pools.{name}] in fusion.toml.",
            ) from None


def find_config_path(cwd: Path | None = None) -> Path | None:
    """The config file in effect: $FUSION_CONFIG, ./fusion.toml, then the user config."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit)
    local = (cwd or Path.cwd()) / CONFIG_FILENAME
    if local.is_file():
        return local
    user = USER_CONFIG_PATH.expanduser()
    return user if user.is_file() else None


def load_config(path: Path | None = None, *, cwd: Path | None = None) -> Config:
    """Load and validate a config file; no file means the built-in defaults."""
    path = path or find_config_path(cwd)
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.strerror}",
            hint="Fix its permissions or point FUSION_CONFIG elsewhere.",
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text", hint="Save it as UTF-8.") from exc
    return parse_config(text, path)


def parse_config(text: str, path: Path | None = None) -> Config:
    """Parse config text; errors name the file and line."""
    where = str(path) if path else "<config>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}", hint="Fix the syntax at that line.") from exc
    checker = _Checker(text, where)
    checker.keys(data, _TOP_KEYS, "the top level")
    endpoints = {name: _endpoint(checker, name, body) for name, body in checker.table(data, "endpoints").items()}
    pools = {name: _pool(checker, name, body) for name, body in checker.table(data, "pools").items()}
    local_data = checker.table(data, "local")
    checker.keys(local_data, _LOCAL_KEYS, "[local]")
    local = LocalConfig(
        models={k: str(v) for k, v in checker.table(local_data, "models").items()},
        n_ctx=checker.opt(local_data, "n_ctx", int),
        n_gpu_layers=checker.opt(local_data, "n_gpu_layers", int),
        n_threads=checker.opt(local_data, "n_threads", int),
        instruct=checker.opt(local_data, "instruct", bool),
        cache_dir=checker.opt(local_data, "cache_dir", str),
    )
    default_pool = checker.opt(data, "default_pool", str)
    if default_pool is not None and default_pool.lstrip("@") not in pools:
        checker.fail(
            "default_pool",
            f"default_pool names @{default_pool.lstrip('@')}, which is not defined",
            f"add [pools.{default_pool.lstrip('@')}] or fix the name",
        )
    return Config(
        path=path,
        local_only=bool(checker.option(data, SPECS_BY_NAME["local_only"]) or False),
        default_pool=default_pool.lstrip("@") if default_pool else None,
        max_concurrency=checker.option(data, SPECS_BY_NAME["max_concurrency"]),
        cost_cap_usd=checker.option(data, SPECS_BY_NAME["max_cost"]),
        endpoints=endpoints,
        pools=pools,
        local=local,
        limits=parse_limits(checker.table(data, "limits"), checker.fail),
        extra={k: v for k, v in data.items() if k == "lsp"},
    )


def _endpoint(checker: _Checker, name: str, body: Any) -> EndpointConfig:
    if not isinstance(body, dict):
        checker.fail(name, f"[endpoints.{name}] must be a table", 'write base_url = "http://..." under it')
    checker.keys(body, _ENDPOINT_KEYS, f"[endpoints.{name}]")
    if "/" in name or ":" in name:
        checker.fail(name, f"endpoint name {name!r} may not contain '/' or ':'", "rename it")
    base_url = checker.opt(body, "base_url", str)
    if not base_url:
        checker.fail(name, f"[endpoints.{name}] has no base_url", 'add base_url = "http://host:port/v1"')
    return EndpointConfig(
        name=name,
        base_url=base_url,
        api_key_env=checker.opt(body, "api_key_env", str),
        attribution=bool(checker.opt(body, "attribution", bool) or False),
    )


def _pool(checker: _Checker, name: str, body: Any) -> PoolConfig:
    if not isinstance(body, dict):
        checker.fail(name, f"[pools.{name}] must be a table", 'write models = ["..."] under it')
    checker.keys(body, _POOL_KEYS, f"[pools.{name}]")
    if body.get("models") is None:
        checker.fail(
            "models", f'[pools.{name}] needs models = ["model", ...]', "list at least one model id as a string"
        )
    values = {spec.name: checker.option(body, spec, f"[pools.{name}] ") for spec in specs_in("pool")}
    return PoolConfig(name=name, **values)


class _Checker:
    """Validation with file-and-line error messages."""

    def __init__(self, text: str, where: str) -> None:
        self._lines = text.splitlines()
        self._where = where

    def line_of(self, key: str) -> int | None:
        pattern = re.compile(rf"^\s*(\[[^\]]*\b{re.escape(key)}\b[^\]]*\]|\"?{re.escape(key)}\"?\s*=)")
        for number, line in enumerate(self._lines, start=1):
            if pattern.search(line):
                return number
        return None

    def fail(self, key: str, message: str, fix: str) -> Any:
        line = self.line_of(key)
        location = f"{self._where}:{line}" if line else self._where
        raise ConfigError(f"{location}: {message}", hint=fix[0].upper() + fix[1:] + ".")

    def keys(self, data: dict[str, Any], allowed: set[str], section: str) -> None:
        for key in data:
            if key not in allowed:
                self.fail(key, f"unknown key {key!r} in {section}", f"use one of {', '.join(sorted(allowed))}")

    def table(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.fail(key, f"{key} must be a table", f"write it as [{key}]")
        table: dict[str, Any] = value
        return table

    def option(self, data: dict[str, Any], spec: OptionSpec, where: str = "") -> Any:
        """The value of a run option (None when absent), checked by the same rule as its flag."""
        value = data.get(spec.key)
        if value is None:
            return None
        try:
            return spec.check(value)
        except ValueError as exc:
            return self.fail(spec.key, f"{where}{spec.key} {exc}", f"write {spec.key} as {spec.expected()}")

    def opt(self, data: dict[str, Any], key: str, kind: type) -> Any:
        value = data.get(key)
        if value is None:
            return None
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            self.fail(
                key, f"{key} must be {kind.__name__}, not {type(value).__name__}", f"write {key} as a {kind.__name__}"
            )
        return value
