"""The shipped pre-commit hook, run by pre-commit itself (``pre-commit try-repo``) on a real commit.

The ``language: system`` variant is exercised: ``language: python`` would build a hook
environment by installing model-fusion from PyPI, which this offline test cannot do; both
hooks run the same entry.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).parent.parent.parent


def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_hooks_file_runs_fusion_review_on_staged_changes() -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert hooks["fusion-review"]["entry"] == hooks["fusion-review-system"]["entry"]
    assert hooks["fusion-review"]["entry"] == "fusion review --staged --fail-on error"


def test_pre_commit_try_repo_blocks_a_commit_with_an_agreed_error(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    shutil.copy(ROOT / ".pre-commit-hooks.yaml", hooks)
    project = tmp_path / "project"
    project.mkdir()
    for repo in (hooks, project):
        run(repo, "git", "init", "-q", "-b", "main")
        run(repo, "git", "config", "user.email", "t@example.com")
        run(repo, "git", "config", "user.name", "T")
    run(hooks, "git", "add", ".")
    run(hooks, "git", "commit", "-qm", "hooks")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "FUSION_"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    env["FUSION_CACHE_DIR"] = str(tmp_path / "cache")
    pre_commit = [sys.executable, "-m", "pre_commit", "try-repo", str(hooks), "fusion-review-system"]

    (project / "clean.py").write_text("def add(a, b):\n    return a + b\n")
    run(project, "git", "add", "clean.py")
    ok = run(project, *pre_commit, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Passed" in ok.stdout

    # subprocess with shell=True: bandit (HIGH) and ruff agree, so the error survives the merge.
    (project / "run.py").write_text(
        "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
    )
    run(project, "git", "add", "run.py")
    blocked = run(project, *pre_commit, env=env)
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "Failed" in blocked.stdout and "run.py" in blocked.stdout and "2 of 2 reviewers" in blocked.stdout


def test_github_actions_example_runs_valid_fusion_review_commands() -> None:
    from fusion_cli.main import build_parser

    workflow = yaml.safe_load((ROOT / "examples" / "github-actions" / "fusion-review.yml").read_text())
    steps = workflow["jobs"]["review"]["steps"]
    commands = [s["run"] for s in steps if "fusion review" in s.get("run", "")]
    assert len(commands) == 2
    for command in commands:
        argv = shlex.split(command.replace("${{ github.base_ref }}", "main").replace("\\\n", " "))
        args = build_parser().parse_args(argv[1:])
        assert args.command == "review" and args.diff == "origin/main"
    assert any(s.get("uses", "").startswith("github/codeql-action/upload-sarif") for s in steps)
    assert workflow["permissions"]["security-events"] == "write"
