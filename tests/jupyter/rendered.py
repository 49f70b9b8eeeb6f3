"""What a Markdown or HTML output shows a reader, for assertions on the fallback MIME bundle."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from markdown_it import MarkdownIt

# html=True: raw HTML passes through as a notebook front end's Markdown renderer lets it.
_RENDERER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def markdown_html(markdown: str) -> str:
    """``markdown`` rendered the way a CommonMark front end renders it."""
    return _RENDERER.render(markdown)


def shown_text(markdown: str) -> str:
    """The text a reader sees in rendered ``markdown``, on one line."""
    return " ".join(unescape(re.sub(r"<[^>]*>", " ", markdown_html(markdown))).split())


def live_markup(html: str) -> list[Any]:
    """Every tag or attribute in ``html`` that could run script or load something."""
    found: list[Any] = re.findall(r"<(?:script|img|svg|iframe|object|embed|style)\b", html, re.IGNORECASE)
    found += re.findall(r"\son\w+\s*=", html, re.IGNORECASE)
    found += re.findall(r"""(?:href|src)\s*=\s*["']?\s*javascript:""", html, re.IGNORECASE)
    return found
