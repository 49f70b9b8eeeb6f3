"""The statistics of ``fusion eval``: confidence intervals, a paired sign test, percentiles, the Pareto front.

Small and exact on purpose: an evaluation of 40 tasks needs a Wilson interval
and an exact binomial test, not a statistics library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["judge_efficiency", "mean_ci95", "pareto_front", "percentile", "sign_test", "wilson_ci95"]

Z95 = 1.959963984540054


def wilson_ci95(successes: float, n: int) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when there is no data."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denominator
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """95% interval of a mean: Wilson for 0/1 scores, the normal approximation otherwise."""
    n = len(values)
    if n == 0:
        return 0.0, 1.0
    if all(v in (0.0, 1.0) for v in values):
        return wilson_ci95(sum(values), n)
    m = sum(values) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = Z95 * sd / math.sqrt(n)
    return max(0.0, m - half), min(1.0, m + half)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test (McNemar's exact test on the discordant pairs); ties are dropped."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail: float = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: cheaper-or-equal and at-least-as-accurate, one strictly."""
    front = []
    for i, (cost, acc) in enumerate(points):
        dominated = any((c <= cost and a >= acc) and (c < cost or a > acc) for j, (c, a) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return front


def judge_efficiency(fused: float, baseline: float, oracle: float) -> float | None:
    """(fused − baseline) / (oracle − baseline): the share of the oracle's gap the judge closed."""
    gap = oracle - baseline
    if gap <= 1e-12:
        return None
    return (fused - baseline) / gap
