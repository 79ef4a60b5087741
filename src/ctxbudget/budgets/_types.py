"""Budgets, amounts, reservations and decisions: the values every ledger backend shares."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from ..errors import CtxBudgetError, SpecError
from ._windows import Window

__all__ = [
    "NANO",
    "Amount",
    "Budget",
    "BudgetState",
    "BudgetStoreError",
    "Charge",
    "Clock",
    "Decision",
    "Metric",
    "Reservation",
    "system_clock",
]

Metric = Literal["usd", "tokens", "calls"]
Clock = Callable[[], datetime]

#: Ledgers count USD in integer nano-dollars (1e-9 USD); a reserved or settled cost is
#: rounded *up* to the next nano-dollar, so the ledger never under-counts.
NANO = Decimal(1_000_000_000)


def system_clock() -> datetime:
    """The default clock: timezone-aware UTC now."""
    return datetime.now(UTC)


class BudgetStoreError(CtxBudgetError):
    """The budget ledger could not be read or written (file, Redis down...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """One limit: at most ``limit`` of ``metric`` per ``window`` (per scope).

    ``metric``: ``usd`` (priced cost), ``tokens`` (prompt + output tokens) or ``calls``.
    A ``soft`` budget never blocks: crossing it is reported in
    :attr:`Decision.soft_exceeded` (the gateway fires its alert webhook)."""

    name: str
    limit: Decimal
    metric: Metric = "usd"
    window: Window = field(default_factory=lambda: Window.parse("day"))
    soft: bool = False
    _limit_units: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        if not self.name or "\x1f" in self.name:
            raise SpecError("budget name must be a non-empty string")
        if self.metric not in ("usd", "tokens", "calls"):
            raise SpecError(f"budget {self.name!r}: metric must be usd, tokens or calls, "
                            f"got {self.metric!r}")
        lim = Decimal(self.limit)
        if not lim.is_finite() or lim < 0:
            raise SpecError(f"budget {self.name!r}: limit must be a number >= 0, got {self.limit}")
        object.__setattr__(self, "limit", lim)
        object.__setattr__(self, "_limit_units", math.floor(lim * NANO)
                           if self.metric == "usd" else int(lim))

    def units(self, value: Decimal | int) -> int:
        """``value`` in the ledger's integer unit for this metric (nano-USD rounded up)."""
        if self.metric == "usd":
            return math.ceil(Decimal(value) * NANO)
        return int(value)

    def value(self, units: int) -> Decimal:
        """Ledger units back to the metric's value."""
        return Decimal(units) / NANO if self.metric == "usd" else Decimal(units)

    @property
    def limit_units(self) -> int:
        """The limit in ledger units (nano-USD rounded down, so the limit is never
        exceeded by rounding)."""
        return self._limit_units


@dataclass(frozen=True, slots=True)
class Charge:
    """A budget as it applies to one request: ``scope`` says whose counter it is (the
    hashed key, user, team or task id the budget is per; ``""`` for one shared counter).
    A ``task`` window is per task: its scope must be the task id."""

    budget: Budget
    scope: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Amount:
    """What a request costs (or may cost): USD, tokens (prompt + output), calls."""

    usd: Decimal = Decimal(0)
    tokens: int = 0
    calls: int = 1

    def of(self, metric: Metric) -> Decimal | int:
        return self.usd if metric == "usd" else self.tokens if metric == "tokens" else self.calls


@dataclass(frozen=True, slots=True)
class Entry:
    """One counter a reservation holds units on."""

    counter: str
    """``name\\x1fscope\\x1fbucket``."""
    metric: Metric
    units: int
    slot: int
    """Rolling slot the spend lands in (-1 for other windows)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reservation:
    """Units held on every counter of a request until :meth:`settle` / :meth:`release`
    (or until ``expires_at``: a reservation orphaned by a crash frees itself)."""

    id: str
    entries: tuple[Entry, ...]
    expires_at: float
    """Unix time after which the hold is dropped (a later settle still adds the spend)."""
    amount: Amount

    @staticmethod
    def new_id() -> str:
        """32 random hex digits (as unique as a UUID4, without building one)."""
        return os.urandom(16).hex()


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetState:
    """A budget's counter as seen by one decision (values in the metric's unit)."""

    name: str
    scope: str
    metric: Metric
    limit: Decimal
    spent: Decimal
    """Settled spend in the current window."""
    held: Decimal
    """Reserved by requests in flight (this request's reservation included once allowed)."""
    resets_at: datetime | None
    soft: bool = False

    @property
    def remaining(self) -> Decimal:
        """``limit - spent - held``, never below 0."""
        return max(Decimal(0), self.limit - self.spent - self.held)


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The answer to :meth:`Ledger.reserve`."""

    allowed: bool
    reservation: Reservation | None
    """Set when allowed: pass it to ``settle`` or ``release``."""
    states: tuple[BudgetState, ...]
    blocked_by: BudgetState | None = None
    """The first hard budget the request would have passed (when not allowed)."""
    soft_exceeded: tuple[BudgetState, ...] = ()
    """Soft budgets this request's reservation takes past their limit."""

    def tightest(self) -> BudgetState | None:
        """The state with the least remaining fraction (for response headers)."""
        best: BudgetState | None = self.blocked_by
        if best is not None:
            return best
        frac: Decimal | None = None
        for s in self.states:
            if s.soft:
                continue
            f = s.remaining / s.limit if s.limit else Decimal(0)
            if frac is None or f < frac:
                best, frac = s, f
        return best


def _as_states(charges: Sequence[Charge], values: Sequence[tuple[int, int]],
               resets: Sequence[datetime | None]) -> tuple[BudgetState, ...]:
    return tuple(
        BudgetState(name=c.budget.name, scope=c.scope, metric=c.budget.metric,
                    limit=c.budget.limit, spent=c.budget.value(sp), held=c.budget.value(h),
                    resets_at=r, soft=c.budget.soft)
        for c, (sp, h), r in zip(charges, values, resets, strict=True))
