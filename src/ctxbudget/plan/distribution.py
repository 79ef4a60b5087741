"""Turns per session as an exact discrete distribution (support and probabilities).

Every distribution the spec allows has finite integer support, so quantiles and
expectations of cost per task are computed exactly by enumeration, never sampled:

- ``fixed``: one value, probability 1;
- ``uniform``: every integer in [min, max], equally likely;
- ``normal``: round(X), X ~ N(mean, sd), clipped to [min, max] (max defaults to
  ceil(mean + 4 sd)); P(n) = Φ((n+½-mean)/sd) − Φ((n−½-mean)/sd), with the tails
  folded into min and max;
- ``empirical``: the observed values, equally likely or weighted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .spec import EmpiricalTurns, FixedTurns, NormalTurns, SessionSpec, UniformTurns

__all__ = ["TurnsDistribution", "turns_distribution"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnsDistribution:
    """A discrete distribution of turns per session."""

    kind: str
    support: tuple[int, ...]
    """Ascending distinct turn counts."""
    probs: tuple[float, ...]
    """P(turns = support[i]); they add up to 1."""

    @property
    def max_turns(self) -> int:
        return self.support[-1]

    @property
    def mean(self) -> float:
        return sum(n * p for n, p in zip(self.support, self.probs, strict=True))

    def quantile(self, q: float) -> int:
        """The smallest n with P(turns <= n) >= q."""
        acc = 0.0
        for n, p in zip(self.support, self.probs, strict=True):
            acc += p
            if acc >= q - 1e-12:
                return n
        return self.support[-1]

    def sample(self, rng: object, size: int) -> object:
        """``size`` draws as a numpy int array (``rng`` is a numpy Generator)."""
        import numpy as np

        gen: np.random.Generator = rng  # type: ignore[assignment]
        return gen.choice(np.asarray(self.support, dtype=np.int64), size=size,
                          p=np.asarray(self.probs, dtype=np.float64))

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "mean_turns": round(self.mean, 6),
                "support": [{"turns": n, "p": round(p, 12)}
                            for n, p in zip(self.support, self.probs, strict=True)]}


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _normalize(pairs: Sequence[tuple[int, float]], kind: str) -> TurnsDistribution:
    acc: dict[int, float] = {}
    for n, p in pairs:
        acc[n] = acc.get(n, 0.0) + p
    items = sorted((n, p) for n, p in acc.items() if p > 0)
    total = sum(p for _, p in items)
    return TurnsDistribution(kind=kind, support=tuple(n for n, _ in items),
                             probs=tuple(p / total for _, p in items))


def turns_distribution(session: SessionSpec, override: int | None = None) -> TurnsDistribution:
    """The spec's turns distribution (``override`` forces a fixed number of turns)."""
    t = session.turns
    if override is not None:
        return TurnsDistribution(kind="fixed", support=(override,), probs=(1.0,))
    if isinstance(t, int):
        return TurnsDistribution(kind="fixed", support=(t,), probs=(1.0,))
    if isinstance(t, FixedTurns):
        return TurnsDistribution(kind="fixed", support=(t.turns,), probs=(1.0,))
    if isinstance(t, UniformTurns):
        n = t.max - t.min + 1
        return TurnsDistribution(kind="uniform", support=tuple(range(t.min, t.max + 1)),
                                 probs=tuple([1.0 / n] * n))
    if isinstance(t, NormalTurns):
        hi = t.max if t.max is not None else max(t.min, math.ceil(t.mean + 4 * t.sd))
        if t.sd == 0:
            v = min(max(round(t.mean), t.min), hi)
            return TurnsDistribution(kind="normal", support=(v,), probs=(1.0,))
        pairs = []
        for n in range(t.min, hi + 1):
            lo_x = -math.inf if n == t.min else (n - 0.5 - t.mean) / t.sd
            hi_x = math.inf if n == hi else (n + 0.5 - t.mean) / t.sd
            lo_p = 0.0 if lo_x == -math.inf else _phi(lo_x)
            hi_p = 1.0 if hi_x == math.inf else _phi(hi_x)
            pairs.append((n, hi_p - lo_p))
        return _normalize(pairs, "normal")
    assert isinstance(t, EmpiricalTurns)
    weights = t.weights or [1.0] * len(t.values)
    return _normalize(list(zip(t.values, weights, strict=True)), "empirical")
