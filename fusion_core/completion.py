"""Fused code completion: several models continue the code, agreement ranks their suggestions.

Latency matters more than depth here, so there is no judge call by default.
The completion pool is asked at once; the round stops at a deadline (default
1.5 s) or once a quorum has answered, and stragglers are cancelled (their HTTP
connections closed, llama.cpp stopped at the next token). What they had sent
by then still counts: its complete lines, or, while it is still writing its
first line, that line up to its last whole word. Candidates are
ranked by agreement: identical suggestions pool their models, and suggestions
that begin the same way support each other. With a ``likelihood:`` judge (a
local model), candidates are ranked by its log-probability instead.

Base models (like the embedded Gemma 3 270M) get the code before the cursor as
a document to continue; chat models get the code around the cursor framed as
data, with the cursor marked.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fusion_core.backends.base import Backend, ChatRequest, InstructAware, Message, Scorer
from fusion_core.errors import BackendError, ConfigError
from fusion_core.events import Event, Notice
from fusion_core.framing import DATA_NOTICE, block, new_nonce
from fusion_core.models import expand_pool, is_local_spec, split_judge_spec
from fusion_core.pool import DEFAULT_MAX_CONCURRENCY, Job, run_round
from fusion_core.redaction import redact_code, wire_text
from fusion_core.result import Candidate
from fusion_core.review import check_cost

__all__ = [
    "CompletionContext",
    "CompletionOutcome",
    "CompletionSettings",
    "RankedCompletion",
    "clean_completion",
    "completion_messages",
    "follows_instructions",
    "fused_completion",
    "rank_completions",
]

DEFAULT_DEADLINE_S = 1.5
DEFAULT_COMPLETION_MAX_TOKENS = 64
DEFAULT_COMPLETION_TEMPERATURE = 0.2
MAX_PREFIX_CHARS = 4000
MAX_SUFFIX_CHARS = 1000
MAX_COMPLETION_LINES = 8
MAX_ITEMS = 5
# A base model stops where a new top-level block starts (the backend adds its own stops too).
BASE_STOPS = ("\n\n\n",)
CURSOR = "<|cursor|>"

INSTRUCTIONS = (
    "You are a code completion engine. The user message holds a file with the cursor marked "
    f"{CURSOR}. Reply with only the text to insert at the cursor: usually the rest of the line, "
    "or a few lines that complete the current statement or block. No explanation, no code "
    "fence, no repetition of the text before or after the cursor."
)

Emit = Callable[[Event], None]
_TOKEN = re.compile(r"\w+|[^\w\s]")
_FENCE = re.compile(r"^\s*```[\w+-]*\n(.*?)(?:\n```\s*)?$", re.DOTALL)


@dataclass(frozen=True)
class CompletionContext:
    """The code around the cursor."""

    prefix: str
    suffix: str = ""
    path: str = ""
    language: str = ""


@dataclass(frozen=True)
class CompletionSettings:
    """How to run one fused completion. ``judge`` may be ``likelihood:local/...``, else it is unused."""

    pool: tuple[str, ...]
    deadline_s: float = DEFAULT_DEADLINE_S
    quorum: int | None = None
    max_tokens: int = DEFAULT_COMPLETION_MAX_TOKENS
    temperature: float | None = DEFAULT_COMPLETION_TEMPERATURE
    judge: str | None = None
    cost_cap_usd: float | None = None
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY


@dataclass(frozen=True)
class RankedCompletion:
    """One suggestion, the models that made it, and how strongly the pool backs it."""

    text: str
    models: tuple[str, ...]
    support: float
    likelihood: float | None = None

    @property
    def agreement(self) -> int:
        return len(self.models)


@dataclass(frozen=True)
class CompletionOutcome:
    """Ranked suggestions (best first) and each model's candidate."""

    items: tuple[RankedCompletion, ...]
    candidates: tuple[Candidate, ...] = ()
    elapsed_s: float = 0.0
    responders: int = 0
    failures: dict[str, str] = field(default_factory=dict)


