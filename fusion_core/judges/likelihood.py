"""The likelihood judge: rank candidates by a local model's log-probability, minus penalties for degenerate text.

Mean token log-probability alone rewards repetition: once a line has appeared,
each further copy is nearly certain, so a looping candidate outscores a short
correct one. It also rewards text cut off at ``max_tokens``, which never had
to end well. So each candidate's score is built from visible components:

* ``likelihood``: mean log p(candidate | prompt) under the judge model;
* ``reviewer`` (optional, Coder-Reviewer reranking, Zhang et al. 2022): mean
  log p(prompt | candidate), which rewards candidates that explain the prompt;
* ``repetition``: how much better than fresh code the candidate compresses
  with zlib (0 for fresh text, near 1 for a loop), penalised by
  ``REPETITION_WEIGHT`` times that; the share of repeated word 4-grams and
  scoring only each line's first occurrence are the alternatives
  (``measure=``), which measured slightly worse on the dev set (README "Judges");
* ``truncated``: a flat ``TRUNCATION_PENALTY`` for a candidate that stopped at
  ``max_tokens``, applied only when some candidate finished on its own.

The verdict shows every component for every candidate, not only the total.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from typing import Literal, get_args

from fusion_core.backends.base import Scorer
from fusion_core.errors import FusionError
from fusion_core.events import Event, JudgeStarted
from fusion_core.modes.base import Verdict
from fusion_core.pool import error_info
from fusion_core.result import Candidate, JudgeOutcome
from fusion_core.verdicts import LikelihoodScore, LikelihoodVerdict

__all__ = [
    "REPETITION_MEASURES",
    "LikelihoodScore",
    "RepetitionMeasure",
    "Scorer",
    "compression_repetition",
    "first_occurrences",
    "judge_by_likelihood",
    "likelihood_components",
    "repetition",
    "score_candidates",
]

# Three ways to keep repetition from paying (compared on the dev set, see README "Judges"):
# "ngram" penalises the share of repeated word 4-grams; "zlib" penalises text that compresses
# better than code normally does; "first-lines" scores each distinct line once, no penalty.
RepetitionMeasure = Literal["ngram", "zlib", "first-lines"]
REPETITION_MEASURES: tuple[RepetitionMeasure, ...] = get_args(RepetitionMeasure)
# zlib measured best of the three on examples/evals/code.jsonl, alone and as exec's tie-break.
DEFAULT_REPETITION_MEASURE: RepetitionMeasure = "zlib"

REPETITION_NGRAM = 4
# Per unit of repeated share, in nats per token: a candidate whose 4-grams are half repeats
# loses one nat per token, more than the likelihood gap between a right and a wrong line.
REPETITION_WEIGHT = 2.0
# A cut-off candidate loses to any complete one of comparable likelihood.
TRUNCATION_PENALTY = 1.0
# Repetition is measured on a bounded prefix: the measure is linear, but candidates are untrusted.
MAX_MEASURED_CHARS = 50_000

# Fresh code compresses about 1.5-2x with zlib; a loop of copied lines 5x or more.
ZLIB_TYPICAL_RATIO = 2.0

Emit = Callable[[Event], None]

_WORD = re.compile(r"\w+|[^\w\s]")


def repetition(text: str, n: int = REPETITION_NGRAM) -> float:
    """Share of the word n-grams of ``text`` that repeat an earlier one: 0 for fresh text, near 1 for a loop."""
    words = _WORD.findall(text[:MAX_MEASURED_CHARS])
    if len(words) <= n:
        return 0.0
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)


def compression_repetition(text: str) -> float:
    """How much better than fresh code ``text`` compresses: 0 up to ZLIB_TYPICAL_RATIO, near 1 for a loop."""
    raw = text[:MAX_MEASURED_CHARS].encode()
    if not raw:
        return 0.0
    ratio = len(raw) / len(zlib.compress(raw, 9))
    return max(0.0, 1.0 - ZLIB_TYPICAL_RATIO / ratio)


def first_occurrences(text: str) -> str:
    """``text`` with every repeat of an earlier non-blank line left out (each line is scored once)."""
    seen: set[str] = set()
    kept = []
    for line in text[:MAX_MEASURED_CHARS].splitlines(keepends=True):
        key = line.strip()
        if key and key in seen:
            continue
        seen.add(key)
        kept.append(line)
    return "".join(kept)


def _repeated_lines(text: str) -> float:
    """Share of the non-blank lines of ``text`` that repeat an earlier one."""
    lines = [line.strip() for line in text[:MAX_MEASURED_CHARS].splitlines() if line.strip()]
    return 1.0 - len(set(lines)) / len(lines) if lines else 0.0


def likelihood_components(
    candidates: Sequence[Candidate],
    likelihoods: Sequence[float],
    reviewers: Sequence[float] | None = None,
    measure: RepetitionMeasure = DEFAULT_REPETITION_MEASURE,
) -> list[LikelihoodScore]:
    """Combine the judge model's numbers with the text's own penalties (pure: no model needed).

    With ``first-lines`` the likelihoods were taken on :func:`first_occurrences`: the
    repetition shown is the share of repeated lines, and it costs nothing more.
    """
    any_complete = any(not c.truncated for c in candidates)
    scores = []
    for i, cand in enumerate(candidates):
        if measure == "first-lines":
            rep, penalty = _repeated_lines(cand.text), 0.0
        else:
            rep = compression_repetition(cand.text) if measure == "zlib" else repetition(cand.text)
            penalty = -REPETITION_WEIGHT * rep if rep else 0.0
        scores.append(
            LikelihoodScore(
                likelihood=likelihoods[i],
                reviewer=None if reviewers is None else reviewers[i],
                repetition=rep,
                repetition_penalty=penalty,
                truncation_penalty=-TRUNCATION_PENALTY if cand.truncated and any_complete else 0.0,
            )
        )
    return scores


async def score_candidates(
    scorer: Scorer,
    question: str,
    candidates: Sequence[Candidate],
    *,
    reviewer: bool = False,
    measure: RepetitionMeasure = DEFAULT_REPETITION_MEASURE,
) -> list[LikelihoodScore]:
    """Ask ``scorer`` for each candidate's likelihood (and reviewer score) and add the penalties."""
    texts = [first_occurrences(c.text) if measure == "first-lines" else c.text for c in candidates]
    likelihoods = await scorer.score(question, texts)
    reviewers = None
    if reviewer:
        # log p(prompt | candidate): the candidate becomes the context and the prompt is scored after it.
        reviewers = []
        for cand in candidates:
            if not cand.text.strip():
                reviewers.append(float("-inf"))
                continue
            reviewers.append((await scorer.score(cand.text.rstrip("\n") + "\n", [question]))[0])
    return likelihood_components(candidates, likelihoods, reviewers, measure)


