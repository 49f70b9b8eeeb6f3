"""The ``fusion`` model provider for inspect_ai: any inspect task can evaluate a pool.

Registered through the ``inspect_ai`` entry point (see :mod:`fusion_core.eval._registry`)::

    inspect eval task.py --model fusion/@review -M mode=merge
    inspect eval task.py --model fusion/local/gemma-3-270m*5 -M judge=likelihood:local/gemma-3-270m
    inspect eval task.py --model fusion/openai/gpt-4o           # one member alone

The model name is a pool: ``@name`` of a configured pool, or model specs joined by
``+`` (inspect splits ``--model`` at commas; from Python, commas work too). A pool
of one model, or ``-M member=NAME`` (e.g. ``local/gemma-3-270m#2``), runs that
member alone through the same pool runner and backends as a fused run, with no
judge, so costs and latencies compare fairly. Other ``-M`` arguments: ``mode``,
``judge``, ``timeout``, ``config`` (a fusion.toml), ``local_only``, ``max_cost``.

inspect's ``GenerateConfig`` maps onto :class:`RunSettings`: ``temperature``,
``max_tokens`` and ``seed`` (a seed fixes the label shuffle; samples keep their
own seeds). The output is the fused answer with usage (tokens and cost) and,
in ``metadata["fusion"]``, the whole :class:`FusionResult`: every candidate,
the verdict and the cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from inspect_ai.model import (
    ChatMessage,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
)
from inspect_ai.tool import ToolChoice, ToolInfo

from fusion_core.backends.base import Message, ModelCatalog
from fusion_core.config import Config, load_config
from fusion_core.engine import Fusion, RunSettings, member_request
from fusion_core.errors import ConfigError, FusionError
from fusion_core.events import Event
from fusion_core.options import default_pool, resolve_pool
from fusion_core.pool import Job, run_round
from fusion_core.result import Candidate, FusionResult
from fusion_core.specs import expand_pool, is_local_spec
from fusion_core.usage import Usage

__all__ = ["BudgetReached", "FusionModelAPI", "budget_for", "pool_settings"]

METADATA_KEY = "fusion"
# Local models share one CPU: several samples at once only slow each other down.
LOCAL_CONNECTIONS = 1
REMOTE_CONNECTIONS = 4
SINGLE_MODE = "single"


class BudgetReached(FusionError):
    """Spending in this evaluation reached ``max_cost``; the remaining samples are not run."""

    kind = "budget_reached"


@dataclass
class Budget:
    """Money spent by every provider of one evaluation, shared across threads."""

    limit_usd: float | None
    spent_usd: float = 0.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def check(self) -> None:
        with self._lock:
            if self.limit_usd is not None and self.spent_usd >= self.limit_usd:
                raise BudgetReached(
                    f"spending reached --max-cost ${self.limit_usd:.4f} (spent ${self.spent_usd:.4f})",
                    hint="Raise --max-cost and run again: finished samples come from the cache.",
                )

    def add(self, usage: Usage) -> None:
        with self._lock:
            self.spent_usd += usage.cost or 0.0


_BUDGETS: dict[str, Budget] = {}
# One local run at a time per event loop: inspect's adaptive concurrency ignores
# max_connections(), and samples racing for one CPU would each take N times longer.
_LOCAL_LOCKS: dict[int, asyncio.Lock] = {}


def _local_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _LOCAL_LOCKS.get(id(loop))
    if lock is None:
        lock = _LOCAL_LOCKS[id(loop)] = asyncio.Lock()
    return lock


def budget_for(key: str, limit_usd: float | None) -> Budget:
    """The shared budget called ``key`` (created on first use)."""
    budget = _BUDGETS.get(key)
    if budget is None:
        budget = _BUDGETS[key] = Budget(limit_usd)
    return budget


def pool_settings(name: str, config: Config, env: dict[str, str], **overrides: Any) -> RunSettings:
    """RunSettings for a pool named like an inspect model: ``@pool`` or specs joined by ``+`` or ``,``."""
    name = name.strip()
    if name.startswith("@"):
        pool = resolve_pool(name[1:], config, env)
        models, judge, mode = pool.models, pool.judge, pool.mode
        extra: dict[str, Any] = {"max_tokens": pool.max_tokens, "temperature": pool.temperature, "system": pool.system}
    else:
        models = tuple(p.strip() for p in name.replace("+", ",").split(",") if p.strip())
        judge, mode, extra = None, None, {}
    local = all(is_local_spec(m.split("*")[0]) for m in models)
    fallback = default_pool(env, local_only=local)
    settings = RunSettings(
        pool=models,
        judge=judge or fallback.judge or "",
        mode=mode or fallback.mode or "best-of",
        **{k: v for k, v in extra.items() if v is not None},
    )
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    settings.validate()
    return settings


class FusionModelAPI(ModelAPI):
    """inspect's view of a Fusion pool (or of one member of it)."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig | None = None,
        **model_args: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config or GenerateConfig())
        args = dict(model_args)
        path = args.pop("config", None)
        fusion_config = load_config(Path(path) if path else None)
        env = dict(os.environ)
        self.member: str | None = args.pop("member", None)
        budget_key = str(args.pop("budget", "default"))
        max_cost = args.pop("max_cost", None)
        self.budget = budget_for(budget_key, float(max_cost) if max_cost is not None else None)
        local_only = bool(args.pop("local_only", False))
        args.pop("system_label", None)  # only names the system in logs
        timeout = args.pop("timeout", None)
        unknown = set(args) - {"mode", "judge"}
        if unknown:
            raise ConfigError(
                f"unknown -M argument(s) for the fusion provider: {', '.join(sorted(unknown))}",
                hint="Use mode, judge, member, timeout, config, local_only or max_cost.",
            )
        self.settings = pool_settings(
            model_name,
            fusion_config,
            env,
            mode=args.get("mode"),
            judge=args.get("judge"),
            timeout_s=float(timeout) if timeout is not None else None,
        )
        members = expand_pool(self.settings.pool)
        if self.member is None and len(members) == 1:
            self.member = members[0].name
        if self.member is not None and self.member not in {m.name for m in members}:
            raise ConfigError(
                f"-M member={self.member} is not in the pool {model_name}",
                hint=f"Members: {', '.join(m.name for m in members)}.",
            )
        self._fusion_config, self._local_only = fusion_config, local_only
        self._fusion = Fusion(fusion_config, local_only=local_only)
        self._seeded: dict[int, Fusion] = {}
        self._local = all(m.is_local for m in members)

    def max_connections(self) -> int:
        return LOCAL_CONNECTIONS if self._local else REMOTE_CONNECTIONS

    def connection_key(self) -> str:
        # Every fusion system of one local pool shares the one CPU the model runs on.
        return "fusion-local" if self._local else f"fusion-{self.model_name}"

    async def aclose(self) -> None:
        for fusion in [self._fusion, *self._seeded.values()]:
            await fusion.aclose()

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        self.budget.check()
        system, prompt = _prompt(input)
        settings = replace(
            self.settings,
            system=system or self.settings.system,
            temperature=config.temperature if config.temperature is not None else self.settings.temperature,
            max_tokens=config.max_tokens if config.max_tokens is not None else self.settings.max_tokens,
        )
        async with _local_lock() if self._local else contextlib.nullcontext():
            if self.member is not None:
                result = await self._alone(self.member, prompt, settings)
            else:
                result = await self._session(config.seed).arun(prompt, settings)
        self.budget.add(result.usage)
        return to_output(self.model_name, result)

    def _session(self, seed: int | None) -> Fusion:
        """A seed fixes the judge's label shuffle; the pool's samples keep their own seeds."""
        if seed is None:
            return self._fusion
        if seed not in self._seeded:
            rng = random.Random(seed)
            self._seeded[seed] = Fusion(self._fusion_config, local_only=self._local_only, rng=rng)
        return self._seeded[seed]

    async def _alone(self, name: str, prompt: str, settings: RunSettings) -> FusionResult:
        """One member alone: the same request, pool runner and backend as inside a fused run."""
        started = time.perf_counter()
        member = next(m for m in expand_pool(settings.pool) if m.name == name)
        self._fusion.preflight(replace(settings, pool=(member.spec,)))
        backend, model = self._fusion.resolver.resolve(member.spec)
        messages = ([Message("system", settings.system)] if settings.system else []) + [Message("user", prompt)]
        request = member_request(settings, member, model, messages)
        job = Job(member=member.name, label="A", backend=backend, request=request)
        [candidate] = await run_round([job], emit=_ignore, timeout_s=settings.timeout_s)
        candidate = await _priced(candidate, backend, model)
        return FusionResult(
            mode=SINGLE_MODE,
            status="ok" if candidate.ok else "all_failed",
            answer=candidate.text if candidate.ok else "",
            candidates=(candidate,),
            judge=None,
            usage=candidate.usage,
            wall_s=time.perf_counter() - started,
        )


