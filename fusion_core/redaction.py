"""Preparing source code before it leaves the machine: secret redaction and wire-safe text.

Before code goes to a *remote* model, anything shaped like a credential is
replaced by a numbered placeholder (``REDACTED_SECRET_1``). Local models see
the code as it is. Redaction never adds or removes a line break, so line
numbers a model reports still point at the right lines, and
:meth:`Redaction.restore` puts the originals back into a suggested fix before
it is applied locally::

    r = redact_code(source)
    send(r.text)                          # secrets replaced, r.count of them
    fix = r.restore(model_suggestion)     # placeholders back to the real values

What counts as a secret: OpenAI/OpenRouter/Anthropic style ``sk-...`` keys,
AWS access key ids (``AKIA...``/``ASIA...``), GitHub tokens (``ghp_...``,
``github_pat_...``), Slack and Google API keys, bearer tokens, private key
blocks, and string values assigned to names such as ``password``,
``secret``, ``token`` or ``api_key`` (plus ``NAME=value`` lines in env files).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["PLACEHOLDER_PREFIX", "Redaction", "redact_code", "wire_text"]

PLACEHOLDER_PREFIX = "REDACTED_SECRET_"

# Each pattern's group "secret" (or the whole match) is what gets replaced.
_TOKEN_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("api_key", re.compile(r"\bsk-(?:[A-Za-z0-9]+-){0,3}[A-Za-z0-9_-]{16,}")),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("bearer_token", re.compile(r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/-]{16,}=*)")),
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?P<kind>(?:[A-Z0-9]+ )*)PRIVATE KEY(?P<block>(?: BLOCK)?)-----"
    r"(?P<secret>.*?)"
    r"-----END (?P=kind)PRIVATE KEY(?P=block)-----",
    re.DOTALL,
)
_SECRET_NAME = re.compile(
    r"(?:^|_)(?:pass|passwd|password|passphrase|pwd|secret|token|api_?key|apikey|access_?key|"
    r"secret_?key|private_?key|auth_?token|access_?token|refresh_?token|client_?secret|"
    r"credentials?|auth)(?:_|$)"
)
# name = "value", name: 'value', "name": "value", name := `value`, name => "value"
_QUOTED_ASSIGNMENT = re.compile(
    r"""(?P<name>[A-Za-z_][\w.-]*)["']?\s*(?::=|=>|[:=])\s*[rbuRBU]?(?P<q>["'`])(?P<secret>[^"'`\r\n]+)(?P=q)"""
)
# NAME=value lines in .env / shell / ini files (no spaces around "=").
_ENV_ASSIGNMENT = re.compile(
    r"^[ \t]*(?:export[ \t]+)?(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)=(?P<secret>[^\s\"'`#$][^\s#]*)",
    re.MULTILINE,
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass(frozen=True)
class Redaction:
    """Code with secrets replaced: the text to send, how many secrets, and a way back."""

    text: str
    count: int = 0
    kinds: tuple[str, ...] = ()
    # placeholder -> original; never shown in a repr, so never in a log line.
    _originals: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def restore(self, text: str) -> str:
        """Put the original secrets back where ``text`` still has their placeholders."""
        for placeholder, original in sorted(self._originals, key=lambda p: -len(p[0])):
            text = text.replace(placeholder, original)
        return text

    def summary(self) -> str:
        """E.g. ``2 secrets (api_key, password)``, for a log line; never the values."""
        if not self.count:
            return "no secrets"
        counts = Counter(self.kinds)
        kinds = ", ".join(f"{k} x{n}" if n > 1 else k for k, n in sorted(counts.items()))
        return f"{self.count} secret{'s' if self.count != 1 else ''} ({kinds})"


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    kind: str
    item: int  # spans of one private key block share an item number


def redact_code(text: str) -> Redaction:
    """Replace everything that looks like a secret in ``text``; line breaks are kept."""
    spans = _find_spans(text)
    if not spans:
        return Redaction(text=text)
    parts: list[str] = []
    originals: list[tuple[str, str]] = []
    kinds: dict[int, str] = {}
    pos = 0
    for number, span in enumerate(spans, start=1):
        placeholder = f"{PLACEHOLDER_PREFIX}{number}"
        parts.append(text[pos : span.start])
        parts.append(placeholder)
        originals.append((placeholder, text[span.start : span.end]))
        kinds[span.item] = span.kind
        pos = span.end
    parts.append(text[pos:])
    return Redaction(text="".join(parts), count=len(kinds), kinds=tuple(kinds.values()), _originals=tuple(originals))


def wire_text(text: str) -> str:
    """``text`` made safe to encode as UTF-8 (lone surrogates from bad bytes become '?').

    Each replaced code point stays one code point, so offsets do not move.
    """
    return _SURROGATE.sub("?", text) if _SURROGATE.search(text) else text


def _secret_name(name: str) -> bool:
    snake = _CAMEL.sub("_", name.rsplit(".", 1)[-1]).replace("-", "_").lower()
    return bool(_SECRET_NAME.search(snake))


def _find_spans(text: str) -> list[_Span]:
    found: list[_Span] = []
    item = 0
    for match in _PRIVATE_KEY.finditer(text):
        item += 1
        body_start = match.start("secret")
        # One span per line of the key body, so no line break is ever replaced.
        for line in re.finditer(r"[^\r\n]+", match.group("secret")):
            if line.group().strip():
                found.append(_Span(body_start + line.start(), body_start + line.end(), "private_key", item))
    for kind, pattern in _TOKEN_PATTERNS:
        for match in pattern.finditer(text):
            item += 1
            group = "secret" if "secret" in pattern.groupindex else 0
            found.append(_Span(match.start(group), match.end(group), kind, item))
    for pattern in (_QUOTED_ASSIGNMENT, _ENV_ASSIGNMENT):
        for match in pattern.finditer(text):
            value = match.group("secret")
            if _secret_name(match.group("name")) and value.strip() and not value.startswith(PLACEHOLDER_PREFIX):
                item += 1
                found.append(_Span(match.start("secret"), match.end("secret"), _name_kind(match.group("name")), item))
    return _without_overlaps(found)


def _name_kind(name: str) -> str:
    snake = _CAMEL.sub("_", name).replace("-", "_").lower()
    for word in ("password", "passphrase", "secret", "token", "key", "credential", "auth"):
        if word in snake:
            return word if word != "key" else "api_key"
    return "password"


def _without_overlaps(spans: list[_Span]) -> list[_Span]:
    # Earliest first, then longest: a key inside `api_key = "sk-..."` is one secret, not two.
    spans.sort(key=lambda s: (s.start, -(s.end - s.start)))
    kept: list[_Span] = []
    for span in spans:
        if kept and span.start < kept[-1].end:
            if span.end > kept[-1].end and span.item != kept[-1].item:
                prev = kept.pop()
                kept.append(_Span(prev.start, span.end, prev.kind, prev.item))
            continue
        kept.append(span)
    return kept
