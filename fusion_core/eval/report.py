"""The report of ``fusion eval``: one row per system, paired comparisons, every sample, a chart.

Plain data built from graded samples, independent of inspect, so it serialises
to the documented JSON shape, prints as a table, and renders in Jupyter
(``_repr_html_``: the table and the accuracy-versus-cost chart).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from fusion_core.eval.stats import judge_efficiency, mean_ci95, pareto_front, percentile, sign_test

__all__ = ["EvalReport", "PairedResult", "Row", "SampleRecord", "build_report", "markdown_table", "text_table"]

Kind = Literal["member", "fusion", "oracle"]
ORACLE = "oracle (any candidate)"


@dataclass(frozen=True)
class SampleRecord:
    """One system's graded answer to one sample (``id`` includes the epoch when there are several)."""

    id: str
    system: str
    kind: Kind
    mode: str
    score: float
    answer: str
    partial: float | None = None
    truncated: bool = False
    latency_s: float | None = None
    cost_usd: float | None = None
    tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "system": self.system,
            "score": self.score,
            "partial": self.partial,
            "answer": self.answer,
            "truncated": self.truncated,
        }


@dataclass(frozen=True)
class Row:
    """One system's totals. ``derived``: scored from the candidates of a fused run, not generated again."""

    system: str
    kind: Kind
    mode: str
    n: int
    accuracy: float
    ci95: tuple[float, float]
    partial_credit: float | None
    cost_usd: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    tokens: int
    derived: bool = False
    judge: str | None = None
    judge_efficiency: dict[str, float | None] | None = None

    @property
    def cost_per_task_usd(self) -> float | None:
        return None if self.cost_usd is None or not self.n else self.cost_usd / self.n

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ci95"] = list(self.ci95)
        data["cost_per_task_usd"] = self.cost_per_task_usd
        return data


@dataclass(frozen=True)
class PairedResult:
    """``system`` against ``vs`` on the samples both answered."""

    system: str
    vs: str
    wins: int
    losses: int
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvalReport:
    """What ``fusion eval`` measured. ``str()`` is the table; Jupyter shows the table and chart."""

    rows: list[Row]
    paired: list[PairedResult]
    samples: list[SampleRecord]
    log_dir: str | None = None
    notes: list[str] = field(default_factory=list)
    baseline: str | None = None

    def row(self, system: str) -> Row:
        """The row of ``system``."""
        return next(r for r in self.rows if r.system == system)

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape: rows, paired, samples, log_dir (plus notes and the baseline)."""
        return {
            "rows": [r.to_dict() for r in self.rows],
            "paired": [p.to_dict() for p in self.paired],
            "samples": [s.to_dict() for s in self.samples],
            "log_dir": self.log_dir,
            "baseline": self.baseline,
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def table_rows(self) -> list[list[str]]:
        """Header and cells of the table, as text."""
        paired = {p.system: p for p in self.paired}
        header = ["system", "n", "accuracy [95% CI]", "partial", "vs best member", "$/task", "$ total"]
        header += ["p50 s", "p95 s", "tokens", "judge eff."]
        lines = [header]
        for r in self.rows:
            p = paired.get(r.system)
            versus = f"+{p.wins}/-{p.losses} p={p.p_value:.2f}" if p else ("(best)" if r.system == self.best else "")
            eff = r.judge_efficiency or {}
            eff_text = " / ".join(_pct(eff.get(k)) or "n/a" for k in ("pass", "partial") if k in eff) if eff else ""
            name = r.system + (" *" if r.derived else "") + (" (upper bound)" if r.kind == "oracle" else "")
            lines.append(
                [
                    name,
                    str(r.n),
                    f"{r.accuracy:.1%} [{r.ci95[0]:.0%}, {r.ci95[1]:.0%}]",
                    _pct(r.partial_credit),
                    versus,
                    _money(r.cost_per_task_usd),
                    _money(r.cost_usd),
                    _secs(r.latency_p50_s),
                    _secs(r.latency_p95_s),
                    str(r.tokens) if r.kind != "oracle" else "",
                    eff_text,
                ]
            )
        return lines

    @property
    def best(self) -> str | None:
        """The best single member (the paired tests' reference)."""
        members = [r for r in self.rows if r.kind == "member"]
        if not members:
            return None
        return max(members, key=lambda r: (r.accuracy, r.partial_credit or 0.0)).system

    def table(self) -> str:
        """The table as aligned plain text, with its footnotes."""
        return "\n".join([text_table(self.table_rows()), "", *self.footnotes()])

    def markdown(self) -> str:
        """The table in Markdown (for a README)."""
        return "\n".join([markdown_table(self.table_rows()), "", *(f"{n}  " for n in self.footnotes())])

    def footnotes(self) -> list[str]:
        notes = []
        if any(r.derived for r in self.rows):
            notes.append(
                "* scored from the candidates of the fused run: the same samples, text, cost and latency "
                "as the member run alone (no second generation)"
            )
        if self.baseline:
            notes.append(f"judge eff. = (fused - {self.baseline}) / (oracle - {self.baseline}), pass / partial")
        return notes + self.notes

    def __str__(self) -> str:
        return self.table()

    def chart_png(self) -> bytes:
        """Accuracy against cost per task (or median latency when nothing cost money), Pareto front marked."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        systems = [r for r in self.rows if r.kind != "oracle"]
        priced = any((r.cost_per_task_usd or 0) > 0 for r in systems)

        def x_of(r: Row) -> float:
            return (r.cost_per_task_usd or 0.0) if priced else (r.latency_p50_s or 0.0)

        points = [(x_of(r), r.accuracy) for r in systems]
        front = set(pareto_front(points))
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
        for i, r in enumerate(systems):
            colour = "tab:blue" if r.kind == "member" else "tab:red"
            ax.scatter(*points[i], s=60, color=colour, edgecolors="black" if i in front else "none", zorder=3)
            # Staggered, short labels: samples of one model often land on the same spot.
            label = r.system.rsplit("/", 1)[-1]
            ax.annotate(label, points[i], textcoords="offset points", xytext=(6, 6 - 9 * (i % 4)), fontsize=7)
        ordered = sorted((points[i] for i in front), key=lambda p: p[0])
        if len(ordered) > 1:
            ax.plot([p[0] for p in ordered], [p[1] for p in ordered], "--", color="grey", label="Pareto front")
        for r in self.rows:
            if r.kind == "oracle":
                ax.axhline(r.accuracy, color="green", linestyle=":", label="oracle (upper bound, not a system)")
        ax.set_xlabel("cost per task (USD)" if priced else "median latency per task (s), local: no money cost")
        ax.set_ylabel("accuracy (pass)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=7)
        ax.set_title("members (blue) and fusion (red)", fontsize=9)
        buffer = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        return buffer.getvalue()

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        """Write ``report.json``, ``report.md`` (the table) and ``chart.png`` into ``out_dir``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        report, chart = out_dir / "report.json", out_dir / "chart.png"
        report.write_text(self.to_json() + "\n", encoding="utf-8")
        (out_dir / "report.md").write_text(self.markdown() + "\n", encoding="utf-8")
        chart.write_bytes(self.chart_png())
        return report, chart

    def _repr_html_(self) -> str:
        lines = self.table_rows()
        head = "".join(f"<th>{html.escape(c)}</th>" for c in lines[0])
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>" for line in lines[1:])
        notes = "".join(f"<p><small>{html.escape(n)}</small></p>" for n in self.footnotes())
        image = base64.b64encode(self.chart_png()).decode()
        chart = f'<img alt="accuracy versus cost" src="data:image/png;base64,{image}"/>'
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}{chart}"

    def _repr_png_(self) -> bytes:
        return self.chart_png()


