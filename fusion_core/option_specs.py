"""The one table of run options: name, type, range and help of every flag and matching config key.

``fusion run`` and ``%%fuse`` generate their flags from :data:`OPTION_SPECS`
(see :func:`fusion_core.options.add_run_options`), and ``fusion.toml`` checks
its pool and top-level keys against the same specs (see
:mod:`fusion_core.config`), so ``--temperature 5`` and ``temperature = 5``
are refused by the same rule with the same words. Before this table the two
were checked by different code, and a config file got away with
``max_tokens = -5`` or ``timeout = nan``.

This module imports nothing that imports the config, so both sides can use it.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from fusion_core.backends.openai_http import DEFAULT_TIMEOUT_S
from fusion_core.errors import ConfigError
from fusion_core.modes import MODES
from fusion_core.modes.debate import DEFAULT_ROUNDS
from fusion_core.pool import DEFAULT_MAX_CONCURRENCY

DEFAULT_MODE = "merge"
MAX_ROUNDS = 6
MAX_TEMPERATURE = 2.0

Section = Literal["pool", "top"]


@dataclass(frozen=True)
class OptionSpec:
    """One run option: its flags, its fusion.toml key, and the rule its values follow.

    ``minimum``/``maximum`` bound numbers (``positive`` excludes zero); ``choices``
    limits strings; ``repeated`` options take a list (``-m A -m B``, ``models = [...]``).
    """

    name: str
    kind: type
    help: str
    flags: tuple[str, ...] = ()
    section: Section | None = None
    config_key: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    choices: tuple[str, ...] = ()
    repeated: bool = False
    metavar: str | None = None

    @property
    def key(self) -> str:
        """The fusion.toml key (the option's name unless it is spelled differently there)."""
        return self.config_key or self.name

    @property
    def flag(self) -> str:
        """The flag a user sees in messages (the long one), or the config key."""
        return self.flags[-1] if self.flags else self.key

    def describe(self) -> str:
        """What a valid value looks like, for messages: ``a number from 0 to 2``."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return "a non-empty string"
        noun = "a whole number" if self.kind is int else "a number"
        if self.minimum is not None and self.maximum is not None:
            return f"{noun} from {_num(self.minimum)} to {_num(self.maximum)}"
        if self.positive:
            return f"{noun} above 0" if self.kind is float else f"{noun} of at least 1"
        if self.minimum is not None:
            return f"{noun} of at least {_num(self.minimum)}"
        return noun

    def expected(self) -> str:
        """What a valid config value looks like: ``describe()``, or a list of such for repeated options."""
        return f"a list of {self.describe().removeprefix('a ')}s" if self.repeated else self.describe()

    def check(self, value: Any) -> Any:
        """``value`` if this option accepts it (ints widened to float), else ValueError saying why."""
        if not self.repeated:
            return self._check_one(value)
        if not isinstance(value, list | tuple) or not value:
            raise ValueError(f"must be {self.expected()} (at least one)")
        checked = []
        for item in value:
            try:
                checked.append(self._check_one(item))
            except ValueError as exc:
                raise ValueError(f"has a bad entry {item!r}: it {exc}") from None
        return tuple(checked)

    def parse(self, text: str) -> Any:
        """argparse ``type=``: text from the command line, checked by the same rule as the config."""
        try:
            if self.kind is int:
                value: Any = int(text)
            elif self.kind is float:
                value = float(text)
            else:
                value = text
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, not {text!r}") from None
        try:
            return self._check_one(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def _check_one(self, value: Any) -> Any:
        kind = self.kind
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            raise ValueError(f"must be {self.describe()}, not {type(value).__name__} {value!r}")
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("must not be empty")
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:  # undecodable argv bytes arrive as lone surrogates
                    raise ValueError("must be UTF-8 text") from None
            if self.choices and value not in self.choices:
                raise ValueError(f"must be {self.describe()}, not {value!r}")
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"must be a finite number, not {value}")
        if isinstance(value, int | float) and not isinstance(value, bool) and not self._in_range(value):
            raise ValueError(f"must be {self.describe()}, not {_num(value)}")
        return value

    def _in_range(self, value: float) -> bool:
        if self.positive and value <= 0:
            return False
        if self.minimum is not None and value < self.minimum:
            return False
        return self.maximum is None or value <= self.maximum


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


OPTION_SPECS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "pool",
        str,
        "comma-separated model specs, or @name of a configured pool",
        flags=("--pool",),
    ),
    OptionSpec(
        "models",
        str,
        "a pool member (repeatable): -m A -m B is --pool A,B; one model with no --judge runs alone",
        flags=("-m", "--model"),
        section="pool",
        repeated=True,
        metavar="MODEL",
    ),
    OptionSpec("judge", str, "the judge model (likelihood:local/... for a base model)", ("--judge",), "pool"),
    OptionSpec("mode", str, f"fusion mode (default {DEFAULT_MODE})", ("--mode",), "pool", choices=tuple(MODES)),
    OptionSpec(
        "rounds",
        int,
        f"debate rounds incl. the first (default {DEFAULT_ROUNDS})",
        ("--rounds",),
        "pool",
        minimum=1,
        maximum=MAX_ROUNDS,
    ),
    OptionSpec("quorum", int, "start judging once K candidates succeeded", ("--quorum",), "pool", positive=True),
    OptionSpec("swap", bool, "best-of: judge twice in reversed order to expose position bias", ("--swap",), "pool"),
    OptionSpec(
        "timeout",
        float,
        f"seconds per model (default {DEFAULT_TIMEOUT_S:g})",
        ("--timeout",),
        "pool",
        positive=True,
    ),
    OptionSpec(
        "temperature",
        float,
        f"sampling temperature for the pool, 0 to {MAX_TEMPERATURE:g}",
        ("--temperature",),
        "pool",
        minimum=0.0,
        maximum=MAX_TEMPERATURE,
    ),
    OptionSpec("max_tokens", int, "token limit per answer", ("--max-tokens",), "pool", positive=True),
    OptionSpec("system", str, "a system prompt for every pool member", ("--system",), "pool"),
    OptionSpec("local_only", bool, "refuse every remote model; no socket is opened", ("--local-only",), "top"),
    OptionSpec(
        "max_cost",
        float,
        "refuse to start a run that could cost more than USD (worst case from /models prices); "
        "cost_cap_usd in fusion.toml",
        ("--max-cost",),
        "top",
        config_key="cost_cap_usd",
        minimum=0.0,
        metavar="USD",
    ),
    OptionSpec(
        "max_concurrency",
        int,
        f"at most N requests at once (default {DEFAULT_MAX_CONCURRENCY})",
        ("--max-concurrency",),
        "top",
        positive=True,
        metavar="N",
    ),
)
SPECS_BY_NAME = {spec.name: spec for spec in OPTION_SPECS}


def specs_in(section: Section) -> Iterator[OptionSpec]:
    """The options that fusion.toml accepts in ``section`` (a ``[pools.X]`` table or the top level)."""
    return (spec for spec in OPTION_SPECS if spec.section == section)


# Request fields a provider option may not set: the ones Fusion's streaming depends on, and
# the ones a checked flag sets. Anything else (top_p, seed, reasoning, stop, provider...)
# passes through; a per-sample seed of SPEC*N still wins over -o seed.
_OWN_FIELDS = {
    "model": None,
    "messages": None,
    "stream": None,
    "stream_options": None,
    "usage": None,
    "temperature": "--temperature",
    "max_tokens": "--max-tokens",
}
_OPTION_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")


def parse_provider_option(key: str, text: str) -> tuple[str, Any]:
    """``-o KEY VALUE``: the value as JSON when it parses (``0.9``, ``42``, ``true``, ``{...}``), else text.

    Raises ValueError for a key Fusion sets itself or a non-finite number.
    """
    key = key.strip()
    if not key or not set(key.lower()) <= _OPTION_KEY_CHARS:
        raise ValueError(f"{key!r} is not an option name (letters, digits, _ . -)")
    if key in _OWN_FIELDS:
        instead = _OWN_FIELDS[key]
        raise ValueError(f"{key} is set by Fusion itself" + (f"; use {instead}" if instead else ""))
    try:
        value: Any = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError:
        value = text
    return key, value


def _no_constant(name: str) -> Any:
    raise ValueError(f"must be a finite number, not {name}")


def check_option(name: str, value: Any) -> Any:
    """``value`` checked by the spec called ``name``; a bad one is a ConfigError naming the flag."""
    spec = SPECS_BY_NAME[name]
    try:
        return spec.check(value)
    except ValueError as exc:
        raise ConfigError(f"{spec.flag} {exc}", hint=f"Give {spec.flag} {spec.expected()}.") from None
