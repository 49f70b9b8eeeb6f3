"""What the endpoints' ``/models`` say about a run's models, read once before any paid call.

The engine reads every HTTP endpoint's catalogue before the pool starts, so it
can refuse a model id the endpoint does not list ("did you mean
``openai/gpt-4o``?") and check the cost cap from list prices while nothing has
been sent. Later the same listing prices candidates whose provider reported no
cost and tells the judge call whether structured output is supported.

A catalogue is optional data: one that cannot be read within the run's timeout
costs one notice, not the run.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field

from fusion_core.backends.base import Backend, ModelCatalog, ModelInfo
from fusion_core.errors import ConfigError, FusionError


@dataclass
class Catalog:
    """Each endpoint's listing, keyed by backend, and notices about the ones that could not be read."""

    listings: dict[int, dict[str, ModelInfo]] = field(default_factory=dict)
    notices: tuple[str, ...] = ()

    def listing(self, backend: Backend) -> dict[str, ModelInfo] | None:
        """The backend's catalogue, or None when it has none or it could not be read."""
        return self.listings.get(id(backend))

    def info(self, backend: Backend, model: str) -> ModelInfo | None:
        """The entry for ``model``; an OpenRouter variant (``:nitro``) falls back to its base model."""
        listing = self.listings.get(id(backend), {})
        return listing.get(model) or listing.get(model.rpartition(":")[0])

    def _unread(self, backend: Backend, reason: str) -> None:
        self.listings.pop(id(backend), None)
        self.notices += (
            f"the model list of {backend.name} could not be read ({reason}), so model names and prices "
            "are not checked against it",
        )


async def read_catalog(used: Sequence[tuple[Backend, str]], timeout_s: float) -> Catalog:
    """The catalogue of every endpoint among ``used`` (backend, model id) pairs, each within ``timeout_s``.

    A listing cached by the session is refreshed once when it lacks a wanted id:
    the endpoint may have started serving that model since.
    """
    catalog = Catalog()
    for backend in {id(b): b for b, _ in used}.values():
        if not isinstance(backend, ModelCatalog):
            continue
        wanted = {model for b, model in used if b is backend}
        try:
            async with asyncio.timeout(timeout_s):
                catalog.listings[id(backend)] = {info.id: info for info in await backend.list_models()}
                if any(catalog.info(backend, model) is None for model in wanted):
                    fresh = await backend.list_models(refresh=True)
                    catalog.listings[id(backend)] = {info.id: info for info in fresh}
        except TimeoutError:
            catalog._unread(backend, f"no answer within {timeout_s:g} s")
        except FusionError as exc:
            catalog._unread(backend, exc.message)
    return catalog


def check_listed(wanted: Sequence[tuple[str, Backend, str]], catalog: Catalog) -> None:
    """Refuse (spec, backend, model id) triples whose endpoint does not list the id, naming the closest."""
    problems: list[str] = []
    hints: list[str] = []
    for spec, backend, model in wanted:
        listing = catalog.listing(backend)
        # "@preset/..." ids name OpenRouter presets, which /models never lists.
        if listing is None or model.startswith("@") or catalog.info(backend, model) is not None:
            continue
        problem = f"{spec} (not listed by {backend.name})"
        if problem in problems:
            continue
        problems.append(problem)
        close = difflib.get_close_matches(model, list(listing), n=1)
        if close:
            hints.append(f"Did you mean `{spec.removesuffix(model) + close[0]}`?")
    if problems:
        endpoints = sorted({b.name for _, b, _ in wanted if catalog.listing(b) is not None})
        hints.append(f"`fusion models --endpoint {endpoints[0]}` lists every model.")
        raise ConfigError(
            f"unknown model{'s' if len(problems) > 1 else ''}: {', '.join(problems)}",
            hint=" ".join(hints),
        )
