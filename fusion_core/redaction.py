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

What counts as a secret comes first from Yelp's detect-secrets (its provider
patterns: AWS, Stripe, Twilio, SendGrid, Slack, GitHub, GitLab, PyPI, Discord,
Telegram, Mailchimp, Square, Azure, Artifactory, passwords in URLs, and its
high-entropy quoted strings), then from our own patterns for what it lacks
(see ``_OWN_PATTERNS``), then from names: values assigned to ``password``,
``secret``, ``token``, ``api_key`` and the like, and random-looking values of
``NAME=value`` lines in env files.

Every pattern is linear in the input. detect-secrets' plugins are fed one line
at a time, a line longer than ``SCAN_WINDOW_CHARS`` in overlapping windows, and
the plugins whose regexes are superlinear are not used at all (see
``_detectors``).
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

__all__ = ["PLACEHOLDER_PREFIX", "SCAN_WINDOW_CHARS", "Redaction", "redact_code", "wire_text"]

PLACEHOLDER_PREFIX = "REDACTED_SECRET_"
# detect-secrets sees at most this much of a line at once, so a regex of its that is
# superlinear on some line costs at most (window)^2, not (line)^2.
SCAN_WINDOW_CHARS = 4096
# Consecutive windows overlap by this much, so a secret up to this long is seen whole
# (GitLab agent tokens, the longest detect-secrets knows, are up to 1,032 characters).
SCAN_WINDOW_OVERLAP = 1100
# A value of an env line with no telling name is a secret when it looks random:
# this long, letters and digits, and at least this Shannon entropy (detect-secrets' measure).
RANDOM_MIN_CHARS = 16
RANDOM_MIN_ENTROPY = 4.0

# Our own patterns, each for something detect-secrets 1.5 lacks. Group "secret", if
# present, is what gets replaced. All linear: a fixed literal start, then one character
# class whose run ends the match.
_OWN_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # Its OpenAI plugin knows only legacy "...T3BlbkFJ..." keys, and is quadratic on a run
    # of "sk-"; OpenRouter (sk-or-v1-), Anthropic (sk-ant-) and project keys are missed.
    ("api_key", re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")),
    # It has no Google plugin.
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    # Its GitHub plugin misses fine-grained tokens.
    ("github_token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}")),
    # Its npm plugin only sees .npmrc lines and is quadratic on a run of "//".
    ("npm_token", re.compile(r"\bnpm_[A-Za-z0-9]{36}")),
    # It has no Mailgun plugin (legacy keys; newer ones are caught as random env values).
    ("mailgun_key", re.compile(r"\bkey-[0-9a-z]{32}\b")),
    # It has no bearer-token plugin.
    ("bearer_token", re.compile(r"(?i)\bbearer[ \t]+(?P<secret>[A-Za-z0-9._~+/-]{16,}=*)")),
    # Its JWT regex is quadratic on a run of "eyJ" (64 kB took 7 s); this one only starts
    # where a token starts.
    ("jwt", re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)?")),
)
# Its private-key plugin flags only the BEGIN line; the key is the lines after it.
_PEM_BEGIN = re.compile(r"-----BEGIN (?P<kind>[A-Z0-9 ]{0,40}?)PRIVATE KEY(?P<block> BLOCK)?-----")
_PEM_END = re.compile(r"-----END (?P<kind>[A-Z0-9 ]{0,40}?)PRIVATE KEY(?P<block> BLOCK)?-----")
# Lines of an unterminated key body: base64 (maybe quoted, as in a list of strings) or a header.
_KEY_MATERIAL = re.compile(r"[A-Za-z0-9+/=]{16,}")
_PEM_BODY_LINE = re.compile(r"""[ \t"']*(?:[A-Za-z0-9+/=]{16,}|[A-Za-z-]+: [^\r\n]*)[ \t"',]*""")
# Its keyword plugin is the slowest part by far (cubic: "password" * 2000, 16 kB, took
# 106 s), reports one value per line, and misses names such as STRIPE_KEY. Names are
# matched here instead, by a pattern that starts only where a name starts.
_SECRET_NAME = re.compile(
    r"(?:^|_)(?:pass|passwd|password|passphrase|pwd|secret|token|api_?key|apikey|access_?key|"
    r"secret_?key|private_?key|auth_?token|access_?token|refresh_?token|client_?secret|"
    r"credentials?|auth)(?:_|$)"
)
# A weaker hint: a value under a name like STRIPE_KEY is redacted only when it looks random.
_KEY_NAME = re.compile(r"(?:^|_)(?:key|sid|dsn)(?:_|$)")
# name = "value", name: 'value', "name": "value", name := `value`, name => "value"
_QUOTED_ASSIGNMENT = re.compile(
    r"""(?<![\w.-])(?P<name>[A-Za-z_][\w.-]*)["']?[ \t]*(?::=|=>|[:=])[ \t]*[rbuRBU]?"""
    r"""(?P<q>["'`])(?P<secret>[^"'`\r\n]+)(?P=q)"""
)
# NAME=value lines in .env / shell / ini files (no spaces around "=").
_ENV_ASSIGNMENT = re.compile(
    r"^[ \t]*(?:export[ \t]+)?(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)=(?P<secret>[^\s\"'`#$][^\s#]*)",
    re.MULTILINE,
)
_RANDOM_CHARS = re.compile(r"[A-Za-z0-9+/=_.~-]+")
_LINE = re.compile(r"[^\r\n]+")
_GENERIC_KINDS = {"base64_high_entropy_string", "hex_high_entropy_string", "random_value"}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Characters a whole-match detector may include around the value (r'(?:\s|=|:|"|^)AKC...').
_EDGE = " \t\r\n\"'=:"


