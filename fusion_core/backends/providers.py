"""Fusion's own providers, registered in the ``fusion.backends`` entry-point group like any plugin.

- ``openrouter`` (the default): OpenAI-compatible HTTP, for ``vendor/model``,
  ``openrouter:model`` and ``ENDPOINT:model`` on a configured ``[endpoints.ENDPOINT]``;
- ``local`` and ``gguf``: in-process llama.cpp, imported only when such a model is used;
- ``tool``: static analysers (``tool:ruff``), which review code in ``fusion review``
  (:mod:`fusion_core.analysers`) and answer no prompts.

Test backends (:class:`~fusion_core.backends.scripted.ScriptedBackend`) are
registered as instances with :meth:`fusion_core.models.BackendResolver.register`.
"""

from __future__ import annotations

from fusion_core.backends.base import Backend
from fusion_core.backends.openai_http import (
    OPENROUTER_BASE_URL,
    OPENROUTER_BASE_URL_ENV,
    OPENROUTER_KEY_ENV,
    OpenAICompatibleBackend,
)
from fusion_core.backends.registry import DEFAULT_PROVIDER, ProviderContext, not_a_spec, unknown_prefix
from fusion_core.errors import ConfigError, MissingKey
from fusion_core.local_models import GGUF_PREFIX, LOCAL_PREFIX
from fusion_core.secrets import Secret

__all__ = ["OPENROUTER", "HttpProvider", "LocalProvider", "ToolProvider"]

OPENROUTER = DEFAULT_PROVIDER


class HttpProvider:
    """OpenRouter and the configured OpenAI-compatible endpoints, one cached backend per endpoint."""

    def __init__(self, context: ProviderContext) -> None:
        self._context = context
        self._backends: dict[str, OpenAICompatibleBackend] = {}

    def resolve(self, spec: str) -> tuple[Backend, str]:
        endpoint, model = self.split(spec)
        return self.backend(endpoint), model

    def split(self, spec: str) -> tuple[str, str]:
        """(endpoint, model id) of an HTTP spec: ``ENDPOINT:model``, ``openrouter:model`` or ``vendor/model``."""
        prefix, sep, rest = spec.partition(":")
        if sep and "/" not in prefix:
            if prefix == OPENROUTER or prefix in self._context.config.endpoints:
                return prefix, rest
            raise unknown_prefix(spec, prefix)
        if "/" not in spec:
            raise not_a_spec(spec)
        return OPENROUTER, spec

    def backend(self, endpoint: str, *, require_key: bool = True) -> OpenAICompatibleBackend:
        """The (cached) backend of a named endpoint; without ``require_key`` a missing key is no error."""
        endpoints = self._context.config.endpoints
        if endpoint != OPENROUTER and endpoint not in endpoints:
            known = ", ".join([OPENROUTER, *endpoints])
            raise ConfigError(f"unknown endpoint {endpoint!r}", hint=f"Known endpoints: {known}.")
        backend = self._backends.get(endpoint)
        if backend is None:
            backend = self._make(endpoint, require_key=require_key)
            if backend.has_key or require_key:
                self._backends[endpoint] = backend
        return backend

    def _make(self, endpoint: str, *, require_key: bool) -> OpenAICompatibleBackend:
        env, config = self._context.env, self._context.config
        if endpoint == OPENROUTER:
            key = env.get(OPENROUTER_KEY_ENV, "").strip()
            if not key and require_key:
                raise MissingKey(
                    f"{OPENROUTER_KEY_ENV} is not set, so OpenRouter models cannot be used",
                    hint=f"export {OPENROUTER_KEY_ENV}=sk-or-v1-... (https://openrouter.ai/keys), "
                    "or use local/ models.",
                )
            return OpenAICompatibleBackend(
                name=OPENROUTER,
                base_url=env.get(OPENROUTER_BASE_URL_ENV) or OPENROUTER_BASE_URL,
                api_key=Secret(key) if key else None,
                clients=self._context.clients,
                attribution=True,
                openrouter_fields=True,
                limits=config.limits,
            )
        conf = config.endpoints[endpoint]
        key_value = env.get(conf.api_key_env, "").strip() if conf.api_key_env else ""
        if conf.api_key_env and not key_value and require_key:
            raise MissingKey(
                f"{conf.api_key_env} is not set, but [endpoints.{endpoint}] needs it",
                hint=f"export {conf.api_key_env}=..., or remove api_key_env from the endpoint.",
            )
        return OpenAICompatibleBackend(
            name=endpoint,
            base_url=conf.base_url,
            api_key=Secret(key_value) if key_value else None,
            clients=self._context.clients,
            attribution=conf.attribution,
            limits=config.limits,
        )


class LocalProvider:
    """``local/NAME`` and ``gguf:/path``: one process-wide llama.cpp backend per model file."""

    def __init__(self, context: ProviderContext) -> None:
        self._context = context

    def resolve(self, spec: str) -> tuple[Backend, str]:
        if not spec.startswith((LOCAL_PREFIX, GGUF_PREFIX)):
            raise ConfigError(
                f"{spec!r} is not a local model spec", hint="Write local/NAME or gguf:/path/to/model.gguf."
            )
        from fusion_core.backends.llama import local_backend  # heavy: import on first use

        return local_backend(spec, self._context.config.local)


class ToolProvider:
    """``tool:NAME``: a static analyser; it reviews code (``fusion review``) and cannot answer a prompt."""

    def __init__(self, context: ProviderContext) -> None:
        self._context = context

    def resolve(self, spec: str) -> tuple[Backend, str]:
        from fusion_core.analysers import check_tool_spec  # only when a tool: spec is used

        check_tool_spec(spec)  # an unknown analyser's error names the known ones
        raise ConfigError(
            f"{spec} is a static analyser: it reviews code and cannot answer a prompt",
            hint=f"Use it in a review pool (fusion review --pool {spec},...), not in a run or as a judge.",
        )
