"""Tests a code prompt already shows: doctest ``>>>`` examples, ``assert`` lines, ``f(2) == 4`` examples.

This is pure parsing. Nothing here executes the prompt's text: calls are
checked with :func:`ast.parse`, expected values with :func:`ast.literal_eval`
(which evaluates literals only), and everything is bounded (prompt size,
line length, number of tests), because a prompt is untrusted too. The tests
run later, only inside the sandbox (:mod:`fusion_core.sandbox`).

Each test is a call of the prompt's function and, except for opaque
``assert`` statements, the expected value. A call's argument list is also an
input for behavioural consensus, with :func:`variations` adding simple
type-preserving neighbours (``n+1``, a reversed list, an empty string ...).
"""

from __future__ import annotations

import ast
import doctest
import re
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "VisibleTest",
    "entry_point",
    "extract_visible_tests",
    "is_code_prompt",
    "signature_inputs",
    "variations",
]

MAX_PROMPT_CHARS = 20_000
MAX_LINE_CHARS = 1_000
MAX_TESTS = 32
MAX_VARIATIONS = 16

TestKind = Literal["doctest", "assert", "example"]

_DEF = re.compile(r"^def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)
# "f(2) == 4", "f(2) -> 4", "f(2) => 4", "f(2) ➞ 4", "f(2) returns 4", "f(2) should return 4"
_EXAMPLE = re.compile(r"^\s*(?:[-*•]\s*)?(?:e\.g\.\s*|example:?\s*|for example,?\s*)?(?P<rest>.+)$", re.IGNORECASE)
_OPENING_EXAMPLE = re.compile(r"^([ \t]*(?:\"\"\"|'''))([ \t]*>>>)", re.MULTILINE)
_ARROWS = ("==", "->", "=>", "➞", "→", " should return ", " returns ", " gives ")


@dataclass(frozen=True)
class VisibleTest:
    """One test shown in the prompt.

    ``args`` is the call's argument list as source (``"2, [1, 3]"``); ``expected`` the
    expected value's source, checked to be a literal; an ``assert`` whose shape is not
    ``assert f(...) == literal`` keeps only its statement in ``source``.
    """

    kind: TestKind
    source: str
    args: str | None = None
    expected: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "args": self.args, "expected": self.expected}


def entry_point(prompt: str) -> str | None:
    """The function the prompt asks for: the last top-level ``def`` in it."""
    names = _DEF.findall(prompt[:MAX_PROMPT_CHARS])
    return names[-1] if names else None


def is_code_prompt(prompt: str) -> bool:
    """A prompt that asks for a Python function: it starts with ``def`` or has a signature with a docstring."""
    text = prompt[:MAX_PROMPT_CHARS].lstrip()
    if text.startswith(("def ", "async def ")):
        return True
    return bool(re.search(r"^\s*def\s+\w+\s*\(.*\)[^\n]*:\s*\n\s+(?:\"\"\"|''')", text, re.MULTILINE))


def extract_visible_tests(prompt: str, function: str | None = None) -> list[VisibleTest]:
    """Every test the prompt shows for ``function`` (default: its entry point), at most MAX_TESTS."""
    text = prompt[:MAX_PROMPT_CHARS]
    name = function or entry_point(text)
    if name is None:
        return []
    tests: list[VisibleTest] = []
    seen: set[tuple[str | None, str | None, str]] = set()

    def add(test: VisibleTest | None) -> None:
        if test is None or len(tests) >= MAX_TESTS:
            return
        key = (test.args, test.expected, test.source if test.args is None else "")
        if key not in seen:
            seen.add(key)
            tests.append(test)

    for example in _doctest_examples(text):
        source, want = example.source.strip(), _want(example.want)
        if want and _single_line(source):
            add(_call_test("doctest", source, name, want))
    for line in text.splitlines():
        stripped = line.strip().removeprefix(">>>").strip()
        if len(stripped) > MAX_LINE_CHARS:
            continue
        if stripped.startswith("assert "):
            add(_assert_test(stripped, name))
        elif name + "(" in stripped and not line.lstrip().startswith((">>>", "def ")):
            add(_example_test(stripped, name))
    return tests


def _doctest_examples(text: str) -> list[doctest.Example]:
    # DocTestParser only parses; the examples are never run here. A docstring may open
    # right on the first example ('''>>> f(1)'); put that example on a line of its own.
    text = _OPENING_EXAMPLE.sub(lambda m: m.group(1) + "\n" + m.group(2), text)
    try:
        return doctest.DocTestParser().get_examples(text)
    except ValueError:  # inconsistent indentation in a hostile or sloppy docstring
        return []


def _want(text: str) -> str:
    """A doctest's expected output, without the docstring's closing quotes it runs into."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        end = min((stripped.find(q) for q in ('"""', "'''") if q in stripped), default=-1)
        if end >= 0:
            if stripped[:end].strip():
                lines.append(stripped[:end])
            break
        lines.append(stripped)
    return "\n".join(lines).strip()


def _single_line(source: str) -> bool:
    return "\n" not in source and len(source) <= MAX_LINE_CHARS


