"""Fusion modes as strategies in one table: ``MODES[name]``."""

from __future__ import annotations

from fusion_core.modes.base import Mode, SingleRound, Verdict, VerdictFormatError
from fusion_core.modes.best_of import BestOf
from fusion_core.modes.debate import Debate
from fusion_core.modes.merge import Merge

MODES: dict[str, Mode] = {"best-of": BestOf(), "merge": Merge(), "debate": Debate()}

__all__ = ["MODES", "BestOf", "Debate", "Merge", "Mode", "SingleRound", "Verdict", "VerdictFormatError"]
