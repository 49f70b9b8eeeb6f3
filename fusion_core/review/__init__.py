"""Fused code review: ask a pool of reviewers for findings, then merge what they agree on.

The pipeline, one module per step::

    prompt    the request every reviewer model gets (numbered code framed as data, a JSON schema)
    run       check the pool, build the requests (cost known first), send them, run the analysers
    parse     each reply (or analyser run) becomes that reviewer's findings, or its failure
    merge     findings about the same lines and problem merge; agreement drives severity
    explain   the judge's rationale for one merged finding, on request

The finding types and their parse/merge rules live in :mod:`fusion_core.findings`
(shared with the analysers); every public name is re-exported here, so
``from fusion_core.review import ReviewTarget, review`` is the one import front
ends need. :meth:`fusion_core.engine.Fusion.review` runs a review from a session.
"""

from __future__ import annotations

from fusion_core.cost import check_cost, estimate_cost
from fusion_core.errors import CostCapExceeded
from fusion_core.findings import (
    CATEGORIES,
    SEVERITIES,
    Finding,
    Fix,
    MergedFinding,
    Severity,
    agreed_severity,
    merge_findings,
    parse_findings,
)
from fusion_core.review.explain import EXPLAIN_INSTRUCTIONS, EXPLAIN_MAX_TOKENS, explain
from fusion_core.review.merge import ReviewOutcome
from fusion_core.review.prompt import (
    FINDINGS_SCHEMA,
    INSTRUCTIONS,
    SELECTION_CONTEXT_LINES,
    ReviewTarget,
    review_messages,
)
from fusion_core.review.run import (
    DEFAULT_REVIEW_MAX_TOKENS,
    DEFAULT_REVIEW_TEMPERATURE,
    DEFAULT_REVIEW_TIMEOUT_S,
    MAX_REVIEW_CHARS,
    ReviewPlan,
    ReviewSettings,
    plan_review,
    review,
    run_plan,
)

__all__ = [
    "CATEGORIES",
    "DEFAULT_REVIEW_MAX_TOKENS",
    "DEFAULT_REVIEW_TEMPERATURE",
    "DEFAULT_REVIEW_TIMEOUT_S",
    "EXPLAIN_INSTRUCTIONS",
    "EXPLAIN_MAX_TOKENS",
    "FINDINGS_SCHEMA",
    "INSTRUCTIONS",
    "MAX_REVIEW_CHARS",
    "SELECTION_CONTEXT_LINES",
    "SEVERITIES",
    "CostCapExceeded",
    "Finding",
    "Fix",
    "MergedFinding",
    "ReviewOutcome",
    "ReviewPlan",
    "ReviewSettings",
    "ReviewTarget",
    "Severity",
    "agreed_severity",
    "check_cost",
    "estimate_cost",
    "explain",
    "merge_findings",
    "parse_findings",
    "plan_review",
    "review",
    "review_messages",
    "run_plan",
]
