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

Each row also has the price's modality rates (``input_audio_mtok``... NULL: none, the
tokens stay at their bucket's rate) and its server-side tool fees (``web_search_usd``...
NULL: no rate known, an *unpriced fee*), so the SQL prices a call's usage detail as
:func:`~ctxbudget.prices.cost_of` does. The queries add those terms only for the detail
columns the data holds (:attr:`PriceTable.detail`): calls without detail cost nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ..errors import PricingError
from ..prices import RATE_FIELDS, Price, PriceBook, cost_sql, tool_fees_sql
from ..usage import BUCKETS, MODALITY_FIELDS, TOOL_FIELDS

__all__ = ["DETAIL_RATES", "PRICE_COLUMNS", "TOOL_FEES", "PriceTable", "build_price_table",
           "call_cost_sql", "call_tool_fees_sql", "group_cost_sql", "group_tool_fees_sql",
           "unpriced_fee_sql"]

#: Modality field -> its rate column in the price table (``input_audio_mtok``...).
DETAIL_RATES: dict[str, str] = {f: f.removesuffix("_tokens") + "_mtok"
                                for f, _, _ in MODALITY_FIELDS}
#: Tool request field -> its fee column in the price table (``web_search_usd``...).
TOOL_FEES: dict[str, str] = {f: f"{tool}_usd" for f, tool in TOOL_FIELDS}

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
    *((c, "DECIMAL(18,9)") for c in DETAIL_RATES.values()),
    *((c, "DECIMAL(18,9)") for c in TOOL_FEES.values()),
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
    detail: tuple[str, ...] = ()
    """The usage detail columns the priced calls hold values in (:data:`DETAIL_RATES`,
    :data:`TOOL_FEES` keys, ``other_tool_requests``): the queries price those only."""

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
                             *([None] * len(RATE_FIELDS)), None,
                             *([None] * (len(DETAIL_RATES) + len(TOOL_FEES))), None, None,
                             len(rows), *ts_span))
                continue
            where = f"{prov}/{mod}"
            fees = []
            for _, tool in TOOL_FIELDS:
                fee = price.tool_fee(tool)
                fees.append(None if fee is None else _rate(fee.usd_per_request, where))
            for lo, hi, r in _bands(price):
                mod_rates = dict(r.modality_mtok)
                rows.append((
                    prov, mod, st, d0, d1, lo, hi, True,
                    *(_rate(getattr(r, f), where) for f in RATE_FIELDS),
                    _rate(price.per_request_usd, where),
                    *(None if (m := mod_rates.get(f)) is None else _rate(m, where)
                      for f in DETAIL_RATES),
                    *fees, price.model, price.source,
                    len(rows), *ts_span,
                ))
    return PriceTable(rows=tuple(rows),
                      unpriced=tuple((p, m, why) for (p, m), why in sorted(unpriced.items())))


def _instant(d: date) -> datetime:
    """Midnight UTC starting ``d`` (an aware datetime: Spark and DuckDB read it as UTC)."""
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _detail_terms(rel: str, price: str, detail: tuple[str, ...]
                  ) -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]]:
    """The ``modality`` and ``tools`` arguments of :func:`cost_sql` for the columns of
    ``detail`` (on the relation ``rel`` and the price row ``price``)."""
    modality = {f: (f"{rel}.{f}", f"{price}.{c}") for f, c in DETAIL_RATES.items()
                if f in detail}
    tools = {f: (f"{rel}.{f}", f"{price}.{c}") for f, c in TOOL_FEES.items() if f in detail}
    return modality, tools


def call_cost_sql(call: str = "c", price: str = "p", detail: tuple[str, ...] = ()) -> str:
    """SQL for one call's USD cost (NULL when unpriced): :func:`cost_sql` + per-request fee.
    ``detail``: the usage detail columns to price (:attr:`PriceTable.detail`)."""
    tokens = {b: f"{call}.{b}" for b in BUCKETS}
    rates = {r: f"{price}.{r}" for r in RATE_FIELDS}
    modality, tools = _detail_terms(call, price, detail)
    return f"({cost_sql(tokens, rates, modality, tools)} + {price}.per_request_usd)"


def call_tool_fees_sql(call: str = "c", price: str = "p", detail: tuple[str, ...] = ()) -> str:
    """The priced server-side tool fees in :func:`call_cost_sql` (0 when none: a request
    without a fee is counted by :func:`unpriced_fee_sql` instead)."""
    _, tools = _detail_terms(call, price, detail)
    return tool_fees_sql(tools)


def unpriced_fee_sql(call: str = "c", price: str = "p", detail: tuple[str, ...] = ()) -> str:
    """1 when the call has a billed element no rate prices -- a tool request count without a
    fee, or a counter no field holds (``other_tool_requests``) -- else 0."""
    conds = [f"(COALESCE({call}.{f}, 0) > 0 AND {price}.{c} IS NULL)"
             for f, c in TOOL_FEES.items() if f in detail]
    if "other_tool_requests" in detail:
        conds.append(f"{call}.other_tool_requests IS NOT NULL")
    if not conds:
        return "0"
    return f"(CASE WHEN {' OR '.join(conds)} THEN 1 ELSE 0 END)"


def group_cost_sql(sums: str = "g", price: str = "p", calls: str = "calls",
                   detail: tuple[str, ...] = ()) -> str:
    """USD cost of a group of calls that all joined the same price row ``price``: :func:`cost_sql`
    over the group's summed buckets (and summed ``detail`` columns) + per-request fee x calls
    (NULL when unpriced).

    Exactly the sum of the calls' :func:`call_cost_sql`: the formula is linear and DECIMAL
    arithmetic does not round, so pricing the sums equals summing the prices.
    """
    tokens = {b: f"{sums}.{b}" for b in BUCKETS}
    rates = {r: f"{price}.{r}" for r in RATE_FIELDS}
    modality, tools = _detail_terms(sums, price, detail)
    return (f"({cost_sql(tokens, rates, modality, tools)} + {price}.per_request_usd * "
            f"{sums}.{calls})")


def group_tool_fees_sql(sums: str = "g", price: str = "p", detail: tuple[str, ...] = ()) -> str:
    """The priced tool fees of :func:`group_cost_sql` (the sum of the calls'
    :func:`call_tool_fees_sql`)."""
    return call_tool_fees_sql(sums, price, detail)
