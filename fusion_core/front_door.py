"""The calls a script, a notebook or an editor makes on a Fusion session, sync and async.

The engine (:mod:`fusion_core.engine`) has one way to run a prompt: the event
stream. This is the front door around it, the same for every caller::

    with Fusion.from_config() as fusion:          # fusion.toml, else the built-in pool
        result = fusion.run("Why is the sky blue?")
        review = fusion.review(ReviewTarget(code, path="app.py"), ReviewSettings(pool=(...)))
        completion = fusion.complete(CompletionContext(prefix), CompletionSettings(pool=(...)))

Each call has an async twin (``arun``, ``areview``, ``acomplete``; ``stream``
for live events) and ``async with`` closes the session from async code. The
synchronous calls run on the session's own background loop
(:class:`fusion_core.sync.SyncPortal`), so they also work where a loop is
already running (Jupyter, pygls). Leaving the ``with`` block, or ``close()``,
closes the session's HTTP clients, stops that loop and unloads the local models
it loaded (unless another open session uses them); a session used without
``with`` keeps its loop until ``close()`` or interpreter exit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Self

from fusion_core.config import Config
from fusion_core.events import Event, RunFinished
from fusion_core.result import FusionResult
from fusion_core.specs import BackendResolver
from fusion_core.sync import SyncPortal, collect_result

if TYPE_CHECKING:
    from fusion_core.completion import CompletionContext, CompletionOutcome, CompletionSettings
    from fusion_core.engine import Fusion, RunSettings
    from fusion_core.review import ReviewOutcome, ReviewSettings, ReviewTarget

__all__ = ["FrontDoor"]


class FrontDoor:
    """run / review / complete, their async twins, and the session's lifetime (see the module doc)."""

    config: Config
    resolver: BackendResolver
    _env: Mapping[str, str]
    _sync: SyncPortal

    def stream(self, prompt: str, settings: RunSettings | None = None) -> AsyncIterator[Event]:
        """Run a fusion, yielding events; the last event is always RunFinished."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close what the session opened on the running loop."""
        raise NotImplementedError

    def _engine(self) -> Fusion:
        from fusion_core.engine import Fusion

        assert isinstance(self, Fusion)
        return self

    def default_settings(self) -> RunSettings:
        """What ``run(prompt)`` runs: fusion.toml's default pool, else the built-in one.

        The same resolution as ``fusion run`` with no flags: with no key the built-in pool is
        the embedded local model.
        """
        from fusion_core.options import RunOptions, resolve_settings

        options = RunOptions(local_only=True) if self.resolver.local_only else RunOptions()
        return resolve_settings(options, self.config, self._env).settings

    # -- runs -------------------------------------------------------------------------

    def run(self, prompt: str, settings: RunSettings | None = None) -> FusionResult:
        """Run to the end from synchronous code, even inside a running event loop."""
        return collect_result(self.iter_events(prompt, settings))

    async def arun(self, prompt: str, settings: RunSettings | None = None) -> FusionResult:
        """Run to the end and return the result."""
        result: FusionResult | None = None
        async for event in self.stream(prompt, settings):
            if isinstance(event, RunFinished):
                result = event.result
        assert result is not None  # stream() always ends with RunFinished
        return result

    def iter_events(self, prompt: str, settings: RunSettings | None = None) -> Iterator[Event]:
        """The event stream, consumed from synchronous code; closing it cancels the run."""
        return self._sync.iter_events(lambda: self.stream(prompt, settings))

    # -- review and completion --------------------------------------------------------

    async def areview(self, target: ReviewTarget, settings: ReviewSettings) -> ReviewOutcome:
        """Review ``target`` with the settings' pool of models and analysers; merged findings."""
        from fusion_core.review import review

        return await review(self._engine(), target, settings)

    def review(self, target: ReviewTarget, settings: ReviewSettings) -> ReviewOutcome:
        """:meth:`areview` from synchronous code."""
        return self._sync.call(lambda: self.areview(target, settings))

    async def acomplete(self, context: CompletionContext, settings: CompletionSettings) -> CompletionOutcome:
        """Fused code completion at the cursor: ranked suggestions by agreement."""
        from fusion_core.completion import fused_completion

        return await fused_completion(self._engine(), context, settings)

    def complete(self, context: CompletionContext, settings: CompletionSettings) -> CompletionOutcome:
        """:meth:`acomplete` from synchronous code."""
        return self._sync.call(lambda: self.acomplete(context, settings))

    # -- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        """End the session: close its connections, stop its loop thread, unload its local models.

        A local model another open session still uses stays loaded.
        """
        try:
            self._sync.close(self.aclose)
        finally:
            self.resolver.release_local()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
        self.close()  # a sync call made from async code started the background loop too
