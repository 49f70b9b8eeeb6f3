"""Per-model progress (tokens so far), the truncated mark and the embedded model's first assembly."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from rendered import shown_text

from fusion_core.backends.llama.models import EMBEDDED_MODEL, embedded_model_path, embedded_model_ready
from fusion_core.events import CandidateDelta, CandidateStarted, RunStarted
from fusion_core.result import FusionResult
from fusion_jupyter import FusionMagics
from fusion_jupyter.view import AssemblyProgress, FusionView

POOL = "--pool mock/alpha,mock/beta --judge mock/judge"


def test_terminal_progress_shows_each_models_tokens_so_far(
    ip: InteractiveShell, magics: FusionMagics, capsys: Any
) -> None:
    magics.progress_interval = 0.0  # a line on every streamed chunk, so the test needs no clock
    try:
        ip.run_cell_magic("fuse", POOL + " -o res", cell="Why is the sky blue?")
    finally:
        magics.progress_interval = 2.0
    err = capsys.readouterr().err
    counts = [int(n) for n in re.findall(r"tokens so far: .*?mock/alpha ~(\d+)", err)]
    assert len(counts) >= 3 and counts == sorted(counts) and counts[0] >= 1, err
    result: FusionResult = ip.user_ns["res"]
    alpha = next(c for c in result.candidates if c.model == "mock/alpha")
    assert counts[-1] <= alpha.usage.completion_tokens  # chunks: about one token each, never more


def test_the_pane_shows_tokens_so_far_while_streaming() -> None:
    now = [10.0]
    view = FusionView(["m/a"], "m/judge", clock=lambda: now[0], min_interval_s=0.0)
    view.handle(RunStarted(mode="merge", models=("m/a",), judge="m/judge"))
    view.handle(CandidateStarted(model="m/a", label="A"))
    for word in ("one ", "two ", "three "):
        now[0] += 0.5
        view.handle(CandidateDelta(model="m/a", text=word))
    head = unescape(view.panes["m/a"].head.value)
    assert "~3 tokens so far" in head and "1.50 s" in head


def test_a_truncated_answer_is_marked_everywhere(ip: InteractiveShell, magics: FusionMagics, capsys: Any) -> None:
    shown = ip.run_cell_magic("fuse", POOL + " --max-tokens 3 -o res", cell="Why is the sky blue?")
    err = capsys.readouterr().err
    result: FusionResult = ip.user_ns["res"]
    assert all(c.truncated for c in result.candidates)
    assert re.search(r"mock/alpha: done in .* \(truncated at max_tokens\)", err), err
    markdown = shown_text(shown._repr_mimebundle_()["text/markdown"])
    assert "mock/alpha done (truncated at max_tokens)" in markdown
    assert "(truncated at max_tokens)" in shown._repr_mimebundle_()["text/plain"]

    magics.view = "widget"
    ip.run_cell_magic("fuse", "--pool mock/alpha,mock/beta --judge mock/judge --max-tokens 3", cell="Why?")
    assert all(">truncated<" in pane.head.value for pane in magics.last_view.panes.values())
    ip.run_cell_magic("fuse", POOL, cell="Why?")
    assert not any(">truncated<" in pane.head.value for pane in magics.last_view.panes.values())


@pytest.mark.local
@pytest.mark.timeout(240)
def test_the_first_assembly_of_the_embedded_model_shows_a_progress_bar(
    ip: InteractiveShell, magics: FusionMagics, tmp_path: Path, capsys: Any
) -> None:
    cache = tmp_path / "models"
    Path("fusion.toml").write_text(f'[local]\ncache_dir = "{cache}"\n')
    assert not embedded_model_ready(str(cache))
    magics.view = "widget"
    line = f"--pool local/{EMBEDDED_MODEL},mock/alpha --judge mock/judge --max-tokens 4 -o res"
    ip.run_cell_magic("fuse", line, cell="The sky is")
    progress = magics.last_assembly
    assert isinstance(progress, AssemblyProgress)
    assert progress.bar.value == 1.0 and progress.bar.bar_style == "success"
    size = embedded_model_path(str(cache)).stat().st_size
    assert progress.numbers.value == f"{size / 2**20:.0f} / {size / 2**20:.0f} MiB"  # set by the callback
    assert "is ready" in progress.label.value
    assert embedded_model_ready(str(cache)) and embedded_model_path(str(cache)).is_file()
    result: FusionResult = ip.user_ns["res"]
    assert {c.model for c in result.candidates if c.ok} == {f"local/{EMBEDDED_MODEL}", "mock/alpha"}

    # In text mode the next first assembly prints its steps; once assembled, nothing is shown.
    magics.view, magics.last_assembly = "text", None
    embedded_model_path(str(cache)).unlink()
    ip.run_cell_magic("fuse", line, cell="The sky is")
    err = capsys.readouterr().err
    steps = re.findall(r"assembling local/gemma-3-270m \(first run only\): (\d+)%", err)
    assert steps and steps[-1] == "100" and f"local/{EMBEDDED_MODEL} is ready" in err
    magics.last_assembly = None
    ip.run_cell_magic("fuse", line, cell="The sky is")
    assert magics.last_assembly is None