def build_report(
    samples: Sequence[SampleRecord],
    *,
    judges: dict[str, str] | None = None,
    derived: Sequence[str] = (),
    greedy: str | None = None,
    log_dir: str | None = None,
    notes: Sequence[str] = (),
) -> EvalReport:
    """Rows, paired tests against the best member, and judge efficiency, from graded samples."""
    order = list(dict.fromkeys(s.system for s in samples))
    by_system = {name: [s for s in samples if s.system == name] for name in order}
    rows = [_row(name, items, (judges or {}).get(name), name in derived) for name, items in by_system.items()]
    report = EvalReport(rows=rows, paired=[], samples=list(samples), log_dir=log_dir, notes=list(notes))
    best = report.best
    if best is not None:
        reference = {s.id: s.score for s in by_system[best]}
        for r in rows:
            if r.system == best or r.kind == "oracle":
                continue
            both = [(s.score, reference[s.id]) for s in by_system[r.system] if s.id in reference]
            wins = sum(a > b for a, b in both)
            losses = sum(a < b for a, b in both)
            report.paired.append(PairedResult(r.system, best, wins, losses, sign_test(wins, losses)))
    oracle = next((r for r in rows if r.kind == "oracle"), None)
    baseline_name = greedy or best
    if oracle is not None and baseline_name is not None:
        base = report.row(baseline_name)
        report.baseline = baseline_name
        report.rows = [_with_efficiency(r, base, oracle) if r.kind == "fusion" else r for r in rows]
    return report


def _row(name: str, items: list[SampleRecord], judge: str | None, derived: bool) -> Row:
    scores = [s.score for s in items]
    partials = [s.partial for s in items if s.partial is not None]
    costs = [s.cost_usd for s in items if s.cost_usd is not None]
    latencies = [s.latency_s for s in items if s.latency_s is not None]
    n = len(items)
    return Row(
        system=name,
        kind=items[0].kind,
        mode=items[0].mode,
        n=n,
        accuracy=sum(scores) / n if n else 0.0,
        ci95=mean_ci95(scores),
        partial_credit=sum(partials) / len(partials) if partials else None,
        cost_usd=sum(costs) if costs else None,
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
        tokens=sum(s.tokens for s in items),
        derived=derived,
        judge=judge,
    )


def _with_efficiency(row: Row, base: Row, oracle: Row) -> Row:
    from dataclasses import replace

    eff: dict[str, float | None] = {"pass": judge_efficiency(row.accuracy, base.accuracy, oracle.accuracy)}
    if row.partial_credit is not None and base.partial_credit is not None and oracle.partial_credit is not None:
        eff["partial"] = judge_efficiency(row.partial_credit, base.partial_credit, oracle.partial_credit)
    return replace(row, judge_efficiency=eff)


def text_table(lines: list[list[str]]) -> str:
    """Header and rows of cells as aligned plain text, a rule under the header."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def markdown_table(lines: list[list[str]]) -> str:
    """Header and rows of cells as a Markdown table."""
    out = ["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(lines[0])]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines[1:]]
    return "\n".join(out)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:.6f}"


def _secs(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"
