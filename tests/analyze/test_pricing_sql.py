"""Costs computed in SQL equal the one cost formula (cost_of), exactly, at each call's date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from ctxbudget.analyze.metrics import compute_report
from ctxbudget.prices import RATE_FIELDS, Price, PriceBook, Rates, Tier, cost_of, cost_sql
from ctxbudget.store import open_store
from ctxbudget.usage import BUCKETS, Call, Usage

RATES = st.decimals(min_value=Decimal(0), max_value=Decimal(100), places=9,
                    allow_nan=False, allow_infinity=False)
TOKENS = st.integers(min_value=0, max_value=5_000_000)


@settings(max_examples=60, deadline=None)
@given(tokens=st.tuples(*[TOKENS] * 5), rates=st.tuples(*[RATES] * 5))
def test_cost_sql_is_exact_decimal_and_equals_cost_of(tokens: tuple[int, ...],
                                                      rates: tuple[Decimal, ...]) -> None:
    usage = Usage(**dict(zip(BUCKETS, tokens, strict=True)))
    r = Rates(**dict(zip(RATE_FIELDS, rates, strict=True)))
    price = Price(provider="p", model="m", base=r)
    con = duckdb.connect()
    cols = ", ".join([f"{t}::BIGINT AS {b}" for b, t in zip(BUCKETS, tokens, strict=True)]
                     + [f"'{v}'::DECIMAL(18,9) AS {n}" for n, v in
                        zip(RATE_FIELDS, rates, strict=True)])
    expr = cost_sql({b: b for b in BUCKETS}, {n: n for n in RATE_FIELDS})
    typ, val = con.execute(f"SELECT typeof({expr}), {expr} FROM (SELECT {cols})").fetchall()[0]
    assert typ.startswith("DECIMAL")
    assert val == cost_of(usage, price).total_usd


def _overrides(tmp: Path) -> Path:
    p = tmp / "prices.yaml"
    p.write_text(
        "prices:\n"
        "  - model: acme-1\n    provider: acme\n    effective_from: 2026-01-01\n"
        "    input_mtok: 2\n    output_mtok: 8\n    cache_read_mtok: 0.2\n"
        "    cache_write_5m_mtok: 2.5\n    cache_write_1h_mtok: 4\n"
        "    tiers:\n      - above_prompt_tokens: 100000\n        input_mtok: 4\n"
        "        output_mtok: 12\n"
        "  - model: acme-1\n    provider: acme\n    effective_from: 2026-02-01\n"
        "    input_mtok: 1\n    output_mtok: 5\n", encoding="utf-8")
    return p


def _calls() -> list[Call]:
    t0 = datetime(2026, 1, 30, 23, 0, tzinfo=UTC)
    out = []
    for i, (inp, read, w5, w1, o) in enumerate([
        (1000, 0, 0, 0, 100), (90_000, 10_000, 0, 0, 500),  # exactly 100k: base rates
        (90_000, 10_000, 1, 0, 500),  # 100,001: tier for the whole request
        (5, 200_000, 3000, 700, 40), (123, 4567, 89, 10, 1111),
    ]):
        for d in (0, 3):  # before and after the 2026-02-01 price change
            out.append(Call(ts=t0 + timedelta(days=d, minutes=i), provider="acme",
                            model="acme-1", task_id=f"t{i}", session_id=f"s{i}",
                            task_type="x", request_id=f"r{i}-{d}",
                            usage=Usage(input_tokens=inp, cache_read_tokens=read,
                                        cache_write_5m_tokens=w5, cache_write_1h_tokens=w1,
                                        output_tokens=o)))
    out.append(Call(ts=t0, provider="nobody", model="mystery-9000", task_id="t9",
                    request_id="u1", usage=Usage(input_tokens=10, output_tokens=10)))
    return out


def test_report_cost_equals_pricebook_per_call(tmp_path: Path, duck: Any) -> None:
    book = PriceBook(overrides=[_overrides(tmp_path)], use_catalog=False)
    calls = _calls()
    db = tmp_path / "u.duckdb"
    with open_store(db) as s:
        s.insert_calls(calls)
    e = duck(db=db)
    rep = compute_report(e, "day", book=book)
    expected: dict[str, Decimal] = {}
    for c in calls:
        if c.model == "acme-1":
            day = c.ts.date().isoformat()
            expected[day] = expected.get(day, Decimal(0)) + book.total_usd(
                c.usage, c.model, c.provider, c.ts)
    got = {r.key: r.cost_usd for r in rep.rows}
    assert got == expected
    # the tier applies to the whole request once the prompt passes 100,000
    tiered = cost_of(Usage(input_tokens=90_000, cache_read_tokens=10_000,
                           cache_write_5m_tokens=1, output_tokens=500),
                     book.resolve("acme-1", "acme", datetime(2026, 1, 30)))
    assert tiered.rates.input_mtok == 4
    # the unknown model is unpriced, counted, never $0
    assert rep.total is not None and rep.total.unpriced_calls == 1
    assert [(u["model"], u["calls"]) for u in rep.unpriced_models] == [("mystery-9000", 1)]
    by_task = {r.key: r for r in compute_report(e, "task", book=book).rows}
    assert by_task["t9"].cost_usd is None and by_task["t9"].unpriced_calls == 1


def test_price_table_bands() -> None:
    from ctxbudget.analyze.pricing import build_price_table

    base = Rates(input_mtok=Decimal(1), cache_read_mtok=Decimal("0.1"),
                 cache_write_5m_mtok=Decimal("1.25"), cache_write_1h_mtok=Decimal(2),
                 output_mtok=Decimal(5))
    tier = Rates(input_mtok=Decimal(2), cache_read_mtok=Decimal("0.2"),
                 cache_write_5m_mtok=Decimal("2.5"), cache_write_1h_mtok=Decimal(4),
                 output_mtok=Decimal(10))

    class Book:
        def resolve(self, model: str, provider: Any, at: Any, tier_: Any) -> Price:
            return Price(provider="p", model=model, base=base,
                         tiers=(Tier(200_000, tier),))

    d0, d1 = datetime(2026, 1, 1).date(), datetime(2026, 1, 9).date()
    t = build_price_table([("p", "m", "", d0, d1)], Book())  # type: ignore[arg-type]
    # nine days of one price collapse into one range, one row per tier band
    assert [(r[3], r[4], r[5], r[6]) for r in t.rows] == [(d0, d1, -1, 200_000),
                                                          (d0, d1, 200_000, None)]
