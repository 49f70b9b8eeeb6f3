"""One fusion session per IPython shell: config, session defaults and a reused engine.

The :class:`~fusion_core.Fusion` engine keeps HTTP connections (and loaded
local models) between runs, so the session keeps one and only replaces it when
something it was built from changes: the config file, local-only mode or the
API key and base URL variables (a user may ``%env OPENROUTER_API_KEY=...``
half-way through a notebook).
"""

from __future__ import annotations

import atexit
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fusion_core.backends.openai_http import OPENROUTER_BASE_URL_ENV, OPENROUTER_KEY_ENV
from fusion_core.config import Config, load_config
from fusion_core.engine import Fusion
from fusion_core.options import Resolved, RunOptions, resolve_settings
from fusion_core.runlog import LOG_DB_ENV, NO_LOG_ENV, RunLog
from fusion_core.secrets import Secret, redact


@dataclass(frozen=True)
class Prepared:
    """Everything a ``%%fuse`` run needs, decided before any request is sent."""

    resolved: Resolved
    config: Config
    fusion: Fusion
    notice: str | None


class FusionSession:
    """Config, session defaults (``%fuse_config --mode debate``) and the shared engine.

    ``env`` and ``load`` are injectable; by default they are ``os.environ`` and
    :func:`fusion_core.config.load_config` (which reads ``./fusion.toml``).
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        load: Callable[[], Config] = load_config,
    ) -> None:
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.defaults = RunOptions()
        self._load = load
        self._fusion: Fusion | None = None
        self._fingerprint: tuple[Any, ...] | None = None
        self._notices_shown: set[str] = set()
        self._atexit_registered = False

    # -- options ------------------------------------------------------------------

    def set_defaults(self, options: RunOptions) -> None:
        """Remember every option given in ``options`` for later runs (validated first)."""
        candidate = options.over(self.defaults)
        resolve_settings(candidate, self.load_config(), self.env)  # raises FusionError if unusable
        self.defaults = candidate

    def load_config(self) -> Config:
        return self._load()

    def resolve(self, options: RunOptions) -> tuple[Resolved, Config]:
        """The settings for ``options``, every option not given taken from the session defaults."""
        config = self.load_config()
        return resolve_settings(options.over(self.defaults), config, self.env), config

    # -- the engine ---------------------------------------------------------------

    def prepare(self, options: RunOptions) -> Prepared:
        """Resolve the settings and get the (reused) engine; raises FusionError."""
        resolved, config = self.resolve(options)
        notice = None
        if resolved.notice and resolved.notice not in self._notices_shown:
            self._notices_shown.add(resolved.notice)
            notice = resolved.notice
        return Prepared(
            resolved=resolved, config=config, fusion=self._engine(config, resolved.local_only), notice=notice
        )

    def _engine(self, config: Config, local_only: bool) -> Fusion:
        fingerprint = (config, local_only, self._env_digest(config))
        if self._fusion is None or fingerprint != self._fingerprint:
            self.close()
            # Notebook runs are logged like the CLI's (FUSION_NO_LOG=1 turns it off).
            run_log = RunLog.from_env(self.env, source="notebook")
            self._fusion = Fusion(config, local_only=local_only, env=dict(self.env), run_log=run_log)
            self._fingerprint = fingerprint
            if not self._atexit_registered:
                # The engine's loop thread must be stopped before the interpreter
                # finalises, or shutting the kernel down hangs.
                atexit.register(self.close)
                self._atexit_registered = True
        return self._fusion

    def _env_digest(self, config: Config) -> str:
        """A digest of the variables the engine reads, so keys are not kept around in clear."""
        names = [OPENROUTER_KEY_ENV, OPENROUTER_BASE_URL_ENV, LOG_DB_ENV, NO_LOG_ENV, "XDG_DATA_HOME"]
        names += [e.api_key_env for e in config.endpoints.values() if e.api_key_env]
        values = "\0".join(f"{name}={self.env.get(name, '')}" for name in names)
        return hashlib.sha256(values.encode()).hexdigest()

    def close(self) -> None:
        """Stop the engine's loop thread and close its connections."""
        fusion, self._fusion, self._fingerprint = self._fusion, None, None
        if fusion is not None:
            fusion.close()

    # -- output -------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """``text`` without any API key this session knows of (or anything key-shaped)."""
        return redact(text, *self._secrets())

    def _secrets(self) -> Iterator[Secret]:
        for name, value in self.env.items():
            if name == OPENROUTER_KEY_ENV or name.endswith("_API_KEY"):
                if value.strip():
                    yield Secret(value.strip())
