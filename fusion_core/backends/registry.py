"""Providers as plugins: which factory makes the backend for a model spec.

Providers are found through the ``fusion.backends`` entry-point group, as
simonw/llm and jupyter-ai find theirs, so adding one touches no core file. The
entry point's name is a spec prefix: ``local`` serves ``local/NAME``, ``gguf``
serves ``gguf:/path``, a package that declares ``echo`` serves ``echo/...``
and ``echo:...``. Its value is a factory (usually the class) that takes a
:class:`ProviderContext` and returns a :class:`Provider`; the resolver calls it
once per session, the first time a spec needs it, so nothing heavy (llama.cpp)
is imported before a model of that provider is used.

Fusion's own providers register themselves the same way in ``pyproject.toml``
(:data:`BUILTIN_PROVIDERS`; see :mod:`fusion_core.backends.providers`). A spec
whose prefix names no provider goes to the default, OpenRouter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from fusion_core.backends.base import Backend
from fusion_core.errors import ConfigError, FusionError

if TYPE_CHECKING:
    from fusion_core.backends.openai_http import HttpClients
    from fusion_core.config import Config

__all__ = [
    "BUILTIN_PROVIDERS",
    "DEFAULT_PROVIDER",
    "ENTRY_POINT_GROUP",
    "Provider",
    "ProviderContext",
    "ProviderFactory",
    "installed_providers",
    "load_provider",
    "spec_prefix",
]

ENTRY_POINT_GROUP = "fusion.backends"
DEFAULT_PROVIDER = "openrouter"
# The same table as [project.entry-points."fusion.backends"] in pyproject.toml (a test checks
# they agree). It stands in only when the package's metadata is missing, as in a checkout
# run through PYTHONPATH without ``pip install``.
BUILTIN_PROVIDERS: dict[str, str] = {
    "openrouter": "fusion_core.backends.providers:HttpProvider",
    "local": "fusion_core.backends.providers:LocalProvider",
    "gguf": "fusion_core.backends.providers:LocalProvider",
    "tool": "fusion_core.backends.providers:ToolProvider",
}
SEPARATORS = ("/", ":")


@dataclass(frozen=True)
class ProviderContext:
    """What a provider may use to build backends: the session's config, environment and HTTP clients."""

    config: Config
    env: Mapping[str, str]
    clients: HttpClients


@runtime_checkable
class Provider(Protocol):
    """A source of backends for the specs that start with its name."""

    def resolve(self, spec: str) -> tuple[Backend, str]:
        """The backend serving ``spec`` (the whole spec, prefix included) and the model id to send it.

        Raise :class:`fusion_core.errors.ConfigError` for a spec it cannot serve.
        """
        ...


ProviderFactory = Callable[[ProviderContext], Provider]


def spec_prefix(spec: str) -> str:
    """The text before a spec's first ``/`` or ``:`` (``local`` in ``local/x``), or "" when it has neither."""
    cut = min((i for i in (spec.find(sep) for sep in SEPARATORS) if i >= 0), default=-1)
    return spec[:cut] if cut > 0 else ""


@functools.cache
def installed_providers() -> Mapping[str, EntryPoint]:
    """Every provider name in the ``fusion.backends`` group (nothing is imported to list them)."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if DEFAULT_PROVIDER not in found:  # metadata missing: not installed, or installed before providers existed
        for name, value in BUILTIN_PROVIDERS.items():
            found.setdefault(name, EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP))
    return dict(sorted(found.items()))


def load_provider(name: str, context: ProviderContext) -> Provider:
    """Import provider ``name``'s factory and make the provider; ConfigError when that fails."""
    entry = installed_providers()[name]
    try:
        factory = entry.load()
        provider = factory(context)
    except FusionError:
        raise
    except Exception as exc:  # a plugin's bug or missing dependency: say which plugin, not a traceback
        raise ConfigError(
            f"the {name!r} backend provider ({entry.value}) failed to load: {type(exc).__name__}: {exc}",
            hint=f"Reinstall or uninstall the package that provides it ({_distribution(entry)}).",
        ) from exc
    if not isinstance(provider, Provider):
        raise ConfigError(
            f"the {name!r} backend provider ({entry.value}) has no resolve(spec) method",
            hint=f"Fix or uninstall the package that provides it ({_distribution(entry)}).",
        )
    return provider


def unknown_prefix(spec: str, prefix: str) -> ConfigError:
    """The error for ``PREFIX:model`` when PREFIX is neither a provider nor a configured endpoint."""
    return ConfigError(
        f"unknown provider or endpoint {prefix!r} in model spec {spec!r}",
        hint=f"Installed providers: {', '.join(installed_providers())}. Define [endpoints.{prefix}] with a "
        "base_url in fusion.toml, install a package that provides it, or write an OpenRouter id like vendor/model.",
    )


def not_a_spec(spec: str) -> ConfigError:
    """The error for a spec with neither ``/`` nor ``:``."""
    return ConfigError(
        f"{spec!r} is not a model spec",
        hint="Use vendor/model (OpenRouter), ENDPOINT:model, local/NAME or gguf:/path "
        f"(installed providers: {', '.join(installed_providers())}).",
    )


def _distribution(entry: EntryPoint) -> str:
    dist = entry.dist
    return dist.name if dist is not None else "unknown package"
