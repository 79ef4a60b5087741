"""The price table joined to calls in SQL.

For every distinct (provider, model, service tier) in the data and every UTC day
from its first to its last call, the :class:`~ctxbudget.prices.PriceBook` resolves the
price in force that day; runs of days with the same price collapse into one
``day_from .. day_to`` range, and each price becomes one row per tier band with
``lo < prompt_tokens <= hi`` (the base rates have ``lo = -1``; the last band has
``hi = NULL``), so a call joins exactly one row and :func:`~ctxbudget.prices.cost_sql`
prices it. Each row has a ``price_id`` and its day range also as UTC instants
``ts_from <= ts < ts_to`` (so the join compares timestamps, no per-call date cast).
An unknown model gets a row with ``priced = false`` and NULL rates: its calls cost NULL
and are counted as unpriced, never $0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ..errors import PricingError
from ..prices import RATE_FIELDS, Price, PriceBook, cost_sql
from ..usage import BUCKETS

__all__ = ["PRICE_COLUMNS", "PriceTable", "build_price_table", "call_cost_sql",
           "group_cost_sql"]

#: (name, DuckDB type) of the price table.
PRICE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("provider", "VARCHAR"),
    ("model", "VARCHAR"),
    ("service_tier", "VARCHAR"),
    ("day_from", "DATE"),
    ("day_to", "DATE"),
    ("lo", "BIGINT"),
    ("hi", "BIGINT"),
    ("priced", "BOOLEAN"),
    *((r, "DECIMAL(18,9)") for r in RATE_FIELDS),
    ("per_request_usd", "DECIMAL(18,9)"),
    ("price_model", "VARCHAR"),
    ("price_source", "VARCHAR"),
    ("price_id", "BIGINT"),
    ("ts_from", "TIMESTAMPTZ"),
    ("ts_to", "TIMESTAMPTZ"),
)

_Q = Decimal("0.000000001")


def _rate(v: Decimal, where: str) -> Decimal:
    q = v.quantize(_Q)
    if q != v:
        raise PricingError(f"{where}: rate {v} has more than 9 decimals; DECIMAL(18,9) would round")
    return q


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceTable:
    """Rows of :data:`PRICE_COLUMNS` plus the unpriced (provider, model) pairs."""

    rows: tuple[tuple[Any, ...], ...]
    unpriced: tuple[tuple[str, str, str], ...]
    """(provider, model, reason) for models no price resolved for."""

    def values_sql(self) -> str:
        """The rows as one SQL ``VALUES`` list with typed literals (no pyarrow, no pandas)."""
        return ",\n".join(
            "(" + ", ".join(_literal(v, t) for v, (_, t) in zip(r, PRICE_COLUMNS, strict=True))
            + ")" for r in self.rows)


def _literal(v: Any, sql_type: str) -> str:
    if v is None:
        return f"CAST(NULL AS {sql_type})"
    if sql_type == "VARCHAR":
        return "'" + str(v).replace("'", "''") + "'"
    if sql_type == "DATE":
        return f"CAST('{v.isoformat()}' AS DATE)"
    if sql_type == "TIMESTAMPTZ":
        return f"CAST('{v.isoformat(sep=' ')}' AS TIMESTAMPTZ)"
    if sql_type == "BOOLEAN":
        return "TRUE" if v else "FALSE"
    if sql_type == "BIGINT":
        return f"CAST({int(v)} AS BIGINT)"
    return f"CAST('{format(v, 'f')}' AS {sql_type})"  # DECIMAL: plain notation, exact


def _bands(price: Price) -> list[tuple[int, int | None, Any]]:
    bounds = [-1, *(t.above_prompt_tokens for t in price.tiers)]
    rates = [price.base, *(t.rates for t in price.tiers)]
    out: list[tuple[int, int | None, Any]] = []
    for i, (lo, r) in enumerate(zip(bounds, rates, strict=True)):
        hi = bounds[i + 1] if i + 1 < len(bounds) else None
        out.append((lo, hi, r))
    return out


def build_price_table(
    keys: list[tuple[str | None, str | None, str | None, date, date]], book: PriceBook
) -> PriceTable:
    """Resolve every (provider, model, service_tier, first day, last day) key into rows."""
    rows: list[tuple[Any, ...]] = []
    unpriced: dict[tuple[str, str], str] = {}
    for provider, model, tier, first, last in keys:
        prov, mod, st = provider or "", model or "", tier or ""
        runs: list[tuple[date, date, Price | None]] = []
        day = first
        while day <= last:
            price: Price | None
            try:
                if not mod:
                    raise PricingError("no model name")
                price = book.resolve(mod, provider or None, day, tier or None)
            except PricingError as exc:
                unpriced.setdefault((prov, mod), str(exc))
                price = None
            if runs and runs[-1][2] == price:
                runs[-1] = (runs[-1][0], day, price)
            else:
                runs.append((day, day, price))
            day += timedelta(days=1)
        for d0, d1, price in runs:
            ts_span = (_instant(d0), _instant(d1 + timedelta(days=1)))
            if price is None:
                rows.append((prov, mod, st, d0, d1, -1, None, False,
                             *([None] * len(RATE_FIELDS)), None, None, None,
                             len(rows), *ts_span))
                continue
            where = f"{prov}/{mod}"
            for lo, hi, r in _bands(price):
                rows.append((
                    prov, mod, st, d0, d1, lo, hi, True,
                    *(_rate(getattr(r, f), where) for f in RATE_FIELDS),
                    _rate(price.per_request_usd, where), price.model, price.source,
                    len(rows), *ts_span,
                ))
    return PriceTable(rows=tuple(rows),
                      unpriced=tuple((p, m, why) for (p, m), why in sorted(unpriced.items())))


def _instant(d: date) -> datetime:
    """Midnight UTC starting ``d`` (an aware datetime: Spark and DuckDB read it as UTC)."""
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def call_cost_sql(call: str = "c", price: str = "p") -> str:
    """SQL for one call's USD cost (NULL when unpriced): :func:`cost_sql` + per-request fee."""
    tokens = {b: f"{call}.{b}" for b in BUCKETS}
    rates = {r: f"{price}.{r}" for r in RATE_FIELDS}
    return f"({cost_sql(tokens, rates)} + {price}.per_request_usd)"


def group_cost_sql(sums: str = "g", price: str = "p", calls: str = "calls") -> str:
    """USD cost of a group of calls that all joined the same price row ``price``: :func:`cost_sql`
    over the group's summed buckets + per-request fee x calls (NULL when unpriced).

    Exactly the sum of the calls' :func:`call_cost_sql`: the formula is linear and DECIMAL
    arithmetic does not round, so pricing the sums equals summing the prices.
    """
    tokens = {b: f"{sums}.{b}" for b in BUCKETS}
    rates = {r: f"{price}.{r}" for r in RATE_FIELDS}
    return f"({cost_sql(tokens, rates)} + {price}.per_request_usd * {sums}.{calls})"
