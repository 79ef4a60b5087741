"""Budget ledgers: reserve before a call, settle after it, in any process.

The one budget interface the SDK tracker and the gateway share. A :class:`Budget` is
a limit (USD, tokens or calls) over a :class:`Window` (``task``, rolling ``1h`` /
``24h``, calendar ``day`` / ``week`` / ``month`` in a named time zone). A
:class:`Charge` applies a budget to one scope (a hashed API key, a user, a task id...).
A :class:`Ledger` holds the counters::

    from decimal import Decimal
    from ctxbudget.budgets import Amount, Budget, Charge, MemoryLedger, RequestPricer, Window

    ledger = MemoryLedger("budget.journal")            # or RedisLedger("redis://...")
    daily = Budget(name="team-daily", limit=Decimal("1.00"), window=Window.parse("day"))
    est = RequestPricer().estimate(body_bytes, "anthropic")
    d = ledger.reserve([Charge(daily, scope="team-a")], est.amount)
    if not d.allowed:
        ...                                            # d.blocked_by says which and how much
    try:
        response = send(body_bytes)
    except Exception:
        ledger.release(d.reservation)                  # never sent: nothing charged
        raise
    ledger.settle(d.reservation, Amount(usd=actual_cost, tokens=actual_tokens))

Every method is synchronous and thread-safe; ``areserve`` / ``asettle`` / ``arelease``
/ ``astates`` are the asyncio forms. Semantics (blocking rule, overrun bound, expiry of
orphaned reservations, window boundaries) are in ``docs/gateway.md`` ("Enforcement").

Layering: this package imports only ``usage``, ``prices``, ``tokens`` and ``errors``
(``redis`` is imported when a :class:`RedisLedger` first connects).
"""

from __future__ import annotations

from ._estimate import API, DEFAULT_OUTPUT_TOKENS, RequestEstimate, RequestPricer
from ._ledger import DEFAULT_RESERVATION_TTL, Ledger, MemoryLedger
from ._redis import RedisLedger
from ._types import (
    NANO,
    Amount,
    Budget,
    BudgetState,
    BudgetStoreError,
    Charge,
    Clock,
    Decision,
    Metric,
    Reservation,
    system_clock,
)
from ._windows import ROLLING_SLOTS, Window, WindowKind

__all__ = [
    "API",
    "DEFAULT_OUTPUT_TOKENS",
    "DEFAULT_RESERVATION_TTL",
    "NANO",
    "ROLLING_SLOTS",
    "Amount",
    "Budget",
    "BudgetState",
    "BudgetStoreError",
    "Charge",
    "Clock",
    "Decision",
    "Ledger",
    "MemoryLedger",
    "Metric",
    "RedisLedger",
    "RequestEstimate",
    "RequestPricer",
    "Reservation",
    "Window",
    "WindowKind",
    "open_ledger",
    "system_clock",
]


def open_ledger(spec: str, *, clock: Clock = system_clock,
                reservation_ttl: float = DEFAULT_RESERVATION_TTL) -> Ledger:
    """A ledger from a config value: ``memory`` (in-process only), ``memory:PATH`` or a
    file path (journaled to PATH), or ``redis://...`` / ``rediss://...``."""
    s = spec.strip()
    if s.startswith(("redis://", "rediss://", "unix://")):
        return RedisLedger(s, clock=clock, reservation_ttl=reservation_ttl)
    if s == "memory":
        return MemoryLedger(None, clock=clock, reservation_ttl=reservation_ttl)
    path = s.removeprefix("memory:")
    return MemoryLedger(path, clock=clock, reservation_ttl=reservation_ttl)
