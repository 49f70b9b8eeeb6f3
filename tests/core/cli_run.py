"""Run the real ``fusion`` command in a subprocess, isolated from the user's config and run log."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CLI_TIMEOUT_S = 120


@dataclass(frozen=True)
class CliRun:
    """What one ``fusion`` invocation printed and returned."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def shown(self) -> str:
        return self.stdout + self.stderr


def fusion(
    env: dict[str, str],
    *args: str,
    cwd: Path,
    stdin: bytes | str | None = None,
) -> CliRun:
    """``python -m fusion_cli ARGS`` in ``cwd`` with ``HOME`` there too (so no user config applies).

    ``stdin`` None means /dev/null, as for a command started by a script; bytes or
    text arrive through a pipe, as with ``cat file | fusion ...``.
    """
    data = stdin.encode() if isinstance(stdin, str) else stdin
    done = subprocess.run(
        [sys.executable, "-m", "fusion_cli", *args],
        env={**env, "HOME": str(cwd), "FUSION_NO_LOG": "1"},
        cwd=cwd,
        input=data,
        stdin=subprocess.DEVNULL if data is None else None,
        capture_output=True,
        timeout=CLI_TIMEOUT_S,
    )
    return CliRun(
        done.returncode,
        done.stdout.decode("utf-8", errors="replace"),
        done.stderr.decode("utf-8", errors="replace"),
    )
