"""The notebook's names for the run state, which lives in :mod:`fusion_core.run_state`.

The CLI's live table and the language server's progress read the same state
machine; this module only keeps the notebook's imports short and stable.
"""

from __future__ import annotations

from fusion_core.run_state import (
    CANCELLED,
    DONE,
    FAILED,
    FINAL_STATUSES,
    HEADER,
    JUDGE,
    JUDGING,
    NOTICES,
    REPAIRING,
    RESULT,
    SKIPPED,
    STREAMING,
    WAITING,
    JudgeState,
    PaneState,
    RunState,
    pane_part,
)

__all__ = [
    "CANCELLED",
    "DONE",
    "FAILED",
    "FINAL_STATUSES",
    "HEADER",
    "JUDGE",
    "JUDGING",
    "NOTICES",
    "REPAIRING",
    "RESULT",
    "SKIPPED",
    "STREAMING",
    "WAITING",
    "JudgeState",
    "PaneState",
    "RunState",
    "pane_part",
]