def completion_messages(context: CompletionContext, *, base_model: bool, nonce: str) -> tuple[Message, ...]:
    """The prompt for one model: the bare prefix for a base model, framed code for a chat model."""
    prefix = context.prefix[-MAX_PREFIX_CHARS:]
    if base_model:
        return (Message("user", prefix),)
    suffix = context.suffix[:MAX_SUFFIX_CHARS]
    header = f"File: {context.path or 'untitled'}" + (f" ({context.language})" if context.language else "")
    user = "\n\n".join(
        [DATA_NOTICE.format(nonce=nonce), header, block("code", "FILE", prefix + CURSOR + suffix, nonce)]
    )
    return (Message("system", INSTRUCTIONS), Message("user", user))


def clean_completion(text: str, context: CompletionContext, *, partial: bool = False) -> str:
    """A model's reply as text to insert: no fence, no echo of the current line, at most a few lines.

    A ``partial`` reply (cut off at the deadline) keeps its complete lines; if it has none yet,
    the line it was writing, up to its last whole word (the last token may be half a word).
    """
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    if partial:
        text = _cut_partial(text)
    text = text.replace(CURSOR, "")
    current = context.prefix[context.prefix.rfind("\n") + 1 :]
    # Chat models like to repeat the start of the line before continuing it.
    if current.strip() and text.lstrip().startswith(current.strip()):
        text = text.lstrip()[len(current.strip()) :]
        if current[-1:].isspace():
            text = text.lstrip(" \t")
    lines = text.split("\n")[:MAX_COMPLETION_LINES]
    text = "\n".join(lines).rstrip()
    following = next((line.strip() for line in context.suffix.split("\n") if line.strip()), "")
    if following and text.endswith(following):
        text = text[: -len(following)].rstrip()
    return text


def _cut_partial(text: str) -> str:
    """A reply cut off mid-stream, back to its last line break, or to its first line's last whole word."""
    body = text.lstrip("\n")
    lead = text[: len(text) - len(body)]
    if "\n" in body:
        return text[: text.rfind("\n") + 1]
    if body[-1:].isspace():  # the model had just finished a word
        return lead + body.rstrip()
    cut = max(body.rfind(" "), body.rfind("\t"))
    return lead + body[:cut].rstrip() if cut > 0 else ""


def rank_completions(texts: dict[str, str], order: Sequence[str] = ()) -> list[RankedCompletion]:
    """Rank suggestions by agreement: exact matches pool their models, shared beginnings support.

    ``order`` (pool order) breaks ties, so the result is deterministic.
    """
    groups: dict[str, tuple[str, list[str]]] = {}
    for model, text in texts.items():
        key = " ".join(text.split())
        if not key:
            continue
        groups.setdefault(key, (text, []))[1].append(model)
    position = {m: i for i, m in enumerate(order)}
    ranked = []
    for key, (text, models) in groups.items():
        support = float(len(models))
        for other_key, (_, other_models) in groups.items():
            if other_key != key:
                support += len(other_models) * _shared_start(key, other_key)
        ranked.append(RankedCompletion(text=text, models=tuple(sorted(models)), support=round(support, 4)))
    ranked.sort(key=lambda r: (-r.support, -r.agreement, min(position.get(m, 1 << 20) for m in r.models), len(r.text)))
    return ranked


def _shared_start(a: str, b: str) -> float:
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    if not ta or not tb:
        return 0.0
    n = 0
    for x, y in zip(ta, tb, strict=False):
        if x != y:
            break
        n += 1
    return n / max(len(ta), len(tb))


