"""tool:semgrep for real, offline, with the rules file the project ships.

semgrep is optional and lives in its own environment (``pipx install semgrep``:
in fusion's environment its pins would downgrade click and jsonschema), so
these tests are skipped, with that reason, when it is not installed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from fusion_core.analysers import SEMGREP_RULES_ENV
from fusion_core.engine import Fusion
from fusion_core.review import ReviewSettings, ReviewTarget, review

RULES = Path(__file__).resolve().parents[2] / "examples" / "semgrep" / "python.yml"
_BESIDE = Path(sys.executable).parent / "semgrep"
SEMGREP = shutil.which("semgrep") or (str(_BESIDE) if _BESIDE.is_file() else None)
pytestmark = pytest.mark.skipif(
    SEMGREP is None, reason="semgrep is not installed (optional: pipx install semgrep), so tool:semgrep is not run"
)
# A bound, not a measurement: semgrep starts slowly on a loaded machine.
SEMGREP_TIMEOUT_S = 300.0
CODE = """import pickle
import subprocess


def run(cmd):
    return subprocess.call(cmd, shell=True)


def load(blob):
    return pickle.loads(blob)
"""


async def test_semgrep_reviews_offline_with_the_shipped_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SEMGREP_RULES_ENV, str(RULES))
    settings = ReviewSettings(pool=("tool:semgrep",), timeout_s=SEMGREP_TIMEOUT_S)
    outcome = await review(Fusion(), ReviewTarget(CODE, path="run.py"), settings)
    assert outcome.failures == {} and outcome.responders == ("tool:semgrep",)
    by_rule = {f.rules[0][0]: f for f in outcome.findings}
    assert set(by_rule) == {"semgrep/subprocess-shell-true", "semgrep/pickle-load"}
    shell, unpickle = by_rule["semgrep/subprocess-shell-true"], by_rule["semgrep/pickle-load"]
    assert (shell.start_line, shell.severity, shell.category) == (6, "error", "security")
    assert (unpickle.start_line, unpickle.severity, unpickle.category) == (10, "error", "security")
    assert "shell=True" in shell.message


async def test_semgrep_without_rules_says_how_to_add_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(SEMGREP_RULES_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # no .semgrep.yml here
    settings = ReviewSettings(pool=("tool:semgrep",), timeout_s=SEMGREP_TIMEOUT_S)
    outcome = await review(Fusion(), ReviewTarget(CODE, path="run.py"), settings)
    error = outcome.failures["tool:semgrep"]
    assert "no rules to run" in error.message and error.hint is not None and ".semgrep.yml" in error.hint
