"""Model output as HTML that cannot run anything in the notebook page.

Candidate answers, the fused answer and the judge's words come from endpoints
we do not control. JupyterLab renders the output of a cell the user ran as
*trusted*: its Markdown and HTML renderers then skip their sanitiser, so an
``<img onerror=...>`` or ``<script>`` in an answer would run in the page, with
the user's kernel a keystroke away. So Fusion never hands the front end model
text as live Markdown or HTML:

- :func:`answer_html` renders Markdown to HTML itself (markdown-it-py, already a
  dependency of rich; code blocks highlighted by Pygments), shows raw HTML in
  the answer as text, and passes the result
  through `nh3 <https://nh3.readthedocs.io>`_, a maintained allowlist sanitiser
  (bindings to Rust's ammonia). We use a sanitiser rather than escaping by hand
  because an allowlist of tags, attributes, classes and URL schemes is the only
  approach that stays safe against markup nobody thought of; ``bleach``, the
  other common choice, is deprecated in favour of nh3.
- :func:`markdown_text` escapes a plain string for a Markdown document, so it
  shows as text there (each character that can start markup in a line is
  backslash-escaped, which CommonMark defines for exactly this).
- :func:`markdown_block` embeds sanitised HTML in a Markdown document as one
  HTML block, so no part of it is re-read as Markdown.
"""

from __future__ import annotations

import functools
import re
from html import escape

import nh3
from markdown_it import MarkdownIt
from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

__all__ = ["answer_html", "markdown_block", "markdown_text", "sanitize_html"]

# Images are left out on purpose: an answer must not make the browser fetch a URL
# (a tracking pixel tells a hostile endpoint who read it, and when).
ALLOWED_TAGS = nh3.ALLOWED_TAGS - {"img"}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}
# Pygments' token classes (k, nf, s2, ...) are the only classes kept, so model
# output cannot borrow JupyterLab's own classes to restyle or cover the page.
PYGMENTS_CLASSES = {name for name in STANDARD_TYPES.values() if name}
# The characters that can start Markdown markup inside a line (HTML, entities, links, code,
# emphasis, strikethrough, table cells, math); CommonMark lets a backslash make each literal.
_MARKUP_ESCAPES = str.maketrans({char: "\\" + char for char in "\\`*_[]<&|$~"})
_FORMATTER = HtmlFormatter(nowrap=True)


def sanitize_html(html: str) -> str:
    """``html`` with only harmless tags, attributes, classes and URL schemes left."""
    attributes = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items() if tag in ALLOWED_TAGS}
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=attributes,
        url_schemes=ALLOWED_URL_SCHEMES,
        allowed_classes={"span": PYGMENTS_CLASSES},
    )


@functools.lru_cache(maxsize=64)
def _lexer(lang: str) -> Lexer | None:
    """Looking a lexer up by name scans Pygments' registry: once per language is enough."""
    try:
        return get_lexer_by_name(lang)
    except ClassNotFound:
        return None


def _highlight(code: str, lang: str, attrs: str) -> str:
    """Pygments spans for a fenced code block (markdown-it wraps them in <pre><code>)."""
    lexer = _lexer(lang.strip()) if lang.strip() else None
    if lexer is None:
        return escape(code)
    return str(pygments_highlight(code, lexer, _FORMATTER))


# Raw HTML in an answer is shown as text (html=False): the reader sees what the model sent.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "highlight": _highlight}).enable(["table", "strikethrough"])


def answer_html(markdown: str) -> str:
    """A model's Markdown answer as sanitised HTML (code blocks highlighted)."""
    return sanitize_html(_MARKDOWN.render(markdown))


def markdown_text(text: str) -> str:
    """``text`` escaped for a Markdown document: it renders as exactly this text, on one line."""
    return " ".join(text.split()).translate(_MARKUP_ESCAPES)


def markdown_block(html: str) -> str:
    """Sanitised ``html`` as one Markdown HTML block: wrapped in a div, with no line breaks.

    A Markdown HTML block ends at the first blank line, and what follows would be
    parsed as Markdown again; so newlines inside ``<pre>`` become ``&#10;`` (the
    same text) and every other newline, insignificant in HTML, a space.
    """
    clean = sanitize_html(html)
    parts = re.split(r"(<pre\b.*?</pre>)", clean, flags=re.DOTALL | re.IGNORECASE)
    flat = "".join(
        part.replace("\n", "&#10;") if index % 2 else part.replace("\n", " ") for index, part in enumerate(parts)
    )
    return f"<div>{flat}</div>"