@dataclass(frozen=True)
class Redaction:
    """Code with secrets replaced: the text to send, how many secrets, and a way back."""

    text: str
    count: int = 0
    kinds: tuple[str, ...] = ()
    # placeholder -> original; never shown in a repr, so never in a log line.
    _originals: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def replaced(self) -> int:
        """How many spans of text were replaced (a private key has one per line)."""
        return len(self._originals)

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
    """Replace everything that looks like a secret in ``text``; line breaks are kept.

    Each replaced span (at least one character, never a line break) becomes one
    placeholder, so ``len(result.text) <= len(text) + result.replaced * (len(PLACEHOLDER_PREFIX)
    + len(str(result.replaced)))``.
    """
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


def _find_spans(text: str) -> list[_Span]:
    found: list[_Span] = []
    items = iter(range(1, 1 << 62))
    found += _private_keys(text, items)
    found += _detected(text, items)
    for kind, pattern in _OWN_PATTERNS:
        for match in pattern.finditer(text):
            group = "secret" if "secret" in pattern.groupindex else 0
            found.append(_Span(match.start(group), match.end(group), kind, next(items)))
    for pattern in (_QUOTED_ASSIGNMENT, _ENV_ASSIGNMENT):
        for match in pattern.finditer(text):
            name, value = match.group("name"), match.group("secret")
            if not value.strip() or value.startswith(PLACEHOLDER_PREFIX):
                continue
            strong = _named_secret(name)
            env_line = pattern is _ENV_ASSIGNMENT
            if strong or ((env_line or _named_key(name)) and _looks_random(value)):
                kind = _name_kind(name) if strong else "random_value"
                found.append(_Span(match.start("secret"), match.end("secret"), kind, next(items)))
    return _without_overlaps([_through_digits(span, text) for span in found])


def _through_digits(span: _Span, text: str) -> _Span:
    # A placeholder followed by a digit would read as another placeholder ("..._1" + "5"),
    # so a span takes in the digits that follow it (they are part of the same token).
    end = span.end
    while end < len(text) and text[end] in "0123456789":
        end += 1
    return span if end == span.end else _Span(span.start, end, span.kind, span.item)


# -- detect-secrets ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Detector:
    kind: str
    patterns: tuple[re.Pattern[str], ...]
    entropy: Any = None  # a HighEntropyStringsPlugin: the match must also look random
    group: int | None = None  # the group holding the secret, when known