def _parse(source: str, mode: Literal["eval", "exec"]) -> ast.AST | None:
    try:
        return ast.parse(source, mode=mode)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _call_args(node: ast.AST, name: str) -> str | None:
    """The argument list of ``name(...)`` as source, if ``node`` is exactly that call."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name):
        return None
    if any(isinstance(a, ast.Starred) for a in node.args) or node.keywords:
        parts = [ast.unparse(a) for a in node.args] + [ast.unparse(k) for k in node.keywords]
    else:
        parts = [ast.unparse(a) for a in node.args]
    return ", ".join(parts)


def _literal(source: str) -> str | None:
    """``source`` normalised, if it is a Python literal (the only kind of expected value we trust)."""
    try:
        return repr(ast.literal_eval(source.strip()))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _call_test(kind: TestKind, call: str, name: str, want: str) -> VisibleTest | None:
    tree = _parse(call, "eval")
    expected = _literal(want)
    if not isinstance(tree, ast.Expression) or expected is None:
        return None
    args = _call_args(tree.body, name)
    if args is None:
        return None
    return VisibleTest(kind=kind, source=f"{name}({args}) == {expected}", args=args, expected=expected)


def _assert_test(statement: str, name: str) -> VisibleTest | None:
    tree = _parse(statement, "exec")
    if not isinstance(tree, ast.Module) or len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return None
    test = tree.body[0].test
    if name not in {n.id for n in ast.walk(test) if isinstance(n, ast.Name)}:
        return None
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq | ast.Is):
        for call, other in ((test.left, test.comparators[0]), (test.comparators[0], test.left)):
            args = _call_args(call, name)
            expected = _literal(ast.unparse(other))
            if args is not None and expected is not None:
                return VisibleTest(kind="assert", source=statement, args=args, expected=expected)
    return VisibleTest(kind="assert", source=ast.unparse(tree.body[0]))


def _example_test(line: str, name: str) -> VisibleTest | None:
    match = _EXAMPLE.match(line)
    if match is None:
        return None
    rest = match["rest"].strip().rstrip(".;,")
    for arrow in _ARROWS:
        left, sep, right = rest.partition(arrow)
        if sep and left.strip().startswith(name + "("):
            return _call_test("example", left.strip(), name, right.strip())
    return None


def variations(tests: list[VisibleTest], limit: int = MAX_VARIATIONS) -> list[str]:
    """Argument lists near the visible ones, each argument changed in a type-preserving way."""
    seen = {t.args for t in tests if t.args is not None}
    out: list[str] = []
    for test in tests:
        if test.args is None:
            continue
        tree = _parse(f"f({test.args})", "eval")
        if not isinstance(tree, ast.Expression) or not isinstance(tree.body, ast.Call) or tree.body.keywords:
            continue
        try:
            values = [ast.literal_eval(a) for a in tree.body.args]
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue  # arguments that are not literals (names, calls) are left as they are
        for i, value in enumerate(values):
            for other in _neighbours(value):
                args = ", ".join(repr(v) for v in [*values[:i], other, *values[i + 1 :]])
                if args not in seen and len(out) < limit:
                    seen.add(args)
                    out.append(args)
    return out


_SAMPLES_BY_TYPE: dict[str, tuple[Any, ...]] = {
    "int": (0, 1, 3, -2, 10),
    "float": (0.0, 1.5, -2.0),
    "str": ("", "a", "Hello World", "abc cba"),
    "bool": (True, False),
    "list": ([], [1], [3, 1, 2], [5, 5, -1]),
    "List[int]": ([], [1], [3, 1, 2], [5, 5, -1]),
    "list[int]": ([], [1], [3, 1, 2], [5, 5, -1]),
    "List[str]": ([], ["a"], ["b", "a", "c"]),
    "list[str]": ([], ["a"], ["b", "a", "c"]),
}


def signature_inputs(prompt: str, function: str, limit: int = MAX_VARIATIONS) -> list[str]:
    """Argument lists built from the function's type annotations, for prompts that show no tests."""
    match = re.search(rf"^def\s+{re.escape(function)}\s*\((?P<params>[^)]*)\)", prompt[:MAX_PROMPT_CHARS], re.M)
    if match is None:
        return []
    tree = _parse(f"def f({match['params']}): pass", "exec")
    if not isinstance(tree, ast.Module) or not isinstance(tree.body[0], ast.FunctionDef):
        return []
    params = tree.body[0].args.args
    pools = [_SAMPLES_BY_TYPE.get(ast.unparse(p.annotation), ()) if p.annotation else () for p in params]
    if not params or not all(pools):
        return []
    width = max(len(pool) for pool in pools)
    out = []
    for i in range(min(width, limit)):
        out.append(", ".join(repr(pool[(i + k) % len(pool)]) for k, pool in enumerate(pools)))
    return list(dict.fromkeys(out))


def _neighbours(value: Any) -> list[Any]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1, 0, -value] if abs(value) < 10**6 else []
    if isinstance(value, float):
        return [value * 2, -value, 0.0]
    if isinstance(value, str):
        return [value[::-1], "", value + value[:1]] if len(value) < 200 else []
    if isinstance(value, list | tuple):
        if len(value) > 200:
            return []
        return [type(value)(reversed(value)), type(value)(value[:-1]), type(value)(list(value) + list(value[:1]))]
    return []
