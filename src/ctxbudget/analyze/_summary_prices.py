"""Price rows of the day summary: the SQL's price table, per price key and UTC day.

:func:`add_price_rows` resolves a day range of one (provider, model, service tier)
key with :func:`~.pricing.build_price_table` — the very rows the SQL joins — and keeps
each day's bands as integers (rates in 1e-9 USD per million tokens, exact: the table's
DECIMAL(18,9)), so :meth:`.summary.Summary._cost` prices a call as ``cost_sql`` does.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from ..prices import PriceBook

__all__ = ["add_price_rows"]

_EPOCH_DAY = date(1970, 1, 1)
_NANO = 10**9


def _nano(v: Any) -> int:
    n = v * _NANO
    if n != int(n):  # build_price_table refuses rates with more than 9 decimals
        raise ValueError(f"rate {v} has more than 9 decimals")
    return int(n)


def add_price_rows(state: Any, book: PriceBook, pk: int, provider: str, model: str, tier: str,
                   first: int, last: int) -> None:
    """Resolve ``pk`` from day ``first`` to ``last`` (days since 1970-01-01) into
    ``state.prices``, ``state.bandsets`` and ``state.reasons``."""
    from .pricing import build_price_table

    d0 = _EPOCH_DAY + timedelta(days=first)
    d1 = _EPOCH_DAY + timedelta(days=last)
    table = build_price_table([(provider, model, tier, d0, d1)], book)
    why = {(p, m): r for p, m, r in table.unpriced}
    runs: dict[tuple[date, date], list[list[int]] | None] = {}
    for row in table.rows:
        (_p, _m, _t, r0, r1, lo, hi, priced, r_in, r_cr, r_w5, r_w1, r_out, per_req) = row[:14]
        if not priced:
            runs[(r0, r1)] = None
            continue
        runs.setdefault((r0, r1), []).append(  # type: ignore[union-attr]
            [int(lo), -1 if hi is None else int(hi), _nano(r_in), _nano(r_cr), _nano(r_w5),
             _nano(r_w1), _nano(r_out), _nano(per_req)])
    ids = {repr(b): i for i, b in enumerate(state.bandsets)}
    days = state.prices.setdefault(pk, {})
    for (r0, r1), bands in runs.items():
        if bands is None:
            reason = why.get((provider, model), "no price")
            if reason not in state.reasons:
                state.reasons.append(reason)
            value = -1 - state.reasons.index(reason)
        else:
            bands.sort()
            k = repr(bands)
            if k not in ids:
                ids[k] = len(state.bandsets)
                state.bandsets.append(bands)
            value = ids[k]
        for d in range((r0 - _EPOCH_DAY).days, (r1 - _EPOCH_DAY).days + 1):
            days[d] = value
