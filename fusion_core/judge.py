"""Running the judge: an LLM judge reading framed candidates (the likelihood and execution
judges live in :mod:`fusion_core.judges`).

The LLM judge is one more backend call. Its reply is untrusted: it is parsed
leniently, checked against the mode's schema, and repaired with one follow-up
request if needed. If that fails too, the run keeps every candidate and
reports ``judge_failed``; it never crashes.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fusion_core.backends.base import Backend, ChatRequest, Chunk, Message, Scorer, consume
from fusion_core.backends.openai_http import DEFAULT_TIMEOUT_S
from fusion_core.errors import BackendError, BackendTimeout, FusionError, InternalError, JudgeError
from fusion_core.events import Event, JudgeDelta, JudgeStarted
from fusion_core.framing import Labeled, extract_json_object, judge_messages, repair_messages
from fusion_core.judges.likelihood import judge_by_likelihood
from fusion_core.modes.base import Mode, Verdict, VerdictFormatError
from fusion_core.modes.best_of import combine_swapped
from fusion_core.pool import error_info
from fusion_core.result import Candidate, JudgeOutcome
from fusion_core.usage import Pricing, Usage

# Judges write JSON with an answer inside it; give them room for a full answer.
DEFAULT_JUDGE_MAX_TOKENS = 4096

__all__ = ["DEFAULT_JUDGE_MAX_TOKENS", "JudgeCall", "Scorer", "judge_by_likelihood", "judge_with_llm", "name_labels"]

Emit = Callable[[Event], None]


@dataclass(frozen=True)
class JudgeCall:
    """Everything the LLM judge needs besides the candidates."""

    name: str
    backend: Backend
    model: str
    mode: Mode
    question: str
    nonce: str
    use_json_schema: bool
    temperature: float | None = 0.0
    max_tokens: int | None = DEFAULT_JUDGE_MAX_TOKENS
    system: str | None = None
    pricing: Pricing | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    # Measured facts about candidates by label (execution results), framed as untrusted data.
    facts: tuple[tuple[str, str], ...] = ()


async def judge_with_llm(
    call: JudgeCall, candidates: Sequence[Candidate], *, swap: bool, emit: Emit
) -> tuple[Verdict | None, JudgeOutcome]:
    """Ask the judge (twice, in reversed order, with ``swap``) and read its verdict."""
    texts = {c.label: c.text for c in candidates}
    models = {c.label: c.model for c in candidates}
    ordered = sorted(candidates, key=lambda c: (len(c.label), c.label))
    orders = [ordered, list(reversed(ordered))] if swap and len(ordered) > 1 else [ordered]
    usage = Usage()
    replies: list[str] = []
    finishes: list[str | None] = []  # each reply's finish reason, to report a cut-off judge
    verdicts: list[Verdict] = []
    try:
        for order in orders:
            verdict, spent, raw = await _judge_once(call, order, texts, models, emit, finishes)
            usage, replies = usage + spent, replies + raw
            verdicts.append(verdict)
    except _JudgeFailed as exc:
        return None, _outcome(call, usage + exc.usage, replies + exc.replies, finishes, error=exc)
    except BackendError as exc:
        return None, _outcome(call, usage, replies, finishes, error=exc)
    except Exception as exc:  # a backend bug must not lose the candidates
        error = InternalError(f"judge {call.name}: {type(exc).__name__}: {exc}", model=call.model)
        return None, _outcome(call, usage, replies, finishes, error=error)
    verdicts = [replace(v, rationale=name_labels(v.rationale, models)) for v in verdicts]
    verdict = verdicts[0]
    if len(verdicts) == 2:
        verdict = combine_swapped(verdicts[0], verdicts[1], {c.model: c.text for c in candidates})
    return verdict, _outcome(call, usage, replies, finishes, verdict=verdict)


def name_labels(text: str, models: dict[str, str]) -> str:
    """Spell out which model a label stands for: "Candidate B" → "Candidate B (openai/gpt-4o)"."""

    def named(match: re.Match[str]) -> str:
        model = models.get(match.group(2))
        return f"{match.group(0)} ({model})" if model else match.group(0)

    return _LABEL_MENTION.sub(named, text)


_LABEL_MENTION = re.compile(r"\b([Cc]andidates?|[Aa]nswer) ([A-Z]{1,2})\b(?! \()")


class _JudgeFailed(JudgeError):
    def __init__(self, message: str, usage: Usage, replies: list[str]) -> None:
        super().__init__(message)
        self.usage = usage
        self.replies = replies


async def _judge_once(
    call: JudgeCall,
    order: Sequence[Candidate],
    texts: dict[str, str],
    models: dict[str, str],
    emit: Emit,
    finishes: list[str | None],
) -> tuple[Verdict, Usage, list[str]]:
    labels = [c.label for c in order]
    schema = call.mode.schema(labels)
    messages = judge_messages(
        instructions=call.mode.instructions,
        question=call.question,
        candidates=[Labeled(c.label, c.text) for c in order],
        nonce=call.nonce,
        schema_name=call.mode.schema_name,
        schema=schema,
        system=call.system,
        facts=[Labeled(label, text) for label, text in call.facts if label in labels],
    )
    usage = Usage()
    replies: list[str] = []
    for attempt in (1, 2):
        emit(JudgeStarted(model=call.name, attempt=attempt))
        reply, spent = await _ask(call, messages, schema, emit, finishes)
        usage, replies = usage + spent, replies + [reply]
        try:
            return _read(call.mode, reply, texts, models), usage, replies
        except VerdictFormatError as exc:
            problem = str(exc)
        messages = repair_messages(messages, reply, problem, schema)
    raise _JudgeFailed(f"the judge {call.name} answered off-format twice ({problem})", usage, replies)


async def _ask(
    call: JudgeCall, messages: Sequence[Message], schema: dict[str, Any], emit: Emit, finishes: list[str | None]
) -> tuple[str, Usage]:
    request = ChatRequest(
        model=call.model,
        messages=tuple(messages),
        temperature=call.temperature,
        max_tokens=call.max_tokens,
        json_schema={"name": call.mode.schema_name, "schema": schema} if call.use_json_schema else None,
    )

    def take(chunk: Chunk) -> None:
        if chunk.text:
            emit(JudgeDelta(text=chunk.text))

    try:
        async with asyncio.timeout(call.timeout_s):
            reply = await consume(call.backend, request, on_chunk=take)
    except TimeoutError:
        raise BackendTimeout(
            f"the judge {call.name} gave no complete verdict within {call.timeout_s:g} s", model=call.model
        ) from None
    finishes.append(reply.finish_reason)
    return reply.text, reply.usage.with_estimated_cost(call.pricing)


def _read(mode: Mode, reply: str, texts: dict[str, str], models: dict[str, str]) -> Verdict:
    data = extract_json_object(reply)
    if data is None:
        raise VerdictFormatError("it contains no JSON object")
    return mode.read(data, texts, models)


def _outcome(
    call: JudgeCall,
    usage: Usage,
    replies: list[str],
    finishes: list[str | None],
    *,
    verdict: Verdict | None = None,
    error: FusionError | None = None,
) -> JudgeOutcome:
    return JudgeOutcome(
        model=call.name,
        rationale=verdict.rationale if verdict else "",
        verdict=verdict.details if verdict else None,
        usage=usage,
        error=error_info(error) if error else None,
        raw_replies=tuple(replies),
        # A reply cut off at max_tokens is the likeliest reason for an off-format verdict.
        finish_reason="length" if "length" in finishes else (finishes[-1] if finishes else None),
    )
