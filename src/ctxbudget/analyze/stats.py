"""Small statistics: the one-sided Mann-Whitney U test (no scipy needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["mann_whitney_greater", "median"]


def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if n == 0:
        raise ValueError("median of an empty sample")
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2


def mann_whitney_greater(recent: Sequence[float], baseline: Sequence[float]) -> tuple[float, float]:
    """U statistic of ``recent`` and the one-sided p-value that it is stochastically greater.

    Normal approximation with tie correction and continuity correction (what
    ``scipy.stats.mannwhitneyu(recent, baseline, alternative="greater",
    method="asymptotic")`` computes). Meant for samples of 20 or more each.
    """
    n1, n2 = len(recent), len(baseline)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one value")
    pooled = sorted([(v, 0) for v in recent] + [(v, 1) for v in baseline])
    ranks = [0.0] * len(pooled)
    tie_term = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        r = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[k] = r
        t = j - i + 1
        tie_term += t**3 - t
        i = j + 1
    r1 = sum(r for r, (_, g) in zip(ranks, pooled, strict=True) if g == 0)
    u1 = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    mu = n1 * n2 / 2
    var = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if var <= 0:
        return u1, 1.0 if u1 <= mu else 0.0
    z = (u1 - mu - 0.5) / math.sqrt(var)
    p = 0.5 * math.erfc(z / math.sqrt(2))
    return u1, p