async def fused_completion(
    fusion: Any,
    context: CompletionContext,
    settings: CompletionSettings,
    *,
    emit: Emit | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> CompletionOutcome:
    """Ask the completion pool, stop at the deadline or quorum, and rank the suggestions.

    ``fusion`` is a :class:`fusion_core.engine.Fusion`. Cancelling the call cancels
    every model at once.
    """
    started = clock()
    members = expand_pool(settings.pool)
    if settings.quorum is not None and not 1 <= settings.quorum <= len(members):
        raise ConfigError(f"the completion quorum must be 1..{len(members)}")
    fusion.resolver.check_egress([m.spec for m in members])
    context = CompletionContext(
        prefix=wire_text(context.prefix[-MAX_PREFIX_CHARS:]),
        suffix=wire_text(context.suffix[:MAX_SUFFIX_CHARS]),
        path=context.path,
        language=context.language,
    )
    nonce = new_nonce()
    # One redaction over both halves, so placeholder numbers are unique; no secret spans a line break.
    separator = f"\n{nonce}\n"
    redaction = redact_code(context.prefix + separator + context.suffix)
    redacted_prefix, _, redacted_suffix = redaction.text.partition(separator)
    remote_context = CompletionContext(redacted_prefix, redacted_suffix, context.path, context.language)
    if redaction.count and any(not is_local_spec(m.spec) for m in members) and emit is not None:
        emit(Notice(message=f"redacted {redaction.summary()} before sending code to remote models"))
    jobs = []
    for member in members:
        backend, model = fusion.resolver.resolve(member.spec)
        local = is_local_spec(member.spec)
        base = local and not await follows_instructions(backend)
        messages = completion_messages(context if local else remote_context, base_model=base, nonce=nonce)
        temperature = member.temperature if member.temperature is not None else settings.temperature
        jobs.append(
            Job(
                member=member.name,
                label=member.name,
                backend=backend,
                request=ChatRequest(
                    model=model,
                    messages=messages,
                    temperature=temperature,
                    max_tokens=settings.max_tokens,
                    seed=member.seed,
                    stop=BASE_STOPS if base else (),
                ),
            )
        )
    if settings.cost_cap_usd is not None:
        await check_cost(jobs, settings.cost_cap_usd)
    remaining = max(settings.deadline_s - (clock() - started), 0.01)
    candidates = await run_round(
        jobs,
        emit=emit or _ignore,
        quorum=settings.quorum,
        timeout_s=remaining,
        max_concurrency=settings.max_concurrency,
        clock=clock,
    )
    texts: dict[str, str] = {}
    failures: dict[str, str] = {}
    local_names = {m.name for m in members if is_local_spec(m.spec)}
    for cand in candidates:
        partial = not cand.ok
        if cand.status == "failed" and (cand.error is None or cand.error.kind != "timeout"):
            failures[cand.model] = cand.error.message if cand.error else "failed"
            continue
        text = cand.text if cand.model in local_names else redaction.restore(cand.text)
        cleaned = clean_completion(text, context, partial=partial)
        if cleaned.strip():
            texts[cand.model] = cleaned
    ranked = rank_completions(texts, [m.name for m in members])[:MAX_ITEMS]
    if settings.judge and len(ranked) > 1:
        ranked = await _by_likelihood(fusion, settings.judge, context, ranked)
    return CompletionOutcome(
        items=tuple(ranked),
        candidates=tuple(candidates),
        elapsed_s=clock() - started,
        responders=len(texts),
        failures=failures,
    )


async def _by_likelihood(
    fusion: Any, judge: str, context: CompletionContext, ranked: list[RankedCompletion]
) -> list[RankedCompletion]:
    spec, likelihood = split_judge_spec(judge)
    if not likelihood:
        return ranked  # an LLM judge would cost a round trip; completion ranks by agreement
    scorer, _ = fusion.resolver.resolve(spec)
    if not isinstance(scorer, Scorer):
        raise ConfigError(f"{spec} cannot score completions", hint="Use likelihood:local/... as the judge.")
    try:
        scores = await scorer.score(context.prefix, [r.text for r in ranked])
    except BackendError:
        return ranked
    scored = [RankedCompletion(r.text, r.models, r.support, round(s, 4)) for r, s in zip(ranked, scores, strict=True)]
    return sorted(scored, key=lambda r: (-(r.likelihood or float("-inf")), -r.support))


async def follows_instructions(backend: Backend) -> bool:
    """Whether a backend's model follows instructions (remote chat models do; a local base model does not)."""
    if not isinstance(backend, InstructAware):
        return True
    try:
        return await backend.is_instruct()
    except BackendError:
        return True


def _ignore(event: Event) -> None:
    return None