@lru_cache(maxsize=1)
def _detectors() -> tuple[_Detector, ...]:
    """detect-secrets' plugins we run (imported on first use: it pulls in requests).

    Left out: KeywordDetector (cubic; names are matched by our own patterns),
    OpenAIDetector, NpmDetector and JwtTokenDetector (quadratic; see ``_OWN_PATTERNS``),
    PrivateKeyDetector (flags the header only; see ``_private_keys``), IPPublicDetector
    (an address is not a secret), and the IBM, Cloudant and SoftLayer plugins (slow
    keyword scans for rare services).
    """
    from detect_secrets.plugins import (
        artifactory,
        aws,
        azure_storage_key,
        basic_auth,
        discord,
        github_token,
        gitlab_token,
        high_entropy_strings,
        mailchimp,
        pypi_token,
        sendgrid,
        slack,
        square_oauth,
        stripe,
        telegram_token,
        twilio,
    )

    plugins: list[Any] = [  # classes; their abstract properties are class attributes
        aws.AWSKeyDetector,
        artifactory.ArtifactoryDetector,
        azure_storage_key.AzureStorageKeyDetector,
        basic_auth.BasicAuthDetector,
        discord.DiscordBotTokenDetector,
        github_token.GitHubTokenDetector,
        gitlab_token.GitLabTokenDetector,
        mailchimp.MailchimpDetector,
        pypi_token.PypiTokenDetector,
        sendgrid.SendGridDetector,
        slack.SlackDetector,
        square_oauth.SquareOAuthDetector,
        stripe.StripeDetector,
        telegram_token.TelegramBotTokenDetector,
        twilio.TwilioKeyDetector,
    ]
    detectors = [_Detector(_slug(p.secret_type), tuple(p.denylist)) for p in (cls() for cls in plugins)]
    for entropy in (high_entropy_strings.Base64HighEntropyString(), high_entropy_strings.HexHighEntropyString()):
        # Its regex is (quote)(value)(same quote).
        detectors.append(_Detector(_slug(entropy.secret_type), (entropy.regex,), entropy, group=2))
    return tuple(detectors)


