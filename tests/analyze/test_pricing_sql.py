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
from ctxbudget.prices import (
    RATE_FIELDS,
    Price,
    PriceBook,
    Rates,
    Tier,
    ToolFee,
    cost_of,
    cost_sql,
    tool_fees_sql,
)
from ctxbudget.store import open_store
from ctxbudget.usage import BUCKETS, MODALITY_FIELDS, TOOL_FIELDS, Call, Usage

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


MOD_RATE = st.one_of(st.none(), RATES)
FEE = st.one_of(st.none(), st.decimals(min_value=Decimal(0), max_value=Decimal(1), places=9,
                                       allow_nan=False, allow_infinity=False))


@settings(max_examples=60, deadline=None)
@given(tokens=st.tuples(*[TOKENS] * 5), rates=st.tuples(*[RATES] * 5),
       shares=st.tuples(*[st.floats(0, 1)] * len(MODALITY_FIELDS)),
       mod_rates=st.tuples(*[MOD_RATE] * len(MODALITY_FIELDS)),
       requests=st.tuples(*[st.one_of(st.none(), st.integers(0, 50))] * len(TOOL_FIELDS)),
       fees=st.tuples(*[FEE] * len(TOOL_FIELDS)))
def test_cost_sql_with_detail_equals_cost_of(
        tokens: tuple[int, ...], rates: tuple[Decimal, ...], shares: tuple[float, ...],
        mod_rates: tuple[Decimal | None, ...], requests: tuple[int | None, ...],
        fees: tuple[Decimal | None, ...]) -> None:
    """Modality subsets at their own rate (or their bucket's) and tool requests x fee (an
    unknown fee adds nothing): the SQL of the report and ``cost_of`` agree exactly."""
    buckets = dict(zip(BUCKETS, tokens, strict=True))
    left = dict(buckets)
    detail: dict[str, int | None] = {}
    for (f, b, _), share in zip(MODALITY_FIELDS, shares, strict=True):
        n = int(left[b] * share)
        left[b] -= n
        detail[f] = n
    detail.update({f: n for (f, _), n in zip(TOOL_FIELDS, requests, strict=True)})
    usage = Usage(**buckets, **detail)
    base = Rates(**dict(zip(RATE_FIELDS, rates, strict=True)),
                 modality_mtok=tuple((f, r) for (f, _, _), r in
                                     zip(MODALITY_FIELDS, mod_rates, strict=True)
                                     if r is not None))
    price = Price(provider="p", model="m", base=base, tool_fees=tuple(
        ToolFee(tool=t, usd_per_request=fee, source="test")
        for (_, t), fee in zip(TOOL_FIELDS, fees, strict=True) if fee is not None))

    def lit(v: Any, typ: str) -> str:
        return f"CAST(NULL AS {typ})" if v is None else f"CAST('{v}' AS {typ})"

    cols = ([f"{lit(t, 'BIGINT')} AS {b}" for b, t in buckets.items()]
            + [f"{lit(v, 'BIGINT')} AS {f}" for f, v in detail.items()]
            + [f"{lit(v, 'DECIMAL(18,9)')} AS {n}" for n, v in zip(RATE_FIELDS, rates,
                                                                   strict=True)]
            + [f"{lit(r, 'DECIMAL(18,9)')} AS r_{f}" for (f, _, _), r in
               zip(MODALITY_FIELDS, mod_rates, strict=True)]
            + [f"{lit(fee, 'DECIMAL(18,9)')} AS fee_{t}" for (_, t), fee in
               zip(TOOL_FIELDS, fees, strict=True)])
    expr = cost_sql({b: b for b in BUCKETS}, {n: n for n in RATE_FIELDS},
                    {f: (f, f"r_{f}") for f, _, _ in MODALITY_FIELDS},
                    {t: (f, f"fee_{t}") for f, t in TOOL_FIELDS})
    fee_expr = tool_fees_sql({t: (f, f"fee_{t}") for f, t in TOOL_FIELDS})
    con = duckdb.connect()
    val, fee_val = con.execute(f"SELECT {expr}, {fee_expr} FROM (SELECT {', '.join(cols)})"
                               ).fetchall()[0]
    c = cost_of(usage, price)
    assert val == c.total_usd
    assert fee_val == sum((f.usd for f in c.tool_fees if f.usd is not None), Decimal(0))


