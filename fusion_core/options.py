"""The run options shared by every front end, and how they combine with the config.

The CLI (``fusion run``) and the notebook magic (``%%fuse``) parse the same
flags, generated from one table (:mod:`fusion_core.option_specs`) that also
checks ``fusion.toml``, so a flag and a config key cannot be validated
differently. Precedence: explicit flags, then the chosen pool's settings, then
the built-in defaults. With no key and no pool configured, the embedded local
model runs.

Each front end turns what it parsed into one :class:`RunOptions` and calls
:func:`resolve_settings`; :func:`resolve_pool` is the one lookup of a named
pool (``fusion run``, ``fusion review``, the magic and the language server's
``review``/``completion`` pools all go through it).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from fusion_core.backends.openai_http import DEFAULT_TIMEOUT_S, OPENROUTER_KEY_ENV
from fusion_core.config import Config, PoolConfig, PoolOptions
from fusion_core.engine import RunSettings
from fusion_core.errors import ConfigError
from fusion_core.modes.debate import DEFAULT_ROUNDS
from fusion_core.option_specs import DEFAULT_MODE, OPTION_SPECS, check_option, parse_provider_option
from fusion_core.specs import expand_pool

EMBEDDED_MODEL = "local/gemma-3-270m"
# The pool ``fusion review`` and the language server's reviews use when fusion.toml defines it.
REVIEW_POOL_NAME = "review"
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


class _ProviderOption(argparse.Action):
    """``-o KEY VALUE``, repeatable; a bad pair is a usage error like any bad flag."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        key, text = values if isinstance(values, list | tuple) else ("", "")
        try:
            pair = parse_provider_option(str(key), str(text))
        except ValueError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest) or []), pair])


def add_run_options(parser: argparse.ArgumentParser, *, option_flags: Sequence[str] = ("--option",)) -> None:
    """Add the run flags (everything but the prompt) to ``parser``, generated from the option table.

    ``option_flags`` spells the provider-option flag: the CLI adds ``-o`` as ``llm`` does,
    the notebook magic keeps ``-o`` for its output variable.
    """
    for spec in OPTION_SPECS:
        if not spec.flags:
            continue
        if spec.kind is bool:
            parser.add_argument(*spec.flags, dest=spec.name, action="store_true", default=None, help=spec.help)
            continue
        parser.add_argument(
            *spec.flags,
            dest=spec.name,
            # argparse checks choices itself ("invalid choice: ... (choose from ...)").
            type=str if spec.choices else spec.parse,
            action="append" if spec.repeated else "store",
            choices=spec.choices or None,
            metavar=spec.metavar,
            help=spec.help,
        )
    parser.add_argument(
        *option_flags,
        dest="provider_options",
        nargs=2,
        action=_ProviderOption,
        metavar=("KEY", "VALUE"),
        help="pass a provider option through to the pool's requests (repeatable), e.g. top_p 0.9; "
        "VALUE is read as JSON when it parses, else as text",
    )


