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

# The optional catalogue gets at most this long (and never more than --timeout): it is read
# before the pool starts, so a hanging one must not add a full --timeout to every run.
CATALOG_TIMEOUT_S = 10.0
UNAVAILABLE = "model catalogue unavailable"


@dataclass
class Catalog:
    """Each endpoint's listing, keyed by backend, and a notice if some could not be read."""

    listings: dict[int, dict[str, ModelInfo]] = field(default_factory=dict)
    notices: tuple[str, ...] = ()

    def listing(self, backend: Backend) -> dict[str, ModelInfo] | None:
        """The backend's catalogue, or None when it has none or it could not be read."""
        return self.listings.get(id(backend))

    def info(self, backend: Backend, model: str) -> ModelInfo | None:
        """The entry for ``model``; an OpenRouter variant (``:nitro``) falls back to its base model."""
        return _find(self.listings.get(id(backend), {}), model)


async def read_catalog(used: Sequence[tuple[Backend, str]], timeout_s: float) -> Catalog:
    """The catalogue of every endpoint among ``used`` (backend, model id) pairs, read concurrently.

    Each gets at most ``min(timeout_s, CATALOG_TIMEOUT_S)``. A listing cached by the
    session is refreshed once when it lacks a wanted id: the endpoint may have
    started serving that model since. On any problem the run goes on without that
    catalogue, with one notice.
    """
    backends = [b for b in {id(b): b for b, _ in used}.values() if isinstance(b, ModelCatalog)]
    limit_s = min(timeout_s, CATALOG_TIMEOUT_S)

    async def fetch(backend: Backend) -> dict[str, ModelInfo]:
        assert isinstance(backend, ModelCatalog)
        wanted = {model for b, model in used if b is backend}
        async with asyncio.timeout(limit_s):
            listing = {info.id: info for info in await backend.list_models()}
            if any(_find(listing, model) is None for model in wanted):
                listing = {info.id: info for info in await backend.list_models(refresh=True)}
        return listing

    outcomes = await asyncio.gather(*(fetch(b) for b in backends), return_exceptions=True)
    catalog = Catalog()
    problems: list[str] = []
    for backend, outcome in zip(backends, outcomes, strict=True):
        if isinstance(outcome, dict):
            catalog.listings[id(backend)] = outcome
        elif isinstance(outcome, TimeoutError):
            problems.append(f"{backend.name}: no answer within {limit_s:g} s")
        elif isinstance(outcome, FusionError):
            problems.append(f"{backend.name}: {outcome.message}")
        elif isinstance(outcome, Exception):  # a catalogue plugin's bug must not end the run
            problems.append(f"{backend.name}: {type(outcome).__name__}")
        else:
            raise outcome
    if problems:
        catalog.notices = (
            f"{UNAVAILABLE} ({'; '.join(problems)}); going on without list prices, "
            "model-name checks and structured-output support",
        )
    return catalog


def _find(listing: dict[str, ModelInfo], model: str) -> ModelInfo | None:
    return listing.get(model) or listing.get(model.rpartition(":")[0])


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
