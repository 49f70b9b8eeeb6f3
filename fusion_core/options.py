"""The run options shared by every front end, and how they combine with the config.

The CLI (``fusion run``) and the notebook magic (``%%fuse``) parse the same
flags with the same parser, so the two cannot drift apart. Precedence:
explicit flags, then the chosen pool's settings, then the built-in defaults.
With no key and no pool configured, the embedded local model runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fusion_core.backends.openai_http import DEFAULT_TIMEOUT_S, OPENROUTER_KEY_ENV
from fusion_core.config import MODES, Config, PoolConfig
from fusion_core.engine import DEFAULT_MODE, RunSettings
from fusion_core.errors import ConfigError
from fusion_core.modes.debate import DEFAULT_ROUNDS
from fusion_core.pool import DEFAULT_MAX_CONCURRENCY

EMBEDDED_MODEL = "local/gemma-3-270m"
LOCAL_DEFAULT_POOL = PoolConfig(
    name="local-default",
    models=(f"{EMBEDDED_MODEL}*3",),
    # Code prompts: run the candidates, ties by penalised likelihood; other prompts: that likelihood
    # alone (README "Judges" has the measurements behind this choice).
    judge=f"exec+likelihood:{EMBEDDED_MODEL}",
    mode="best-of",
    max_tokens=128,
)
REMOTE_DEFAULT_POOL = PoolConfig(
    name="openrouter-default",
    models=("anthropic/claude-sonnet-4", "google/gemini-2.5-pro", "openai/gpt-4o"),
    judge="openai/gpt-4.1",
    mode=DEFAULT_MODE,
)
LOCAL_NOTICE = (
    "Running locally on the embedded Gemma 3 270M base model (no key, no network). "
    f"For stronger answers set {OPENROUTER_KEY_ENV}, or point a pool at a bigger GGUF "
    "(e.g. gguf:/path/gemma-3-27b-it.gguf)."
)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Add the fusion run flags (everything but the prompt) to ``parser``."""
    parser.add_argument("--pool", help="comma-separated model specs, or @name of a configured pool")
    parser.add_argument("--judge", help="the judge model (likelihood:local/... for a base model)")
    parser.add_argument("--mode", choices=MODES, help=f"fusion mode (default {DEFAULT_MODE})")
    parser.add_argument("--rounds", type=int, help=f"debate rounds incl. the first (default {DEFAULT_ROUNDS})")
    parser.add_argument("--quorum", type=int, help="start judging once K candidates succeeded")
    parser.add_argument(
        "--swap",
        action="store_true",
        default=None,
        help="best-of: judge twice in reversed order to expose position bias",
    )
    parser.add_argument("--timeout", type=float, help=f"seconds per model (default {DEFAULT_TIMEOUT_S:g})")
    parser.add_argument("--temperature", type=float, help="sampling temperature for the pool")
    parser.add_argument("--max-tokens", type=int, dest="max_tokens", help="token limit per answer")
    parser.add_argument("--system", help="a system prompt for every pool member")
    parser.add_argument(
        "--local-only",
        action="store_true",
        dest="local_only",
        default=None,
        help="refuse every remote model; no socket is opened",
    )


@dataclass(frozen=True)
class Resolved:
    """Settings ready to run, and what the user should be told about how they were chosen."""

    settings: RunSettings
    local_only: bool
    notice: str | None = None


def resolve_settings(options: argparse.Namespace, config: Config, env: Mapping[str, str]) -> Resolved:
    """Combine parsed flags, the config and the defaults into RunSettings."""
    local_only = bool(options.local_only) or config.local_only
    pool, notice = _choose_pool(options.pool, config, env, local_only)
    judge = options.judge or pool.judge or default_pool(env, local_only).judge
    for name in ("rounds", "quorum", "max_tokens", "timeout"):
        value = getattr(options, name)
        if value is not None and value <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, not {value}")
    settings = RunSettings(
        pool=pool.models,
        judge=judge or "",
        mode=options.mode or pool.mode or DEFAULT_MODE,
        rounds=_first(options.rounds, pool.rounds, DEFAULT_ROUNDS),
        quorum=_first(options.quorum, pool.quorum, None),
        swap=bool(_first(options.swap, pool.swap, False)),
        timeout_s=_first(options.timeout, pool.timeout, DEFAULT_TIMEOUT_S),
        temperature=_first(options.temperature, pool.temperature, None),
        max_tokens=_first(options.max_tokens, pool.max_tokens, None),
        system=_first(options.system, pool.system, None),
        max_concurrency=config.max_concurrency or DEFAULT_MAX_CONCURRENCY,
    )
    settings.validate()
    return Resolved(settings=settings, local_only=local_only, notice=notice)


def _choose_pool(
    flag: str | None, config: Config, env: Mapping[str, str], local_only: bool
) -> tuple[PoolConfig, str | None]:
    if flag:
        flag = flag.strip()
        if flag.startswith("@"):
            return config.pool(flag[1:]), None
        models = tuple(part.strip() for part in flag.split(","))
        return PoolConfig(name="command-line", models=models), None
    if config.default_pool:
        return config.pool(config.default_pool), None
    pool = default_pool(env, local_only)
    return pool, LOCAL_NOTICE if pool is LOCAL_DEFAULT_POOL else None


def default_pool(env: Mapping[str, str], local_only: bool) -> PoolConfig:
    """The built-in pool: the embedded local model without a key (or when local-only), else OpenRouter's."""
    if local_only or not env.get(OPENROUTER_KEY_ENV, "").strip():
        return LOCAL_DEFAULT_POOL
    return REMOTE_DEFAULT_POOL


def pool_lines(config: Config) -> list[str]:
    """A listing of the configured pools (``--pool @name``) and the built-in defaults."""
    where = f" in {config.path}" if config.path else " (no fusion.toml found)"
    lines = [f"Configured pools{where}:" if config.pools else f"No pools configured{where}."]
    for pool in config.pools.values():
        marker = " (default)" if config.default_pool == pool.name else ""
        lines.append(f"  @{pool.name}{marker}: {', '.join(pool.models)}")
        lines.append(f"      judge {pool.judge or '(default)'}, mode {pool.mode or DEFAULT_MODE}")
    lines.append("Built-in defaults, used when no pool is chosen:")
    for pool, when in (
        (REMOTE_DEFAULT_POOL, f"with {OPENROUTER_KEY_ENV} set"),
        (LOCAL_DEFAULT_POOL, "with no key: the embedded local model"),
    ):
        lines.append(f"  {pool.name} ({when}): {', '.join(pool.models)}")
        lines.append(f"      judge {pool.judge}, mode {pool.mode}")
    return lines


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None