def _slug(secret_type: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", secret_type.lower()).strip("_")


def _windows(start: int, end: int) -> Iterator[int]:
    """Start offsets of the overlapping scan windows over one long line ``[start, end)``."""
    step = SCAN_WINDOW_CHARS - SCAN_WINDOW_OVERLAP
    pos = start
    while True:
        yield pos
        if pos + SCAN_WINDOW_CHARS >= end:
            return
        pos += step


def _scan_blocks(text: str) -> Iterator[tuple[int, int]]:
    """Pieces of ``text`` of at most SCAN_WINDOW_CHARS: whole lines grouped together (a
    regex call per line would cost more than the scan), long lines in overlapping windows."""
    block: tuple[int, int] | None = None
    for line in _LINE.finditer(text):
        start, end = line.span()
        if end - start > SCAN_WINDOW_CHARS:
            if block is not None:
                yield block
                block = None
            for offset in _windows(start, end):
                yield offset, min(offset + SCAN_WINDOW_CHARS, end)
        elif block is None:
            block = (start, end)
        elif end - block[0] > SCAN_WINDOW_CHARS:
            yield block
            block = (start, end)
        else:
            block = (block[0], end)
    if block is not None:
        yield block


def _detected(text: str, items: Iterator[int]) -> list[_Span]:
    found: list[_Span] = []
    detectors = _detectors()
    for start, end in _scan_blocks(text):
        window = text[start:end]
        for detector in detectors:
            for pattern in detector.patterns:
                for match in pattern.finditer(window):
                    span = match.span(detector.group) if detector.group else _secret_span(match)
                    if span is None:
                        continue
                    value = window[span[0] : span[1]]
                    if detector.entropy is not None and not _entropy_above(detector.entropy, value):
                        continue
                    item = next(items)
                    # A match never replaces a line break: each line of it is its own span.
                    for piece in _LINE.finditer(value):
                        piece_start = start + span[0] + piece.start()
                        found.append(_Span(piece_start, piece_start + len(piece.group()), detector.kind, item))
    return found


def _entropy_above(plugin: Any, value: str) -> bool:
    # A string of n characters has at most log2(n) bits of entropy, so shorter ones are
    # skipped without the plugin's per-character count (most quoted strings are short).
    limit = float(plugin.entropy_limit)
    return len(value) > 2**limit and float(plugin.calculate_shannon_entropy(value)) > limit


def _secret_span(match: re.Match[str]) -> tuple[int, int] | None:
    """Where the secret is in a detector's match: its last group when that group ends the
    match (``aws...'(KEY)'``, ``://u:(PW)@``), else the whole match without edge punctuation."""
    last = match.re.groups
    if last and match.start(last) != -1 and match.end(last) >= match.end() - 1:
        start, end = match.span(last)
    else:
        start, end = match.span()
        value = match.group()
        start += len(value) - len(value.lstrip(_EDGE))
        end -= len(value) - len(value.rstrip(_EDGE))
    return (start, end) if end > start else None


# -- private keys ----------------------------------------------------------------------------


def _private_keys(text: str, items: Iterator[int]) -> list[_Span]:
    """One span per non-blank line of each key body, so no line break is ever replaced.

    Each END marker is found once (one pass, then a binary search per BEGIN), so many
    unterminated BEGIN lines cost no more than one.
    """
    ends: dict[tuple[str, str], list[int]] = {}
    for match in _PEM_END.finditer(text):
        ends.setdefault((match["kind"], match["block"] or ""), []).append(match.start())
    found: list[_Span] = []
    covered = 0
    for begin in _PEM_BEGIN.finditer(text):
        if begin.start() < covered:
            continue  # inside a body already redacted
        positions = ends.get((begin["kind"], begin["block"] or ""), [])
        k = bisect.bisect_left(positions, begin.end())
        body_end = positions[k] if k < len(positions) else _unterminated_body_end(text, begin.end())
        item = next(items)
        for line in _LINE.finditer(text, begin.end(), body_end):
            value = line.group()
            stripped = value.strip()
            if stripped:
                start = line.start() + value.index(stripped[0])
                found.append(_Span(start, start + len(stripped), "private_key", item))
        covered = body_end
    return found


def _unterminated_body_end(text: str, pos: int) -> int:
    """Where a key body with no END marker stops: the first line that is not base64 or a header."""
    line_end = text.find("\n", pos)
    if line_end == -1 or _KEY_MATERIAL.search(text, pos, line_end):
        # The key goes on along the BEGIN line (a string with escaped newlines): redact to its end.
        return len(text) if line_end == -1 else line_end
    pos = line_end + 1
    while pos < len(text):
        line_end = text.find("\n", pos)
        line_end = len(text) if line_end == -1 else line_end
        line = text[pos:line_end].rstrip("\r")
        if line.strip() and not _PEM_BODY_LINE.fullmatch(line):
            return pos
        pos = line_end + 1
    return len(text)


# -- names -------------------------------------------------------------------------------------


def _snake(name: str) -> str:
    return _CAMEL.sub("_", name.rsplit(".", 1)[-1]).replace("-", "_").lower()


def _named_secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(_snake(name)))


def _named_key(name: str) -> bool:
    return bool(_KEY_NAME.search(_snake(name)))


def _looks_random(value: str) -> bool:
    """A credential-like value: long, letters and digits, high entropy (detect-secrets' measure)."""
    if len(value) < RANDOM_MIN_CHARS or not _RANDOM_CHARS.fullmatch(value):
        return False
    if not any(c.isdigit() for c in value) or not any(c.isalpha() for c in value):
        return False
    entropy = next(d.entropy for d in _detectors() if d.entropy is not None)
    return float(entropy.calculate_shannon_entropy(value)) >= RANDOM_MIN_ENTROPY


def _name_kind(name: str) -> str:
    snake = _CAMEL.sub("_", name).replace("-", "_").lower()
    for word in ("password", "passphrase", "secret", "token", "key", "credential", "auth"):
        if word in snake:
            return word if word != "key" else "api_key"
    return "password"


def _without_overlaps(spans: list[_Span]) -> list[_Span]:
    # Earliest first, then longest: a key inside `api_key = "sk-..."` is one secret, not two.
    # Of two equal spans the named kind wins over a generic one ("high entropy string").
    spans.sort(key=lambda s: (s.start, -(s.end - s.start), s.kind in _GENERIC_KINDS))
    kept: list[_Span] = []
    for span in spans:
        if kept and span.start < kept[-1].end:
            if span.end > kept[-1].end and span.item != kept[-1].item:
                prev = kept.pop()
                kept.append(_Span(prev.start, span.end, prev.kind, prev.item))
            continue
        kept.append(span)
    return kept
