"""``%fuse`` one-liners (a trailing ``?`` included) and ``-f code``, through a real InteractiveShell."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from fusion_core.result import FusionResult
from fusion_core.testing.server import TestServer
from fusion_jupyter.line import code_of
from fusion_jupyter.magic import LAST_RESULT_NAME

POOL = "--pool mock/alpha,mock/beta --judge mock/judge"
CODER_REPLY = (
    "[BEST] Here you go:\n\n```python\ndef is_leap(year: int) -> bool:\n"
    "    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)\n```\n\n"
    "And a check:\n\n```python\nassert is_leap(2000)\n```\n"
)


def prompts_sent(server: TestServer, model: str = "mock/alpha") -> list[str]:
    return [e["messages"][-1]["content"] for e in server.log() if e["model"] == model]


def test_a_trailing_question_mark_is_part_of_the_prompt(ip: InteractiveShell, server: TestServer, capsys: Any) -> None:
    outcome = ip.run_cell(f"%fuse {POOL} -o res Why is the sky blue?")
    shown = "".join(capsys.readouterr())
    assert outcome.success, shown
    assert "not found" not in shown  # IPython did not read it as a help request for `blue`
    assert prompts_sent(server) == ["Why is the sky blue?"]
    result: FusionResult = ip.user_ns["res"]
    assert result.ok and ip.user_ns[LAST_RESULT_NAME] is result


def test_the_line_form_keeps_quotes_braces_and_indentation(ip: InteractiveShell, server: TestServer) -> None:
    ip.user_ns["topic"] = "Rayleigh scattering"
    cell = f"if True:\n    %fuse {POOL} --mode best-of Isn't {{topic}} why it's blue?\n"
    outcome = ip.run_cell(cell)
    assert outcome.success
    assert prompts_sent(server) == ["Isn't Rayleigh scattering why it's blue?"]


def test_double_dash_ends_the_options(ip: InteractiveShell, server: TestServer) -> None:
    outcome = ip.run_cell(f'%fuse {POOL} --system "be brief" -- --help is not an option here')
    assert outcome.success
    sent = [e["messages"] for e in server.log() if e["model"] == "mock/alpha"][0]
    assert sent[-1]["content"] == "--help is not an option here"
    assert sent[0] == {"role": "system", "content": "be brief"}


def test_a_bare_question_mark_still_asks_for_help(ip: InteractiveShell, server: TestServer, capsys: Any) -> None:
    outcome = ip.run_cell("%fuse?")
    shown = "".join(capsys.readouterr())
    assert outcome.success
    assert "Fuse a pool of models' answers" in shown  # the magic's docstring
    assert server.log() == []


def test_the_line_form_needs_a_prompt(ip: InteractiveShell, capsys: Any) -> None:
    outcome = ip.run_cell(f"%fuse {POOL} -o res")
    shown = "".join(capsys.readouterr())
    assert not outcome.success
    assert "%fuse: the prompt is empty" in shown and "Traceback" not in shown


def test_format_code_puts_the_answers_code_in_the_next_cell(ip: InteractiveShell, server: TestServer) -> None:
    server.script("script/coder", default=CODER_REPLY)
    ip.rl_next_input = None
    ip.run_cell_magic("fuse", "--pool script/coder,mock/alpha --judge mock/judge --mode best-of -f code", "Leap years?")
    assert ip.rl_next_input == (
        "def is_leap(year: int) -> bool:\n"
        "    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)\n\n"
        "assert is_leap(2000)"
    )
    ip.rl_next_input = None
    ip.run_cell(f"%fuse {POOL} -f markdown Any code?")
    assert ip.rl_next_input is None  # markdown, the default, only shows the answer


def test_code_of_an_answer_without_code_blocks_is_the_answer() -> None:
    assert code_of("  print('hi')\n") == "print('hi')"
    assert code_of("Text\n\n    indented = True\n") == "indented = True"


def test_format_code_is_validated(ip: InteractiveShell, capsys: Any) -> None:
    with pytest.raises(Exception, match="invalid choice: 'html'"):
        ip.run_cell_magic("fuse", f"{POOL} -f html", "Hi")