def to_output(model_name: str, result: FusionResult) -> ModelOutput:
    """The fused answer as inspect's ModelOutput, with usage and the whole result as metadata."""
    truncated = any(c.truncated and c.text == result.answer for c in result.candidates)
    error = None
    if not result.ok:
        failures = [c.error.message for c in result.candidates if c.error]
        judge_error = result.judge.error.message if result.judge and result.judge.error else ""
        error = f"fusion {result.status}: " + "; ".join(failures + ([judge_error] if judge_error else []))
    output = ModelOutput.from_content(
        model=model_name, content=result.answer, stop_reason="max_tokens" if truncated else "stop"
    )
    usage = result.usage
    output.usage = ModelUsage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        total_cost=usage.cost,
    )
    output.time = result.wall_s
    output.metadata = {METADATA_KEY: result.to_dict(), "fusion_error": error}
    return output


def _prompt(messages: list[ChatMessage]) -> tuple[str | None, str]:
    """(system, prompt): one user message is the prompt itself, exactly as ``fusion run`` gets it."""
    system = "\n\n".join(m.text for m in messages if m.role == "system") or None
    rest = [m for m in messages if m.role != "system"]
    if len(rest) == 1:
        return system, rest[0].text
    return system, "\n\n".join(f"{m.role}: {m.text}" for m in rest)


async def _priced(candidate: Candidate, backend: Any, model: str) -> Candidate:
    """Fill a missing provider cost from list prices, as the engine does for fused runs."""
    if candidate.usage.cost is not None or not isinstance(backend, ModelCatalog):
        return candidate
    try:
        infos = {info.id: info for info in await backend.list_models()}
    except FusionError:
        return candidate
    info = infos.get(model)
    usage = candidate.usage.with_estimated_cost(info.pricing if info else None)
    return replace(candidate, usage=usage)


def _ignore(event: Event) -> None:
    return None
