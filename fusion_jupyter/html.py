"""HTML fragments and the stylesheet of the widget view.

Everything is escaped here, and every colour is a JupyterLab CSS variable
(with a neutral fallback for other front ends), so the view follows the light
and dark themes. The chart is plain HTML/CSS bars: no plotting dependency.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from fusion_core.display import error_text, format_cost, format_seconds, format_tokens, read_verdict
from fusion_core.result import ErrorInfo, FusionResult
from fusion_core.usage import Usage
from fusion_core.verdicts import BestOfVerdict, ExecVerdict, LikelihoodVerdict, MergeVerdict
from fusion_jupyter.state import (
    CANCELLED,
    DONE,
    FAILED,
    STREAMING,
    WAITING,
    PaneState,
    RunState,
)

# The pane's buttons. Their handlers are our own constant code; they only read the
# pane's text (escaped, never markup) and toggle a class on the pane.
_COPY_JS = (
    "const p=this.closest('.fusion-pane'),t=[...p.querySelectorAll('.fusion-text')].pop(),"
    "s=t?t.textContent:'',b=this,done=()=>{b.textContent='copied';setTimeout(()=>b.textContent='copy',1500)};"
    "if(navigator.clipboard&&window.isSecureContext){navigator.clipboard.writeText(s).then(done)}"
    "else{const a=document.createElement('textarea');a.value=s;document.body.appendChild(a);a.select();"
    "document.execCommand('copy');a.remove();done()}"
)
_COLLAPSE_JS = "this.closest('.fusion-pane').classList.toggle('fusion-collapsed')"
PANE_TOOLS = (
    '<span class="fusion-tools">'
    f'<button class="fusion-tool fusion-copy" title="copy this answer" onclick="{escape(_COPY_JS)}">copy</button>'
    f'<button class="fusion-tool fusion-collapse" title="collapse or expand this pane" '
    f'onclick="{escape(_COLLAPSE_JS)}"></button></span>'
)

# A static (text/markdown) copy of the result carries this class; the live view hides it.
STATIC_CLASS = "fusion-static"
MAX_POOL_CHARS = 160

STYLE = """<style>
.fusion-view { font-family: var(--jp-ui-font-family, sans-serif); font-size: var(--jp-ui-font-size1, 13px);
  color: var(--jp-ui-font-color1, inherit); border: 1px solid var(--jp-border-color2, #ccc);
  border-radius: 6px; padding: 8px 10px; background: var(--jp-layout-color1, transparent); }
.fusion-view .widget-html, .fusion-view .widget-html-content { width: 100%; line-height: 1.4; }
.fusion-header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 12px; }
.fusion-title { font-weight: 600; font-size: var(--jp-ui-font-size2, 15px); }
.fusion-chip { border: 1px solid var(--jp-border-color1, #999); border-radius: 10px; padding: 0 8px;
  font-size: var(--jp-ui-font-size0, 11px); color: var(--jp-ui-font-color1, inherit); }
.fusion-meta, .fusion-totals { color: var(--jp-ui-font-color2, #666); }
.fusion-totals { margin-left: auto; font-variant-numeric: tabular-nums; }
.fusion-view code { font-family: var(--jp-code-font-family, monospace); font-size: 0.95em; }
.fusion-notice { color: var(--jp-warn-color1, #a60); font-size: var(--jp-ui-font-size0, 11px); }
.fusion-pane { border: 1px solid var(--jp-border-color2, #ccc); border-top: 3px solid var(--fusion-status);
  border-radius: 4px; padding: 4px 8px 6px; min-width: 0;
  background: var(--jp-cell-editor-background, var(--jp-layout-color2, transparent)); }
.fusion-status-waiting { --fusion-status: var(--jp-border-color1, #999); }
.fusion-status-streaming { --fusion-status: var(--jp-brand-color1, #1976d2); }
.fusion-status-done { --fusion-status: var(--jp-success-color1, #388e3c); }
.fusion-status-failed { --fusion-status: var(--jp-error-color1, #d32f2f); }
.fusion-status-cancelled { --fusion-status: var(--jp-warn-color1, #f57c00); }
.fusion-pane-head { display: flex; align-items: center; gap: 6px; }
.fusion-tools { margin-left: auto; display: flex; gap: 2px; }
.fusion-tool { border: 1px solid var(--jp-border-color2, #ccc); border-radius: 3px; background: transparent;
  color: var(--jp-ui-font-color2, #666); font-size: var(--jp-ui-font-size0, 11px); padding: 0 5px; cursor: pointer; }
.fusion-tool:hover { color: var(--jp-ui-font-color0, #000); border-color: var(--jp-border-color1, #999); }
.fusion-collapse::after { content: "collapse"; }
.fusion-collapsed .fusion-collapse::after { content: "expand"; }
.fusion-collapsed .fusion-scroll { display: none; }
.fusion-badge.fusion-truncated { background: var(--jp-warn-color1, #f57c00); }
.fusion-model { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.fusion-badge { border-radius: 8px; padding: 0 7px; font-size: var(--jp-ui-font-size0, 11px);
  background: var(--fusion-status); color: var(--jp-ui-inverse-font-color1, #fff); white-space: nowrap; }
.fusion-stats { color: var(--jp-ui-font-color2, #666); font-size: var(--jp-ui-font-size0, 11px);
  font-variant-numeric: tabular-nums; }
.fusion-scroll { max-height: 15em; overflow-y: auto; display: flex; flex-direction: column-reverse; }
.fusion-text { white-space: pre-wrap; word-break: break-word; font-family: var(--jp-content-font-family, inherit);
  font-size: var(--jp-content-font-size1, 13px); line-height: 1.45; }
.fusion-placeholder { color: var(--jp-ui-font-color3, #999); font-style: italic; }
.fusion-round-title { font-size: var(--jp-ui-font-size0, 11px); color: var(--jp-ui-font-color2, #666);
  text-transform: uppercase; letter-spacing: 0.04em; margin-top: 4px; }
.fusion-error { color: var(--jp-error-color1, #d32f2f); font-size: var(--jp-ui-font-size1, 13px); }
.fusion-hint { color: var(--jp-ui-font-color2, #666); font-size: var(--jp-ui-font-size0, 11px); }
.fusion-section-title { font-weight: 600; margin: 8px 0 2px; }
.fusion-judge { color: var(--jp-ui-font-color2, #666); }
.fusion-answer { border-left: 3px solid var(--jp-brand-color1, #1976d2); padding-left: 8px; }
.fusion-verdict ul { margin: 2px 0 4px; padding-left: 20px; }
.fusion-verdict .fusion-who { color: var(--jp-ui-font-color2, #666); font-style: italic; }
.fusion-chart, .fusion-scores { display: grid; gap: 2px 8px; align-items: center;
  font-variant-numeric: tabular-nums; }
.fusion-chart { grid-template-columns: minmax(6em, max-content) minmax(60px, 1fr) 5em minmax(60px, 1fr) 7.5em; }
.fusion-scores { grid-template-columns: minmax(6em, max-content) minmax(60px, 320px) max-content; }
.fusion-scores .fusion-num { text-align: left; }
.fusion-rationale { margin-top: 4px; }
.fusion-rationale b { font-weight: 600; }
.fusion-chart-title { color: var(--jp-ui-font-color2, #666); }
.fusion-scores .fusion-chart-title { grid-column: 1 / -1; }
.fusion-bar { height: 10px; background: var(--jp-layout-color3, #ddd); border-radius: 3px; overflow: hidden; }
.fusion-bar > span { display: block; height: 100%; background: var(--jp-brand-color1, #1976d2); }
.fusion-bar.fusion-bar-failed > span { background: var(--jp-error-color1, #d32f2f); }
.fusion-bar.fusion-bar-winner > span { background: var(--jp-success-color1, #388e3c); }
.fusion-bar.fusion-bar-judge > span { background: var(--jp-ui-font-color2, #666); }
.fusion-num { text-align: right; color: var(--jp-ui-font-color2, #666); }
/* Highlighted code in the fused answer: Pygments' classes in the editor's theme colours. */
.fusion-answer pre { background: var(--jp-cell-editor-background, #f7f7f7); padding: 6px 8px; border-radius: 3px;
  overflow-x: auto; }
.fusion-answer pre code { font-family: var(--jp-code-font-family, monospace);
  font-size: var(--jp-code-font-size, 13px); }
.fusion-answer .k, .fusion-answer .kn, .fusion-answer .kd, .fusion-answer .kr, .fusion-answer .ow
  { color: var(--jp-mirror-editor-keyword-color, #008000); font-weight: bold; }
.fusion-answer .kc, .fusion-answer .m, .fusion-answer .mi, .fusion-answer .mf
  { color: var(--jp-mirror-editor-number-color, #080); }
.fusion-answer .s, .fusion-answer .s1, .fusion-answer .s2, .fusion-answer .sa, .fusion-answer .sd,
  .fusion-answer .se, .fusion-answer .si, .fusion-answer .sb { color: var(--jp-mirror-editor-string-color, #ba2121); }
.fusion-answer .c, .fusion-answer .c1, .fusion-answer .cm, .fusion-answer .ch
  { color: var(--jp-mirror-editor-comment-color, #408080); font-style: italic; }
.fusion-answer .nb, .fusion-answer .bp { color: var(--jp-mirror-editor-builtin-color, #008000); }
.fusion-answer .nf, .fusion-answer .fm, .fusion-answer .nc { color: var(--jp-mirror-editor-def-color, #00f); }
.fusion-answer .o { color: var(--jp-mirror-editor-operator-color, #aa22ff); }
.fusion-answer .nd { color: var(--jp-mirror-editor-meta-color, #aa22ff); }
/* In a live front end the widget shows everything; hide the static copy that follows it. */
.jp-OutputArea-child:has(.fusion-view) ~ .jp-OutputArea-child:has(.fusion-static) { display: none; }
</style>"""


def header(state: RunState, pool: Sequence[str], judge: str) -> str:
    """Mode, pool and judge, the run's phase, and live totals."""
    pool_text = ", ".join(pool)
    if len(pool_text) > MAX_POOL_CHARS:
        pool_text = pool_text[:MAX_POOL_CHARS] + "…"
    rounds = ""
    if state.mode == "debate" and state.rounds > 1:
        current = max((p.round for p in state.panes.values()), default=1)
        rounds = f' <span class="fusion-chip">round {current}/{state.rounds}</span>'
    totals = " · ".join(
        part for part in (format_tokens(state.usage), format_cost(state.usage), format_seconds(state.wall_s)) if part
    )
    return (
        '<div class="fusion-header">'
        '<span class="fusion-title">Fusion</span>'
        f'<span class="fusion-chip">{escape(state.mode or "…")}</span>{rounds}'
        f'<span class="fusion-chip fusion-phase">{escape(state.phase)}</span>'
        f'<span class="fusion-meta">pool <code>{escape(pool_text)}</code> · judge <code>{escape(judge)}</code></span>'
        f'<span class="fusion-totals">{escape(totals)}</span>'
        "</div>"
    )


def notices(messages: Iterable[str]) -> str:
    return "".join(f'<div class="fusion-notice">note: {escape(m)}</div>' for m in messages)


def pane_head(pane: PaneState, debate: bool, now: float | None = None) -> str:
    """Model name, status badge and the pane's buttons, then latency, tokens and cost.

    While the model streams, the stats show the time so far (from ``now``) and the
    chunks received, about one token each.
    """
    status = pane.status + (f" · round {pane.round}" if debate and pane.round > 1 else "")
    stats = []
    if pane.status == STREAMING:
        if now is not None and pane.started_at is not None:
            stats.append(format_seconds(pane.latency_s + now - pane.started_at))
        stats.append(f"~{pane.chunks:,} tokens so far")
    else:
        if pane.status != WAITING or pane.latency_s:
            stats.append(format_seconds(pane.latency_s))
        if pane.usage is not None:
            stats += [format_tokens(pane.usage), format_cost(pane.usage)]
    truncated = (
        '<span class="fusion-badge fusion-truncated" title="stopped at max_tokens: the answer is cut off">'
        "truncated</span>"
        if pane.truncated
        else ""
    )
    return (
        '<div class="fusion-pane-head">'
        f'<span class="fusion-model" title="{escape(pane.model)}">{escape(pane.model)}</span>'
        f'<span class="fusion-badge">{escape(status)}</span>{truncated}</div>'
        f'<div class="fusion-pane-head"><span class="fusion-stats">{escape(" · ".join(s for s in stats if s))}</span>'
        f"{PANE_TOOLS}</div>"
    )


def pane_body(pane: PaneState, debate: bool) -> str:
    """The model's text (each round's, in a debate), then its error if it failed."""
    parts = []
    rounds = sorted(pane.texts) if debate else [pane.round]
    for number in rounds:
        text = pane.texts.get(number, "")
        if debate and len(rounds) > 1:
            parts.append(f'<div class="fusion-round-title">round {number}</div>')
        if text:
            parts.append(f'<div class="fusion-text">{escape(text)}</div>')
    if not parts and pane.status != FAILED:
        waiting = {WAITING: "waiting…", STREAMING: "waiting for the first token…"}
        parts.append(f'<div class="fusion-placeholder">{waiting.get(pane.status, "no text")}</div>')
    if pane.status == FAILED and pane.error is not None:
        parts.append(_error(pane.error))
    # column-reverse keeps the scroll pinned to the newest text while it streams
    return f'<div class="fusion-scroll"><div>{"".join(parts)}</div></div>'


def judge_line(state: RunState) -> str:
    judge = state.judge
    words = {
        WAITING: "waits for the candidates",
        "judging": f"is judging… ({judge.chunks} chunks)",
        "repairing": f"asked to repair an off-format verdict… ({judge.chunks} chunks)",
        DONE: "done",
        FAILED: "failed",
        CANCELLED: "cancelled",
        "skipped": "not run: no candidate answered",
    }
    status = escape(words.get(judge.status, judge.status))
    line = f'<div class="fusion-judge">judge <code>{escape(judge.model)}</code> {status}</div>'
    return line + (_error(judge.error) if judge.error is not None else "")


def _error(error: ErrorInfo) -> str:
    """What went wrong, then what to do about it."""
    text = f'<div class="fusion-error">{escape(error_text(error.kind, error.status, error.message))}</div>'
    return text + (f'<div class="fusion-hint">{escape(error.hint)}</div>' if error.hint else "")


def verdict(result: FusionResult) -> str:
    """best-of: winner and scores; merge and debate: the agreement analysis."""
    details = read_verdict(result.judge)
    if result.judge is None or details is None:
        return ""
    parts = [f'<div class="fusion-section-title">Verdict ({escape(result.mode)})</div>']
    if isinstance(details, MergeVerdict):
        parts.append(_analysis(details))
    else:
        parts.append(_scores(details))
    if result.judge.rationale:
        parts.append(f'<div class="fusion-rationale"><b>Judge\'s rationale:</b> {escape(result.judge.rationale)}</div>')
    return f'<div class="fusion-verdict">{"".join(parts)}</div>'


def _scores(details: BestOfVerdict | LikelihoodVerdict | ExecVerdict) -> str:
    winner = details.winner
    # Bars on the 0-10 scale (the execution judge's too); likelihoods are scaled to their range.
    likelihood = isinstance(details, LikelihoodVerdict)
    scores = [(model, score) for model, score in details.scores.items() if score is not None]
    rows = [f"<div>winner: <b>{escape(winner)}</b></div>", '<div class="fusion-scores">']
    rows.append(
        '<div class="fusion-chart-title">' + ("mean token log-probability" if likelihood else "score (0–10)") + "</div>"
    )
    values = [score for _, score in scores]
    low, high = (min(values, default=0.0), max(values, default=0.0)) if likelihood else (0.0, 10.0)
    for model, score in scores:
        share = (score - low) / (high - low) if high > low else 1.0
        rows.append(_bar_row(model, share, f"{score:g}", "winner" if model == winner else ""))
    rows.append("</div>")
    if not isinstance(details, BestOfVerdict) and details.components:
        # What each likelihood total is made of: the model's number and every penalty.
        rows.append(
            _list(
                "Likelihood components", [f"{escape(m)}: {escape(c.describe())}" for m, c in details.components.items()]
            )
        )
    if isinstance(details, BestOfVerdict) and details.swap is not None:
        agreed = "the two judgings agreed" if details.swap.agree else "the two judgings disagreed"
        rows.append(
            f'<div class="fusion-meta">position-bias check: {agreed} '
            f"(confidence {escape(details.swap.confidence)})</div>"
        )
    return "".join(rows)


def _analysis(details: MergeVerdict) -> str:
    parts = [
        '<div class="fusion-scores">'
        + _bar_row("confidence", details.confidence, f"{details.confidence:.0%}", "")
        + "</div>"
    ]
    parts.append(_list("Consensus", [escape(c) for c in details.consensus]))
    contradictions = []
    for item in details.contradictions:
        stances = "".join(f"<li><b>{escape(s.model)}</b>: {escape(s.stance)}</li>" for s in item.stances)
        contradictions.append(f"{escape(item.topic)}<ul>{stances}</ul>")
    parts.append(_list("Contradictions", contradictions))
    parts.append(
        _list(
            "Unique insights",
            [
                f'{escape(i.insight)} <span class="fusion-who">— {escape(i.model)}</span>'
                for i in details.unique_insights
            ],
        )
    )
    parts.append(_list("Blind spots", [escape(b) for b in details.blind_spots]))
    return "".join(parts)


def _list(title: str, items: list[str]) -> str:
    if not items:
        return ""
    return f"<div><b>{title}</b><ul>{''.join(f'<li>{item}</li>' for item in items)}</ul></div>"


def chart(state: RunState) -> str:
    """Latency and cost per model, as bars side by side.

    Latency bars are scaled to the slowest model. Cost bars are each model's share
    of what the whole run cost (the judge's row included), from zero: equal costs
    show as equal partial bars, not as a row of full ones.
    """
    panes = list(state.panes.values())
    if not panes:
        return ""
    longest = max((p.latency_s for p in panes), default=0.0)
    rows_cost = [(p.model, p.usage, _bar_kind(p), p.latency_s) for p in panes]
    judge = state.result.judge if state.result is not None else None
    judge_usage = judge.usage if judge is not None and judge.usage.cost is not None else None
    usages = [u for _, u, _, _ in rows_cost] + [judge_usage]
    total = sum(u.cost for u in usages if u is not None and u.cost is not None)
    rows = [
        '<div class="fusion-section-title">Latency and cost</div><div class="fusion-chart">',
        '<div></div><div class="fusion-chart-title">latency</div><div></div>'
        '<div class="fusion-chart-title">cost (share of the run)</div><div></div>',
    ]
    for model, usage, kind, latency in rows_cost:
        rows.append(_bar_row(model, latency / longest if longest else 0.0, format_seconds(latency), kind))
        rows.append(_bar(_share(usage, total), format_cost(usage), kind))
    if judge is not None and judge_usage is not None:
        rows.append(f'<div class="fusion-model" title="judge {escape(judge.model)}">judge</div><div></div><div></div>')
        rows.append(_bar(_share(judge_usage, total), format_cost(judge_usage), "judge"))
    rows.append("</div>")
    return "".join(rows)


def _share(usage: Usage | None, total: float) -> float:
    if usage is None or usage.cost is None or total <= 0:
        return 0.0
    return usage.cost / total


def _bar_kind(pane: PaneState) -> str:
    return "failed" if pane.status in (FAILED, CANCELLED) else ""


def _bar_row(name: str, share: float, value: str, kind: str) -> str:
    return f'<div class="fusion-model" title="{escape(name)}">{escape(name)}</div>' + _bar(share, value, kind)


def _bar(share: float, value: str, kind: str) -> str:
    width = max(0.0, min(share, 1.0)) * 100
    css = f"fusion-bar fusion-bar-{kind}" if kind else "fusion-bar"
    return (
        f'<div class="{css}"><span style="width: {width:.1f}%"></span></div>'
        f'<div class="fusion-num">{escape(value)}</div>'
    )
