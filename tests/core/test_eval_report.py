"""The report of `fusion eval`: statistics, the JSON shape, the table and the notebook rendering."""

from __future__ import annotations

import json

import pytest

from fusion_core.eval.report import SampleRecord, build_report
from fusion_core.eval.stats import judge_efficiency, mean_ci95, pareto_front, percentile, sign_test, wilson_ci95


def test_wilson_interval_matches_the_textbook_value() -> None:
    low, high = wilson_ci95(6, 75)
    assert low == pytest.approx(0.0371, abs=1e-3) and high == pytest.approx(0.1637, abs=1e-3)
    assert wilson_ci95(0, 0) == (0.0, 1.0)
    assert mean_ci95([0.5, 0.5, 0.5]) == (0.5, 0.5)


def test_sign_test_is_exact() -> None:
    assert sign_test(0, 0) == 1.0
    assert sign_test(6, 0) == pytest.approx(2 / 64)
    assert sign_test(2, 1) == 1.0
    assert sign_test(10, 2) == pytest.approx(0.0386, abs=1e-4)


def test_percentiles_pareto_and_judge_efficiency() -> None:
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    # (cost, accuracy): the second is dearer and worse, so off the front.
    assert pareto_front([(0.0, 0.5), (1.0, 0.4), (2.0, 0.9)]) == [0, 2]
    assert judge_efficiency(0.2, 0.1, 0.3) == pytest.approx(0.5)
    assert judge_efficiency(0.1, 0.1, 0.1) is None


def samples() -> list[SampleRecord]:
    """Two members, a fusion system and the oracle over four tasks."""
    a = [1, 0, 0, 1]
    b = [0, 0, 1, 0]
    fused = [1, 0, 1, 0]
    records = []
    for i in range(4):
        records.append(SampleRecord(str(i), "m/a", "member", "alone", a[i], f"a{i}", a[i], False, 1.0, 0.001, 10))
        records.append(SampleRecord(str(i), "m/b", "member", "alone", b[i], f"b{i}", b[i] / 2, i == 3, 2.0, 0.002, 20))
    for i in range(4):
        records.append(
            SampleRecord(
                str(i), "fusion best-of", "fusion", "best-of", fused[i], f"f{i}", fused[i], False, 3.0 + i, 0.004, 40
            )
        )
    for i in range(4):
        best = max(a[i], b[i])
        records.append(SampleRecord(str(i), "oracle (any candidate)", "oracle", "upper bound", best, "", best))
    return records


def test_rows_paired_tests_and_json_shape() -> None:
    report = build_report(samples(), derived=["m/a", "m/b"], greedy="m/a", log_dir="/logs")
    data = json.loads(report.to_json())
    assert set(data) >= {"rows", "paired", "samples", "log_dir"}
    rows = {r["system"]: r for r in data["rows"]}
    assert rows["m/a"]["accuracy"] == 0.5 and rows["m/b"]["partial_credit"] == 0.125
    assert rows["fusion best-of"]["cost_usd"] == pytest.approx(0.016)
    assert rows["fusion best-of"]["cost_per_task_usd"] == pytest.approx(0.004)
    assert rows["fusion best-of"]["latency_p50_s"] == 4.5 and rows["fusion best-of"]["tokens"] == 160
    assert rows["oracle (any candidate)"]["accuracy"] == 0.75
    # fused vs the greedy member: (0.5 - 0.5) / (0.75 - 0.5) = 0 on passes.
    assert rows["fusion best-of"]["judge_efficiency"]["pass"] == 0.0
    paired = {p["system"]: p for p in data["paired"]}
    assert paired["fusion best-of"] == {"system": "fusion best-of", "vs": "m/a", "wins": 1, "losses": 1, "p_value": 1.0}
    assert "oracle (any candidate)" not in paired
    assert data["samples"][1] == {
        "id": "0",
        "system": "m/b",
        "score": 0,
        "partial": 0.0,
        "answer": "b0",
        "truncated": False,
    }


def test_table_text_and_notebook_rendering() -> None:
    report = build_report(samples(), derived=["m/a", "m/b"], greedy="m/a")
    text = str(report)
    assert "m/a *" in text and "(upper bound)" in text and "+1/-1 p=1.00" in text
    assert "scored from the candidates of the fused run" in text
    html = report._repr_html_()
    assert "<table>" in html and 'src="data:image/png;base64,' in html
    assert report._repr_png_().startswith(b"\x89PNG")
    assert report.markdown().startswith("| system |")
