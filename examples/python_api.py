"""The Python API in one file: run, review and complete through one Fusion session.

    python examples/python_api.py "def fizzbuzz(n):"

``Fusion.from_config()`` reads fusion.toml the way the ``fusion`` command does
(./fusion.toml, then ~/.config/fusion/config.toml) and otherwise runs the
built-in pool: with no OPENROUTER_API_KEY that is the embedded Gemma 3 270M,
offline. Leaving the ``with`` block closes the session's connections and its
background loop.
"""

from __future__ import annotations

import sys

from fusion_core import Fusion
from fusion_core.completion import CompletionContext, CompletionSettings
from fusion_core.options import EMBEDDED_MODEL
from fusion_core.review import ReviewSettings, ReviewTarget

CODE = """import subprocess


def run(cmd):
    print(f"running")
    return subprocess.call(cmd, shell=True)
"""


def main(prompt: str) -> None:
    with Fusion.from_config() as fusion:
        settings = fusion.default_settings()
        print(f"pool {', '.join(settings.pool)}, judge {settings.judge}")
        result = fusion.run(prompt)
        print(f"run: {result.status}, {len(result.candidates)} candidates\n{result.answer}\n")

        # The static analysers review offline; add model specs to the pool for a fused review.
        review = fusion.review(ReviewTarget(CODE, path="run.py"), ReviewSettings(pool=("tool:ruff", "tool:bandit")))
        for finding in review.findings:
            print(f"review: line {finding.start_line} [{finding.severity}] {finding.message} ({finding.agreement})")

        context = CompletionContext(prefix="def add(a, b):\n    return ", path="add.py")
        completion = fusion.complete(context, CompletionSettings(pool=(EMBEDDED_MODEL,), deadline_s=60))
        best = completion.items[0].text if completion.items else "(no suggestion)"
        print(f"complete: {best!r}")


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "def fizzbuzz(n):")
