"""The price table joined to calls in SQL.

For every distinct (provider, model, service tier) in the data and every UTC day
from its first to its last call, the :class:`~ctxbudget.prices.PriceBook` resolves the
price in force that day; runs of days with the same price collapse into one
``day_from .. day_to`` range, and each price becomes one row per tier band with
``lo < prompt_tokens <= hi`` (the base rates have ``lo = -1``; the last band has
``hi = NULL``), so a call joins exactly one row and :func:`~ctxbudget.prices.cost_sql`
prices it. An unknown model gets a row with ``priced = false`` and NULL rates: its
calls cost NULL and are counted as unpriced, never $0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from ..errors import PricingError
from ..prices import RATE_FIELDS, Price, PriceBook, cost_sql
from ..usage import BUCKETS

__all__ = ["PRICE_COLUMNS", "PriceTable", "build_price_table", "call_cost_sql"]

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

    def to_arrow(self) -> Any:
        import pyarrow as pa

        types = {"VARCHAR": pa.string(), "DATE": pa.date32(), "BIGINT": pa.int64(),
                 "BOOLEAN": pa.bool_(), "DECIMAL(18,9)": pa.decimal128(18, 9)}
        schema = pa.schema([(n, types[t]) for n, t in PRICE_COLUMNS])
        cols = list(zip(*self.rows, strict=True)) if self.rows else [() for _ in PRICE_COLUMNS]
        return pa.table({n: list(c) for (n, _), c in zip(PRICE_COLUMNS, cols, strict=True)},
                        schema=schema)


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
            if price is None:
                rows.append((prov, mod, st, d0, d1, -1, None, False,
                             *([None] * len(RATE_FIELDS)), None, None, None))
                continue
            where = f"{prov}/{mod}"
            for lo, hi, r in _bands(price):
                rows.append((
                    prov, mod, st, d0, d1, lo, hi, True,
                    *(_rate(getattr(r, f), where) for f in RATE_FIELDS),
                    _rate(price.per_request_usd, where), price.model, price.source,
                ))
    return PriceTable(rows=tuple(rows),
                      unpriced=tuple((p, m, why) for (p, m), why in sorted(unpriced.items())))


def call_cost_sql(call: str = "c", price: str = "p") -> str:
    """SQL for one call's USD cost (NULL when unpriced): :func:`cost_sql` + per-request fee."""
    tokens = {b: f"{call}.{b}" for b in BUCKETS}
    rates = {r: f"{price}.{r}" for r in RATE_FIELDS}
    return f"({cost_sql(tokens, rates)} + {price}.per_request_usd)"
