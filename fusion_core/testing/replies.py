"""What the mock models say: healthy answers, scripted replies and judge verdicts.

Token counts are whitespace-separated words, so tests can predict them.

Judge verdicts: the client puts each candidate in a nonce-fenced block in the
last user message::

    <<<BEGIN-{nonce} candidate A>>>
    ...candidate text...
    <<<END-{nonce} candidate A>>>

The verdict format comes from ``response_format.json_schema.name`` or, failing
that, a ``Verdict format: <name>`` line in the prompt. The winner is the
candidate containing ``[BEST]``, else the longest one (ties: first label), so
judging the same candidates in reversed order picks the same text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

BEST_OF = "best_of_verdict"
MERGE = "merge_verdict"
BEST_MARKER = "[BEST]"
WINNER_SCORE = 9
OTHER_SCORE = 5
CONFIDENCE = 0.8
STANCE_CHARS = 80
OFFFORMAT_REPLY = "I think candidate A is best because it is clear."
NO_CANDIDATES_REPLY = "I could not find any candidates to judge in your message."
# Long replies (judge verdicts) are grouped so a stream never has more pieces than this.
MAX_PIECES = 24

HEALTHY_PERSONAS = {
    "alpha": "Start from first principles and keep the explanation simple.",
    "beta": "In practice the most reliable approach is to test it against a real example.",
    "gamma": "Consider the trade-offs, because speed, cost and clarity pull in different directions.",
    "delta": "Historically there were several answers, and the modern consensus favours "
    "the simplest one that fits the evidence.",
    "epsilon": "A careful answer also covers the edge cases that usually go wrong.",
    "zeta": "Briefly: yes, with caveats.",
    "eta": "Measure first, then optimise the part that matters most.",
    "theta": "An analogy helps here: think of it as a pipeline of small, checkable steps, "
    "each of which can be tested on its own before the next one starts.",
}
GENERIC_PERSONA = "Here is a plain, dependable answer."

_CANDIDATE_RE = re.compile(r"<<<BEGIN-([0-9a-f]+) candidate ([A-Z]+)>>>\n(.*?)\n<<<END-\1 candidate \2>>>", re.DOTALL)
_FORMAT_RE = re.compile(r"Verdict format:\s*([A-Za-z_]+)")


def _label_key(label: str) -> tuple[int, str]:
    # A..Z, then AA..: plain string order would put "AA" before "B".
    return (len(label), label)


def parse_candidates(text: str) -> dict[str, str]:
    """Candidate texts by label, in label order."""
    found = {m.group(2): m.group(3) for m in _CANDIDATE_RE.finditer(text)}
    return {label: found[label] for label in sorted(found, key=_label_key)}


def verdict_mode(body: dict[str, Any], prompt: str) -> str:
    """``best_of_verdict`` or ``merge_verdict``, from the schema name or the prompt."""
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        schema = response_format.get("json_schema")
        if isinstance(schema, dict) and isinstance(schema.get("name"), str):
            return MERGE if "merge" in schema["name"] else BEST_OF
    match = _FORMAT_RE.search(prompt)
    return MERGE if match and "merge" in match.group(1) else BEST_OF


def pick_winner(candidates: dict[str, str]) -> str:
    """The [BEST]-marked candidate, else the longest; ties go to the first label."""
    marked = [label for label, text in candidates.items() if BEST_MARKER in text]
    if marked:
        return marked[0]
    winner = next(iter(candidates))
    for label, text in candidates.items():
        if len(text) > len(candidates[winner]):
            winner = label
    return winner


def _first_sentence(text: str) -> str:
    sentence = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
    return sentence[:STANCE_CHARS]


def best_of_verdict(candidates: dict[str, str]) -> dict[str, Any]:
    """A valid best_of_verdict object."""
    winner = pick_winner(candidates)
    return {
        "winner": winner,
        "scores": {lb: WINNER_SCORE if lb == winner else OTHER_SCORE for lb in candidates},
        "rationale": f"Candidate {winner} is the most complete.",
    }


def merge_verdict(candidates: dict[str, str]) -> dict[str, Any]:
    """A valid merge_verdict object using the labels present."""
    winner = pick_winner(candidates)
    labels = list(candidates)
    word_sets = [set(re.findall(r"[a-z]{5,}", t.lower())) for t in candidates.values()]
    shared = sorted(set.intersection(*word_sets))[:3]
    consensus = [f"All {len(labels)} candidates address the question."]
    consensus += [f'All candidates mention "{word}".' for word in shared]
    contradictions = []
    if len(labels) > 1:
        contradictions.append(
            {
                "topic": "How to frame the answer",
                "stances": [{"model": lb, "stance": _first_sentence(candidates[lb])} for lb in labels],
            }
        )
    return {
        "answer": "Fused: " + candidates[winner],
        "consensus": consensus,
        "contradictions": contradictions,
        "unique_insights": [{"insight": _first_sentence(candidates[lb]), "model": lb} for lb in labels],
        "blind_spots": ["None of the candidates cite sources."],
        "confidence": CONFIDENCE,
        "rationale": f"Candidate {winner} is the most complete; the others add perspective.",
    }


def judge_reply(name: str, body: dict[str, Any], user_text: str, prompt_text: str, call_index: int) -> str:
    """The reply of judge ``mock/<name>`` to its ``call_index``-th request.

    ``user_text`` is the last user message; ``prompt_text`` all messages, searched
    for the verdict format only when the user message does not name it.
    """
    if name == "judge-offformat":
        return OFFFORMAT_REPLY
    # A repair request is a follow-up turn: the candidates are in an earlier user message,
    # which a real judge still sees in the conversation.
    candidates = parse_candidates(user_text) or parse_candidates(prompt_text)
    if not candidates:
        return NO_CANDIDATES_REPLY
    mode = verdict_mode(body, user_text if _FORMAT_RE.search(user_text) else prompt_text)
    verdict = best_of_verdict(candidates) if mode == BEST_OF else merge_verdict(candidates)
    text = json.dumps(verdict, ensure_ascii=False)
    if name == "judge-noschema":
        return (
            "Here is my verdict after comparing the candidates.\n\n"
            f"```json\n{text}\n```\n\nLet me know if you need more detail."
        )
    if name == "judge-repairable" and call_index == 0:
        # Single quotes and a trailing comma: close to JSON, but not JSON.
        broken = text.replace('"', "'")[:-1] + ",}"
        return f"Sure! Here is the verdict: {broken}"
    return text


# ---------------------------------------------------------------------------
# Message helpers and token counting


def message_text(content: Any) -> str:
    """Text of a message ``content``: a string, or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p)
    return ""


