"""Visible-test extraction: pure parsing of doctests, asserts and examples, never execution."""

from __future__ import annotations

import pytest

from fusion_core.judges.visible_tests import (
    MAX_TESTS,
    entry_point,
    extract_visible_tests,
    is_code_prompt,
    variations,
)

DOCTEST = '''def add(a: int, b: int) -> int:
    """Return the sum.
    >>> add(2, 3)
    5
    >>> add(-1, 1)
    0
    """
'''


def test_doctest_examples_become_calls_with_expected_values() -> None:
    tests = extract_visible_tests(DOCTEST)
    assert [(t.kind, t.args, t.expected) for t in tests] == [("doctest", "2, 3", "5"), ("doctest", "-1, 1", "0")]


def test_the_closing_quotes_of_a_docstring_are_not_part_of_the_expected_output() -> None:
    prompt = "def f(s):\n    '''Shout.\n    >>> f('a')\n    'A'\n    '''\n"
    [test] = extract_visible_tests(prompt)
    assert test.expected == "'A'" and test.args == "'a'"


def test_assert_lines_and_arrow_examples() -> None:
    prompt = (
        "def double(x):\n"
        '    """Double x.\n'
        "    Examples:\n"
        "    double(2) == 4\n"
        "    double(3) -> 6\n"
        "    - double(0) => 0\n"
        "    double([1]) returns [1, 1]\n"
        '    """\n'
        "assert double(5) == 10\n"
        "assert double(1) is not None\n"
    )
    tests = extract_visible_tests(prompt)
    shapes = [(t.kind, t.args, t.expected) for t in tests]
    assert ("assert", "5", "10") in shapes
    assert ("example", "2", "4") in shapes and ("example", "3", "6") in shapes
    assert ("example", "0", "0") in shapes and ("example", "[1]", "[1, 1]") in shapes
    # An assert of another shape is kept whole, to run as a statement in the sandbox.
    assert ("assert", None, None) in shapes
    assert any(t.source == "assert double(1) is not None" for t in tests)


def test_the_entry_point_is_the_last_top_level_def() -> None:
    prompt = "def helper(x):\n    return x\n\ndef solve(xs):\n    '''>>> solve([1])\n    1\n    '''\n"
    assert entry_point(prompt) == "solve"
    assert [t.args for t in extract_visible_tests(prompt)] == ["[1]"]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (DOCTEST, True),
        ("def f(x):", True),
        ("Write a limerick about cats.", False),
        ("Here is my code:\ndef f(x):\n    '''Double x.'''\n", True),
        ("The function def is a keyword", False),
    ],
)
def test_code_prompts_are_recognised(prompt: str, expected: bool) -> None:
    assert is_code_prompt(prompt) is expected


def test_hostile_prompts_are_parsed_never_run(tmp_path: object) -> None:
    # Each expected value or call here would do harm if evaluated; parsing keeps none of them.
    prompt = (
        "def f(x):\n"
        '    """\n'
        "    >>> f(__import__('os').system('touch /tmp/fusion-pwned'))\n"
        "    1\n"
        "    >>> f(1)\n"
        "    __import__('os').system('touch /tmp/fusion-pwned')\n"
        "    f(2) == open('/etc/passwd').read()\n"
        "    f(9**9**9) -> 1\n"
        '    """\n'
    )
    tests = extract_visible_tests(prompt)
    # The call with a side-effecting argument is kept as source only (it runs only in the sandbox);
    # non-literal expected values are dropped.
    assert all(t.expected in {"1"} for t in tests)
    assert {t.args for t in tests} <= {"__import__('os').system('touch /tmp/fusion-pwned')", "9 ** 9 ** 9"}
    # Variations are made only from literal arguments: a call is never evaluated to make one.
    assert variations(tests) == []
    import os

    assert not os.path.exists("/tmp/fusion-pwned")


def test_huge_and_deep_prompts_are_bounded() -> None:
    many = "def f(x):\n    '''\n" + "".join(f"    >>> f({i})\n    {i}\n" for i in range(500)) + "    '''\n"
    assert len(extract_visible_tests(many)) == MAX_TESTS
    deep = "def f(x):\n    '''\n    >>> f(" + "[" * 5000 + "]" * 5000 + ")\n    1\n    '''\n"
    assert extract_visible_tests(deep) == []
    assert extract_visible_tests("x" * 10_000_000) == []


def test_variations_preserve_types_and_skip_the_visible_inputs() -> None:
    prompt = "def f(n, s, xs, flag):\n    '''>>> f(3, 'ab', [1, 2], True)\n    0\n    '''\n"
    made = variations(extract_visible_tests(prompt))
    assert "4, 'ab', [1, 2], True" in made and "3, 'ba', [1, 2], True" in made
    assert "3, 'ab', [2, 1], True" in made and "3, 'ab', [1, 2], False" in made
    assert "3, 'ab', [1, 2], True" not in made
    assert len(made) <= 16