def test_report_prices_usage_detail_as_cost_of(tmp_path: Path, duck: Any) -> None:
    """Tool requests and modality tokens in the store: every report path (per call by day,
    per task from the task's sums, per call for a task spanning a price change) equals
    the PriceBook's per-call total; a tool without a fee is an unpriced fee, not $0."""
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "prices:\n"
        "  - model: acme-1\n    provider: acme\n    effective_from: 2026-01-01\n"
        "    input_mtok: 2\n    output_mtok: 8\n    input_audio_mtok: 40\n"
        "    output_audio_mtok: 80\n"
        "  - model: acme-1\n    provider: acme\n    effective_from: 2026-02-01\n"
        "    input_mtok: 1\n    output_mtok: 5\n    input_audio_mtok: 30\n"
        "tool_fees:\n"
        "  - provider: acme\n    tool: web_search\n    usd_per_request: 0.01\n"
        "    effective_from: 2026-01-01\n"
        "  - provider: acme\n    tool: web_search\n    usd_per_request: 0.025\n"
        "    effective_from: 2026-02-01\n", encoding="utf-8")
    book = PriceBook(overrides=[prices], use_catalog=False)
    t0 = datetime(2026, 1, 31, 23, 50, tzinfo=UTC)
    specs = [  # task, minutes after t0, usage
        ("a", 0, Usage(input_tokens=1000, output_tokens=50, input_audio_tokens=400)),
        ("a", 15, Usage(input_tokens=10, output_tokens=500, output_audio_tokens=300,
                        web_search_requests=2)),
        ("b", 1, Usage(input_tokens=70, output_tokens=7, web_search_requests=1)),
        ("b", 2, Usage(input_tokens=70, output_tokens=7, web_fetch_requests=3)),
        ("c", 30, Usage(input_tokens=5, output_tokens=5)),
    ]
    calls = [Call(ts=t0 + timedelta(minutes=m), provider="acme", model="acme-1", task_id=t,
                  request_id=f"r{i}", usage=u) for i, (t, m, u) in enumerate(specs)]
    calls.append(Call(ts=t0, provider="acme", model="acme-1", task_id="c", request_id="o",
                      usage=Usage(input_tokens=1, output_tokens=1),
                      other_tool_requests={"image_generation_call": 1}))
    db = tmp_path / "u.duckdb"
    with open_store(db) as s:
        s.insert_calls(calls)
    e = duck(db=db)

    def want(key: Any) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for c in calls:
            k = key(c)
            out[k] = out.get(k, Decimal(0)) + book.cost(c.usage, c.model, c.provider,
                                                        c.ts).total_usd
        return out

    by_task = {r.key: r for r in compute_report(e, "task", book=book).rows}
    assert {k: r.cost_usd for k, r in by_task.items()} == want(lambda c: c.task_id)
    # task "a" spans the 2026-02-01 price change (priced call by call), "b" does not
    assert by_task["a"].tool_fees_usd == 2 * Decimal("0.025")
    assert by_task["b"].tool_fees_usd == Decimal("0.01")
    assert by_task["b"].unpriced_fee_calls == 1  # web_fetch: no fee anywhere
    assert by_task["c"].unpriced_fee_calls == 1  # a counter with no field
    by_day = compute_report(e, "day", book=book)
    assert {r.key: r.cost_usd for r in by_day.rows} == want(lambda c: c.ts.date().isoformat())
    assert by_day.total is not None
    assert by_day.total.tool_fees_usd == Decimal("0.06")
    assert by_day.total.unpriced_fee_calls == 2
    assert sorted((u["tool"], u.get("requests"), u.get("names")) for u in by_day.unpriced_fees
                  ) == [("other", None, {"image_generation_call": 1}), ("web_fetch", 3, None)]
