"""Read the current git commit for the version banner."""

import shutil
import subprocess


def current_commit(repo: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    done = subprocess.run(
        [git, "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else None