def last_user_text(messages: list[Any]) -> str:
    """The text of the last user message, or "" when there is none."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def count_tokens(text: str) -> int:
    """Deterministic token count: whitespace-separated words."""
    return len(text.split())


def prompt_tokens(messages: list[Any]) -> int:
    """Token count of every message in the request."""
    return sum(count_tokens(message_text(m.get("content"))) for m in messages if isinstance(m, dict))


def split_pieces(text: str) -> list[str]:
    """Word-ish stream pieces whose concatenation is exactly ``text``."""
    words = re.findall(r"\s*\S+\s*", text) or ([text] if text else [])
    size = -(-len(words) // MAX_PIECES) if words else 1
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


def limit_reply(text: str, body: dict[str, Any]) -> tuple[str, str]:
    """Apply the request's ``stop`` and ``max_tokens``; returns (text, finish_reason)."""
    stops = body.get("stop")
    for stop in [stops] if isinstance(stops, str) else stops or []:
        if isinstance(stop, str) and stop and stop in text:
            text = text[: text.index(stop)]
    limit = body.get("max_tokens")
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit < count_tokens(text):
        return "".join(re.findall(r"\s*\S+\s*", text)[:limit]).rstrip(), "length"
    return text, "stop"


def healthy_reply(model_id: str, user_text: str) -> str:
    """A short deterministic answer that differs per model and mentions the question."""
    name = model_id.split("/", 1)[-1]
    words = user_text.split()
    topic = " ".join(words[:6]) + (" ..." if len(words) > 6 else "") if words else "your question"
    return f'[{name}] On "{topic}": {HEALTHY_PERSONAS.get(name, GENERIC_PERSONA)}'


# ---------------------------------------------------------------------------
# Scripts


@dataclass(frozen=True)
class Rule:
    """Reply ``reply`` when the last user message contains ``if_contains``."""

    if_contains: str
    reply: str


@dataclass(frozen=True)
class ScriptedModel:
    """A model whose replies a test chose: matching rules first, then replies in order."""

    model: str
    replies: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    default: str | None = None
    latency_s: float = 0.0
    chunk_delay_s: float = 0.0

    @classmethod
    def from_json(cls, data: Any) -> ScriptedModel:
        """Validate a /_test/script body; raises ValueError with a readable message."""
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise ValueError("'model' must be a non-empty string")
        replies = data.get("replies") or []
        if not isinstance(replies, list) or not all(isinstance(r, str) for r in replies):
            raise ValueError("'replies' must be a list of strings")
        rules = []
        for rule in data.get("rules") or []:
            if not isinstance(rule, dict) or not all(isinstance(rule.get(k), str) for k in ("if_contains", "reply")):
                raise ValueError("each rule needs string 'if_contains' and 'reply'")
            rules.append(Rule(rule["if_contains"], rule["reply"]))
        default = data.get("default")
        if default is not None and not isinstance(default, str):
            raise ValueError("'default' must be a string")
        if not replies and default is None:
            raise ValueError("give 'replies' or 'default' (rules alone may not match)")
        delays = []
        for key in ("latency_s", "chunk_delay_s"):
            value = data.get(key, 0.0)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ValueError(f"'{key}' must be a non-negative number")
            delays.append(float(value))
        return cls(model, tuple(replies), tuple(rules), default, delays[0], delays[1])

    def reply_for(self, user_text: str, call_index: int) -> str:
        """The reply to the ``call_index``-th request (0-based) whose last user text is given."""
        for rule in self.rules:
            if rule.if_contains in user_text:
                return rule.reply
        if self.replies:
            return self.replies[min(call_index, len(self.replies) - 1)]
        return self.default or ""
