"""Static analysers as pool members: real ruff and bandit runs mapped to findings and merged with models."""

from __future__ import annotations

import json

from fusion_core.backends.scripted import ScriptedBackend
from fusion_core.engine import Fusion
from fusion_core.events import CandidateFinished, CandidateStarted, Event
from fusion_core.redaction import redact_code
from fusion_core.review import ReviewSettings, ReviewTarget, review

CODE = """import subprocess


def run(cmd):
    print(f"running")
    return subprocess.call(cmd, shell=True)
"""


def scripted(replies: dict[str, list[str | Exception]]) -> Fusion:
    fusion = Fusion()
    fusion.resolver.register("scripted", ScriptedBackend(replies))
    return fusion


def model_reply(line: int, message: str) -> str:
    item = {"start_line": line, "end_line": line, "severity": "error", "category": "security"}
    return json.dumps({"findings": [{**item, "message": message, "replacement": None}]})


async def test_analysers_merge_with_models_and_count_as_reviewers() -> None:
    fusion = scripted({"m": [model_reply(6, "shell=True with a caller's command allows shell injection")]})
    events: list[Event] = []
    settings = ReviewSettings(pool=("tool:ruff", "tool:bandit", "scripted:m"))
    outcome = await review(fusion, ReviewTarget(CODE, path="run.py"), settings, emit=events.append)
    shell = next(f for f in outcome.findings if f.start_line == 6)
    assert shell.models == ("scripted:m", "tool:bandit", "tool:ruff")
    assert shell.agreement == "3 of 3 reviewers" and shell.severity == "error"
    assert {rule for rule, _ in shell.rules} == {"bandit/B602", "ruff/S602"}
    assert all(url and url.startswith("https://") for _, url in shell.rules)
    started = {e.model for e in events if isinstance(e, CandidateStarted)}
    finished = {e.model for e in events if isinstance(e, CandidateFinished)}
    assert started == finished == {"tool:ruff", "tool:bandit", "scripted:m"}


async def test_a_safe_ruff_fix_becomes_the_findings_fix() -> None:
    outcome = await review(Fusion(), ReviewTarget(CODE, path="run.py"), ReviewSettings(pool=("tool:ruff",)))
    fstring = next(f for f in outcome.findings if f.rules[0][0] == "ruff/F541")
    assert fstring.fix is not None and (fstring.fix.start_line, fstring.fix.end_line) == (5, 5)
    assert fstring.fix.text == '    print("running")'


async def test_analysers_see_the_code_unredacted_and_skip_other_languages() -> None:
    secret = "correct-horse-battery-staple"
    code = f'PASSWORD = "{secret}"\n'
    assert secret not in redact_code(code).text  # what a remote model would see
    outcome = await review(Fusion(), ReviewTarget(code, path="k.py"), ReviewSettings(pool=("tool:bandit",)))
    assert any(secret in f.message for f in outcome.findings)  # bandit quotes the hard-coded string
    other = await review(Fusion(), ReviewTarget("let x = 1;", path="a.js"), ReviewSettings(pool=("tool:ruff",)))
    assert other.responders == () and other.candidates == ()
