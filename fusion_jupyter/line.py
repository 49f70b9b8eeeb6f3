"""The one-line ``%fuse`` form: reading its options and prompt, and keeping IPython off its ``?``.

Also :func:`code_of`, the code that ``-f code`` puts into the next cell.
"""

from __future__ import annotations

import argparse
import io
import re
import shlex

from IPython.core.error import UsageError
from markdown_it import MarkdownIt

__all__ = ["code_of", "help_end_guard", "split_line"]

# `%fuse <something>?` on a line of its own; group 2 is everything after the magic's name.
_FUSE_QUESTION = re.compile(r"^([ \t]*)%fuse[ \t]+(\S[^\n]*?\?)[ \t]*(\r?\n)?$")
_CODE_PARSER = MarkdownIt("commonmark")


def split_line(parser: argparse.ArgumentParser, line: str) -> tuple[list[str], str]:
    """``%fuse`` line: the option tokens, then the prompt, verbatim (quotes and all).

    Options are read with shlex until the first word that is neither an option nor
    an option's value, or until ``--``; the rest of the line is the prompt, so an
    apostrophe in it ("Why isn't ...") is just text.
    """
    stream = io.StringIO(line)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split, lexer.commenters = True, ""
    tokens: list[str] = []
    wants_value = False
    while True:
        start = stream.tell()
        try:
            token = lexer.get_token()
        except ValueError as exc:  # an unclosed quote
            if wants_value or line[start:].lstrip().startswith("-"):
                raise UsageError(f"{parser.prog}: {exc}") from None
            return tokens, line[start:].strip()
        if token is None or token == lexer.eof:
            return tokens, ""
        if wants_value:
            tokens.append(token)
            wants_value = False
        elif token == "--":
            return tokens, line[stream.tell() :].strip()
        elif token.startswith("-") and token != "-":
            tokens.append(token)
            wants_value = _takes_value(parser, token)
        else:
            return tokens, line[start:].strip()


def _takes_value(parser: argparse.ArgumentParser, option: str) -> bool:
    if "=" in option:
        return False
    # argparse has no public lookup of an option by its string; this mapping has been stable since 2.7.
    action = parser._option_string_actions.get(option)
    return action is not None and action.nargs != 0


def code_of(answer: str) -> str:
    """The code in a Markdown answer: its code blocks, or the whole answer when it has none."""
    blocks = [token.content for token in _CODE_PARSER.parse(answer) if token.type in ("fence", "code_block")]
    return "\n\n".join(block.rstrip("\n") for block in blocks) if blocks else answer.strip()


def help_end_guard(lines: list[str]) -> list[str]:
    """Input cleanup for ``%fuse Why is the sky blue?``.

    IPython reads a trailing ``?`` as a help request (and looks up ``blue``). This
    runs before IPython's own transforms and turns such a ``%fuse`` line into the
    plain call of the magic, so the question mark stays part of the prompt. A bare
    ``%fuse?`` is left alone: that one is asking for help.
    """
    if not lines or lines[0].lstrip().startswith("%%"):
        return lines  # a cell magic: its body is not IPython syntax
    out = []
    for line in lines:
        match = _FUSE_QUESTION.match(line)
        if match is None:
            out.append(line)
            continue
        indent, args, newline = match.group(1), match.group(2), match.group(3)
        out.append(f"{indent}get_ipython().run_line_magic('fuse', {args!r}){newline}")
    return out
