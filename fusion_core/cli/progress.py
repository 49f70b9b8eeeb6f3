"""A progress bar on stderr while the embedded model is assembled (first run only)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from fusion_core.config import LocalConfig


def prepare_embedded_model(console: Console, local: LocalConfig) -> None:
    """Make sure local/gemma-3-270m is assembled, showing a bar if that takes a while."""
    from fusion_core import local_models

    if local_models.embedded_model_ready(local.cache_dir):
        return
    columns = (
        TextColumn("assembling local/gemma-3-270m (first run only)"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("assemble", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        local_models.prepare_embedded_model(local.cache_dir, progress=report)
    console.print("local/gemma-3-270m is ready")
