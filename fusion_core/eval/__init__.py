"""``fusion eval``: measure whether a pool beats its members, on inspect_ai.

The Python API (inspect_ai is imported only when an evaluation runs)::

    from fusion_core.eval import evaluate
    report = evaluate("examples/evals/code.jsonl", pool="local/gemma-3-270m*5", limit=5)
    report            # in Jupyter: the table and the accuracy-versus-cost chart
    print(report)     # the table
    report.to_dict()  # the JSON shape of `fusion eval --json`

    # review quality on a dev set (a folder with manifest.jsonl): recall and precision
    # of each reviewer and of the fused review at each agreement threshold
    quality = evaluate_review("examples/evals/review", pool=("tool:ruff", "tool:bandit"))

Needs the ``[eval]`` extra: ``pip install 'model-fusion[eval]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fusion_core.eval.report import EvalReport, PairedResult, Row, SampleRecord

if TYPE_CHECKING:
    from fusion_core.config import Config
    from fusion_core.eval.review_report import ReviewReport

__all__ = ["EvalReport", "PairedResult", "Row", "SampleRecord", "evaluate", "evaluate_review", "require_inspect"]


def require_inspect() -> None:
    """Raise one clear ConfigError when the [eval] extra (inspect-ai) is not installed."""
    import importlib.util

    from fusion_core.errors import ConfigError

    if importlib.util.find_spec("inspect_ai") is None:
        raise ConfigError(
            "fusion eval needs the [eval] extra (inspect-ai), which is not installed",
            hint="pip install 'model-fusion[eval]'",
        )


def evaluate(
    tasks: str | Path,
    *,
    pool: str,
    modes: tuple[str, ...] = ("best-of",),
    judges: tuple[str, ...] = (),
    limit: int | None = None,
    epochs: int = 1,
    max_cost: float | None = None,
    scorer: str | None = None,
    out_dir: str | Path | None = None,
    config: Config | None = None,
    **options: Any,
) -> EvalReport:
    """Run each pool member alone and each mode on the same samples; see :class:`EvalOptions` for ``options``."""
    require_inspect()
    from fusion_core.eval.run import EvalOptions
    from fusion_core.eval.run import evaluate as run_evaluation

    chosen = EvalOptions(
        tasks=str(tasks),
        pool=pool,
        modes=tuple(modes),
        judges=tuple(judges),
        limit=limit,
        epochs=epochs,
        max_cost=max_cost,
        scorer=scorer,
        out_dir=Path(out_dir) if out_dir is not None else None,
        **options,
    )
    report: EvalReport = _outside_running_loop(lambda: run_evaluation(chosen, config=config))
    return report


def evaluate_review(
    dev_set: str | Path,
    *,
    pool: Sequence[str],
    limit: int | None = None,
    timeout_s: float | None = None,
    out_dir: str | Path | None = None,
    config: Config | None = None,
) -> ReviewReport:
    """Review every file of a review dev set with ``pool``; recall and precision per reviewer and fused."""
    require_inspect()
    from fusion_core.config import load_config
    from fusion_core.eval.review_task import evaluate_review as run_review
    from fusion_core.eval.run import EvalOptions

    chosen = EvalOptions(
        tasks=str(dev_set),
        pool=",".join(pool),
        limit=limit,
        timeout_s=timeout_s,
        out_dir=Path(out_dir) if out_dir is not None else None,
    )
    resolved = config or load_config()
    report: ReviewReport = _outside_running_loop(lambda: run_review(chosen, tuple(pool), resolved))
    return report


def _outside_running_loop(call: Any) -> Any:
    """Run ``call`` here, or in a worker thread when this thread already runs an event loop (Jupyter)."""
    import asyncio
    import concurrent.futures

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return call()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()
