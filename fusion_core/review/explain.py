"""The judge explains one merged finding on request: is it real, why, and what the fix changes.

Merging needs no judge; this is the only judge call of a review. A remote judge
sees the file, the reports and the fix with secrets redacted
(:mod:`fusion_core.redaction`); a local judge sees them as they are.
"""

from __future__ import annotations

from dataclasses import replace

from fusion_core.backends.base import Backend, ChatRequest, Completion, Message, complete
from fusion_core.cost import check_cost
from fusion_core.findings import MergedFinding
from fusion_core.framing import DATA_NOTICE, block, new_nonce
from fusion_core.pool import Job
from fusion_core.redaction import redact_code, wire_text
from fusion_core.review.prompt import split_lines

__all__ = ["EXPLAIN_INSTRUCTIONS", "EXPLAIN_MAX_TOKENS", "explain"]

EXPLAIN_INSTRUCTIONS = (
    "You are the judge of a panel of code reviewers. Several models reviewed the same code; "
    "you get their reports about one location. In at most six sentences: say whether the "
    "problem is real, why, and what the suggested fix changes. Plain text, no JSON."
)
EXPLAIN_MAX_TOKENS = 400


async def explain(
    backend: Backend,
    model: str,
    finding: MergedFinding,
    code: str,
    *,
    is_local: bool,
    cost_cap_usd: float | None = None,
) -> Completion:
    """The judge's rationale for ``finding`` (``finish_reason`` ``length``: cut at max_tokens).

    ``code`` is the file text, redacted here if the judge is remote.
    """
    lines = split_lines(wire_text(code))
    reports = "\n".join(f"- {r.model} ({r.severity}, {r.category}): {r.message}" for r in finding.reports)
    fix = finding.fix.text if finding.fix else "(none)"
    if not is_local:
        # Redact the whole file before cutting the excerpt: what makes a line a secret (a
        # private key's BEGIN line) may lie outside the window. The reports and the fix go
        # through the same redaction, so they may quote the code. Line breaks are kept.
        report_lines, fix_lines = split_lines(wire_text(reports)), split_lines(wire_text(fix))
        redacted = split_lines(redact_code("\n".join([*lines, *report_lines, *fix_lines])).text)
        code_end, reports_end = len(lines), len(lines) + len(report_lines)
        lines = redacted[:code_end]
        reports, fix = "\n".join(redacted[code_end:reports_end]), "\n".join(redacted[reports_end:])
    first, last = max(1, finding.start_line - 8), min(len(lines), finding.end_line + 8)
    excerpt = "\n".join(f"{n}| {lines[n - 1]}" for n in range(first, last + 1))
    nonce = new_nonce()
    body = (
        f"Code (lines {first}-{last}):\n{excerpt}\n\nReports ({finding.agreement}):\n{reports}\n\nSuggested fix:\n{fix}"
    )
    user = "\n\n".join([DATA_NOTICE.format(nonce=nonce), block("finding", "F", body, nonce)])
    request = ChatRequest(
        model=model,
        messages=(Message("system", EXPLAIN_INSTRUCTIONS), Message("user", user)),
        temperature=0.0,
        max_tokens=EXPLAIN_MAX_TOKENS,
    )
    if cost_cap_usd is not None:
        await check_cost([Job(member=model, label="judge", backend=backend, request=request)], cost_cap_usd)
    reply = await complete(backend, request)
    return replace(reply, text=reply.text.strip())
