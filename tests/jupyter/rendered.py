"""What a Markdown or HTML output shows a reader, for assertions on the fallback MIME bundle."""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

from markdown_it import MarkdownIt

# html=True: raw HTML passes through as a notebook front end's Markdown renderer lets it.
_RENDERER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def markdown_html(markdown: str) -> str:
    """``markdown`` rendered the way a CommonMark front end renders it."""
    return _RENDERER.render(markdown)


def shown_text(markdown: str) -> str:
    """The text a reader sees in rendered ``markdown``, on one line."""
    return " ".join(unescape(re.sub(r"<[^>]*>", " ", markdown_html(markdown))).split())


DANGEROUS_TAGS = frozenset({"script", "img", "svg", "iframe", "object", "embed", "style", "link", "meta", "base"})


class _LiveMarkup(HTMLParser):
    """Collects the real tags and attributes (as a browser parses them) that could run or load anything."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DANGEROUS_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}>")
            if name in {"href", "src", "action", "formaction"} and "javascript:" in (value or "").lower():
                self.found.append(f"<{tag} {name}={value}>")


def live_markup(html: str) -> list[str]:
    """Every element or attribute in ``html`` that could run script or load something."""
    parser = _LiveMarkup()
    parser.feed(html)
    parser.close()
    return parser.found