@dataclass(frozen=True, kw_only=True)
class RunOptions(PoolOptions):
    """The run options a user gave (None: not given), one field per row of the option table.

    The options a pool may also set come from :class:`~fusion_core.config.PoolOptions`.
    Every value is checked by its :class:`~fusion_core.option_specs.OptionSpec` on
    construction, so options built in Python follow the same rules as flags.
    """

    pool: str | None = None
    models: tuple[str, ...] | None = None
    local_only: bool | None = None
    max_cost: float | None = None
    max_concurrency: int | None = None
    provider_options: tuple[tuple[str, Any], ...] | None = None

    def __post_init__(self) -> None:
        for spec in OPTION_SPECS:
            value = getattr(self, spec.name)
            if value is not None:
                object.__setattr__(self, spec.name, check_option(spec.name, value))

    @classmethod
    def from_namespace(cls, namespace: argparse.Namespace) -> RunOptions:
        """The options in flags parsed by :func:`add_run_options` (the one conversion a front end makes)."""
        values: dict[str, Any] = {f.name: getattr(namespace, f.name, None) for f in fields(cls)}
        for name in ("models", "provider_options"):
            if values[name] is not None:
                values[name] = tuple(values[name])
        return cls(**values)

    def given(self) -> dict[str, Any]:
        """The options that were given (not None), by field name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def over(self, defaults: RunOptions) -> RunOptions:
        """These options, with every one not given taken from ``defaults`` (``%fuse_config`` session defaults)."""
        return replace(defaults, **self.given())

    def flags(self) -> list[str]:
        """The given options as command-line flags, e.g. ``["--mode", "debate", "--swap"]``."""
        words: list[str] = []
        for spec in OPTION_SPECS:  # in the table's order, as --help lists them
            value = getattr(self, spec.name)
            if spec.kind is bool:
                words += [spec.flag] if value else []  # False is what leaving the flag out says
            elif value is not None:
                words += [w for item in (value if spec.repeated else (value,)) for w in (spec.flag, str(item))]
        for key, item in self.provider_options or ():
            words += ["--option", key, json.dumps(item)]
        return words


@dataclass(frozen=True)
class Resolved:
    """Settings ready to run, and what the user should be told about how they were chosen."""

    settings: RunSettings
    local_only: bool
    notice: str | None = None


def resolve_settings(opts: RunOptions, config: Config, env: Mapping[str, str]) -> Resolved:
    """Combine the options, the config and the defaults into RunSettings.

    Precedence: options, then the chosen pool's settings, then the built-in defaults.
    """
    local_only = bool(opts.local_only) or config.local_only
    pool, notice = _choose_pool(opts, config, env, local_only)
    judge = opts.judge or pool.judge
    if not judge and len(expand_pool(pool.models)) > 1:
        judge = default_pool(env, local_only).judge
    settings = RunSettings(
        pool=pool.models,
        # One model and no judge anywhere: it runs alone and its answer is the result.
        judge=judge or "",
        mode=opts.mode or pool.mode or DEFAULT_MODE,
        rounds=_first(opts.rounds, pool.rounds, DEFAULT_ROUNDS),
        quorum=_first(opts.quorum, pool.quorum, None),
        swap=bool(_first(opts.swap, pool.swap, False)),
        timeout_s=_first(opts.timeout, pool.timeout, DEFAULT_TIMEOUT_S),
        temperature=_first(opts.temperature, pool.temperature, None),
        max_tokens=_first(opts.max_tokens, pool.max_tokens, None),
        system=_first(opts.system, pool.system, None),
        max_concurrency=opts.max_concurrency or config.concurrency,
        max_cost_usd=_first(opts.max_cost, config.cost_cap_usd, None),
        provider_options=dict(opts.provider_options or ()),
    )
    settings.validate()
    return Resolved(settings=settings, local_only=local_only, notice=notice)


def _choose_pool(
    opts: RunOptions, config: Config, env: Mapping[str, str], local_only: bool
) -> tuple[PoolConfig, str | None]:
    if opts.pool is not None and opts.models is not None:
        raise ConfigError("--pool and -m both name the pool", hint="Use one: --pool a,b or -m a -m b.")
    if opts.models is not None:
        return PoolConfig(name="command-line", models=opts.models), None
    if opts.pool is not None:
        flag = opts.pool.strip()
        if flag.startswith("@"):
            return resolve_pool(flag[1:], config, env), None
        models = tuple(part.strip() for part in flag.split(","))
        return PoolConfig(name="command-line", models=models), None
    pool = resolve_pool(None, config, env, local_only=local_only)
    if not is_builtin(pool):
        return pool, None
    notices = [LOCAL_NOTICE] if pool is LOCAL_DEFAULT_POOL else []
    if config.pools:
        # A user with pools but no default expects one of them: say which ran and how to choose.
        first = next(iter(config.pools))
        where = f" in {config.path}" if config.path else ""
        notices.insert(
            0,
            f"no default_pool is set{where}, so this run used the built-in {pool.name} pool, not "
            f'{", ".join("@" + p for p in config.pools)}. Put default_pool = "{first}" at the top '
            f"of fusion.toml, or pass --pool @{first}.",
        )
    return pool, " ".join(notices) or None


def resolve_pool(
    name: str | None,
    config: Config,
    env: Mapping[str, str],
    *,
    local_only: bool = False,
    builtin_fallback: bool = False,
) -> PoolConfig:
    """The one place a named pool is resolved: ``[pools.NAME]``, else the default pool, else the built-in one.

    ``name`` None means the config's ``default_pool``, or without one the built-in pool for
    ``env`` (the embedded local model when there is no key or when ``local_only`` or the
    config's ``local_only`` is set). An unknown ``name`` is a ConfigError listing the known
    pools, unless ``builtin_fallback`` asks for the built-in pool instead (the language
    server's optional ``review`` and ``completion`` pools).
    """
    local_only = local_only or config.local_only
    if name is None and config.default_pool:
        name = config.default_pool
    elif name is None or (builtin_fallback and name not in config.pools):
        return default_pool(env, local_only)
    return config.pool(name)


def is_builtin(pool: PoolConfig) -> bool:
    """Whether ``pool`` is one of the built-in default pools (no pool of the user's was found)."""
    return pool is LOCAL_DEFAULT_POOL or pool is REMOTE_DEFAULT_POOL


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