async def judge_by_likelihood(
    name: str,
    scorer: Scorer,
    question: str,
    candidates: Sequence[Candidate],
    *,
    emit: Emit,
    reviewer: bool = False,
    measure: RepetitionMeasure = DEFAULT_REPETITION_MEASURE,
) -> tuple[Verdict | None, JudgeOutcome]:
    """best-of by the judge model's likelihood of each candidate, penalising repetition and truncation."""
    emit(JudgeStarted(model=name))
    try:
        scores = await score_candidates(scorer, question, candidates, reviewer=reviewer, measure=measure)
    except FusionError as exc:
        return None, JudgeOutcome(model=name, error=error_info(exc))
    best = max(range(len(candidates)), key=lambda i: scores[i].total)
    winner = candidates[best]
    details = LikelihoodVerdict(
        winner=winner.model,
        winner_label=winner.label,
        components={c.model: s for c, s in zip(candidates, scores, strict=True)},
        reviewer=reviewer,
    )
    rationale = explain(name, candidates, scores, best)
    verdict = Verdict(answer=winner.text, rationale=rationale, details=details)
    return verdict, JudgeOutcome(model=name, rationale=rationale, verdict=details)


def explain(name: str, candidates: Sequence[Candidate], scores: Sequence[LikelihoodScore], best: int) -> str:
    """Why the winner won, naming each penalised candidate and its penalty."""
    winner = candidates[best]
    what = "likelihood + reviewer score" if scores[best].reviewer is not None else "likelihood"
    text = (
        f"{winner.label} ({winner.model}) has the highest {what} under {name} after penalties "
        f"(total {scores[best].total:.3f}: {scores[best].describe()})."
    )
    penalised = [
        f"{c.label} {s.describe()}"
        for c, s in zip(candidates, scores, strict=True)
        if (s.repetition_penalty or s.truncation_penalty) and c is not winner
    ]
    if penalised:
        text += " Penalised: " + "; ".join(penalised) + "."
    return text
