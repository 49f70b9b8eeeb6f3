"""``%%fuse --judge exec`` through a real InteractiveShell: the verdict's execution results reach the notebook."""

from __future__ import annotations

from IPython.core.interactiveshell import InteractiveShell

from fusion_core.result import FusionResult
from fusion_core.testing.server import TestServer
from fusion_core.verdicts import ExecVerdict
from fusion_jupyter.html import verdict

PROMPT = 'def add(a, b):\n    """Add.\n    >>> add(2, 3)\n    5\n    """\n'


def test_exec_judge_through_the_magic(ip: InteractiveShell, server: TestServer) -> None:
    server.script("script/nb-wrong", replies=["    return a - b\n"])
    server.script("script/nb-right", replies=["    return a + b\n"])
    server.script("script/nb-liar", replies=["    print('PASS')\n    return -1\n"])
    line = "--pool script/nb-wrong,script/nb-liar,script/nb-right --judge exec --mode best-of -o res"
    ip.run_cell_magic("fuse", line, cell=PROMPT)
    result: FusionResult = ip.user_ns["res"]
    assert result.ok and result.answer.strip() == "return a + b"
    assert result.judge is not None and isinstance(result.judge.verdict, ExecVerdict)
    runs = result.judge.verdict.execution
    assert runs["script/nb-right"].passed == 1 and runs["script/nb-liar"].passed == 0
    # The notebook's verdict view shows the winner, the 0-10 bars and why it won.
    html = verdict(result)
    assert "script/nb-right" in html and "won on execution" in html
