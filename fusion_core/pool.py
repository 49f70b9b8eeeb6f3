"""Fan one request out to every pool member at once and collect what comes back.

Every member starts together (subject to a concurrency cap), streams its
deltas as events, and ends as ok, failed or cancelled. A failure never stops
the others. With a quorum, the round ends as soon as that many members have
succeeded and the stragglers are cancelled, keeping what they had sent.
A member's timeout counts its work, not its wait: a backend that queues
requests on a shared model says when it queues and when the work starts
(``Chunk.queued``, ``Chunk.started``); the deadline pauses in between.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fusion_core.backends.base import Backend, ChatRequest, Chunk, Reply, consume
from fusion_core.errors import BackendError, BackendTimeout, BadResponse, FusionError, InternalError
from fusion_core.events import (
    CandidateCancelled,
    CandidateDelta,
    CandidateFailed,
    CandidateFinished,
    CandidateStarted,
    Event,
)
from fusion_core.result import Candidate, CandidateStatus, ErrorInfo

DEFAULT_MAX_CONCURRENCY = 8

Emit = Callable[[Event], None]
Clock = Callable[[], float]


@dataclass(frozen=True)
class Job:
    """One member's request in one round."""

    member: str
    label: str
    backend: Backend
    request: ChatRequest


def error_info(exc: FusionError) -> ErrorInfo:
    """The user-facing description of an error."""
    status = exc.status if isinstance(exc, BackendError) else None
    return ErrorInfo(kind=exc.kind, message=exc.message, status=status, hint=exc.hint)


async def run_round(
    jobs: Sequence[Job],
    *,
    emit: Emit,
    round_number: int = 1,
    quorum: int | None = None,
    timeout_s: float,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    clock: Clock = time.perf_counter,
) -> list[Candidate]:
    """Run every job concurrently; return one Candidate per job, in job order."""
    gate = asyncio.Semaphore(max_concurrency)
    results: dict[int, Candidate] = {}
    quorum_met = asyncio.Event()
    successes = 0

    async def one(index: int, job: Job) -> None:
        nonlocal successes
        try:
            async with gate:
                results[index] = await _run_job(job, emit, round_number, timeout_s, clock)
        except _Cancelled as exc:
            results[index] = exc.candidate
            raise
        if results[index].ok:
            successes += 1
            if quorum is not None and successes >= quorum:
                quorum_met.set()

    tasks = [asyncio.create_task(one(i, job)) for i, job in enumerate(jobs)]
    everyone: asyncio.Future[Any] = asyncio.gather(*tasks, return_exceptions=True)
    try:
        if quorum is None:
            await everyone
        else:
            waiter: asyncio.Future[Any] = asyncio.ensure_future(quorum_met.wait())
            await asyncio.wait([waiter, everyone], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(everyone, return_exceptions=True)
    return [results.get(i) or _never_started(job, round_number, emit) for i, job in enumerate(jobs)]


def _never_started(job: Job, round_number: int, emit: Emit) -> Candidate:
    # Cancelled while waiting for a concurrency slot.
    emit(CandidateCancelled(model=job.member, text="", latency_s=0.0, round=round_number))
    return Candidate(model=job.member, label=job.label, status="cancelled", latency_s=0.0, round=round_number)


async def _run_job(job: Job, emit: Emit, round_number: int, timeout_s: float, clock: Clock) -> Candidate:
    """Stream one job to the end. Failures become a failed Candidate; cancellation
    raises :class:`_Cancelled` carrying the partial candidate."""
    started = clock()
    reply = Reply()
    emit(CandidateStarted(model=job.member, label=job.label, round=round_number))

    def candidate(status: CandidateStatus, error: ErrorInfo | None = None) -> Candidate:
        return Candidate(
            model=job.member,
            label=job.label,
            status=status,
            text=reply.text,
            error=error,
            latency_s=clock() - started,
            usage=reply.usage,
            round=round_number,
            finish_reason=reply.finish_reason,
        )

    def failed(exc: FusionError) -> Candidate:
        result = candidate("failed", error_info(exc))
        emit(
            CandidateFailed(
                model=job.member,
                error=error_info(exc),
                latency_s=result.latency_s or 0.0,
                text=result.text,
                round=round_number,
            )
        )
        return result

    try:
        async with asyncio.timeout(timeout_s) as deadline:

            def take(chunk: Chunk) -> None:
                # The wait for a shared model is not the member's work: pause the clock.
                if chunk.queued:
                    deadline.reschedule(None)
                if chunk.started:
                    deadline.reschedule(asyncio.get_running_loop().time() + timeout_s)
                if chunk.text:
                    emit(CandidateDelta(model=job.member, text=chunk.text, round=round_number))

            await consume(job.backend, job.request, reply=reply, on_chunk=take)
    except asyncio.CancelledError:
        result = candidate("cancelled")
        emit(
            CandidateCancelled(
                model=job.member, text=result.text, latency_s=result.latency_s or 0.0, round=round_number
            )
        )
        raise _Cancelled(result) from None
    except TimeoutError:
        return failed(
            BackendTimeout(f"{job.member}: no complete answer within {timeout_s:g} s", model=job.request.model)
        )
    except FusionError as exc:
        return failed(exc)
    except Exception as exc:  # a backend bug must cost one candidate, not the whole run
        return failed(InternalError(f"{job.member}: {type(exc).__name__}: {exc}", model=job.request.model))
    if not reply.text.strip():
        return failed(BadResponse(f"{job.member} returned an empty answer", model=job.request.model))
    result = candidate("ok")
    emit(
        CandidateFinished(
            model=job.member,
            text=result.text,
            usage=reply.usage,
            latency_s=result.latency_s or 0.0,
            round=round_number,
            finish_reason=reply.finish_reason,
        )
    )
    return result


class _Cancelled(asyncio.CancelledError):
    """A cancellation that carries the candidate's partial result."""

    def __init__(self, candidate: Candidate) -> None:
        super().__init__()
        self.candidate = candidate
