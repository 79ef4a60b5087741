"""Per-task metrics against a Python recomputation over the same calls."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ctxbudget.analyze.metrics import compute_report
from ctxbudget.analyze.sql import Filters
from ctxbudget.prices import default_pricebook
from ctxbudget.store import open_store
from ctxbudget.usage import Call, Usage


def _expected(calls: list[Any], tasks: list[Any]) -> dict[str, dict[str, Any]]:
    book = default_pricebook()
    outcome = {t.task_id: t.outcome for t in tasks}
    agg: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    for c in calls:
        a = agg[c.task_id]
        a["calls"] += 1
        for k, v in c.usage.as_dict().items():
            a[k] += v
        a["cost"] = a.get("cost", Decimal(0)) + book.total_usd(c.usage, c.model, c.provider, c.ts)
        a["outcome"] = outcome[c.task_id]
    return agg


def test_by_task_matches_python(make_store: Any, synth_mod: Any, duck: Any) -> None:
    calls, tasks = synth_mod.make_workload(seed=3, days=3, tasks_per_day=10)
    db = make_store(seed=3, days=3, tasks_per_day=10)
    rep = compute_report(duck(db=db), "task")
    exp = _expected(calls, tasks)
    assert len(rep.rows) == len(exp) == 30
    for r in rep.rows:
        e = exp[r.key]
        assert r.calls == e["calls"]
        assert r.input_tokens == e["input_tokens"]
        assert r.cache_read_tokens == e["cache_read_tokens"]
        assert r.cache_write_5m_tokens == e["cache_write_5m_tokens"]
        assert r.output_tokens == e["output_tokens"]
        assert r.cost_usd == e["cost"]
        assert r.outcome == e["outcome"]
    # rows sorted by cost, descending
    costs = [r.cost_usd for r in rep.rows]
    assert costs == sorted(costs, reverse=True)
    total = rep.total
    assert total is not None
    assert total.cost_usd == sum((e["cost"] for e in exp.values()), Decimal(0))
    fails = [e for e in exp.values() if e["outcome"] == "failure"]
    oks = [e for e in exp.values() if e["outcome"] == "success"]
    assert total.failure_tasks == len(fails) and total.success_tasks == len(oks)
    assert total.failed_cost_usd == sum((e["cost"] for e in fails), Decimal(0))
    assert total.cost_per_success_usd == total.cost_usd / len(oks)
    assert total.cache_hit_rate == pytest.approx(
        total.cache_read_tokens / total.prompt_tokens)


def test_type_percentiles_nearest_rank(make_store: Any, synth_mod: Any, duck: Any) -> None:
    from ctxbudget.analyze.rules import percentile

    calls, tasks = synth_mod.make_workload(seed=3, days=3, tasks_per_day=10)
    rep = compute_report(duck(db=make_store(seed=3, days=3, tasks_per_day=10)), "type")
    exp = _expected(calls, tasks)
    by_type: dict[str, list[Decimal]] = defaultdict(list)
    for tid, e in exp.items():
        by_type[tid.split("-")[0]].append(e["cost"])
    assert {t.task_type for t in rep.types} == set(by_type)
    for t in rep.types:
        cs = by_type[t.task_type]
        assert t.tasks == len(cs)
        assert t.p50_cost_usd == percentile(cs, 0.5)
        assert t.p95_cost_usd == percentile(cs, 0.95)
        assert t.max_cost_usd == max(cs)
    assert {r.key for r in rep.rows} == set(by_type)


def test_all_dimensions_sum_to_the_same_total(make_store: Any, duck: Any) -> None:
    e = duck(db=make_store(seed=3, days=3, tasks_per_day=10))
    totals = set()
    for by in ("task", "type", "model", "day", "session"):
        rep = compute_report(e, by, with_types=False)
        totals.add((sum(r.calls for r in rep.rows), sum((r.cost_usd or 0) for r in rep.rows)))
    assert len(totals) == 1


def _wasted_store(tmp: Path) -> Path:
    t0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
    rows = [  # (session, minutes after t0, cache read, write 5m, write 1h)
        ("a", 0, 0, 1000, 0), ("a", 2, 1000, 0, 0),       # read within 5 min: not wasted
        ("b", 0, 0, 1000, 0), ("b", 6, 1000, 0, 0),       # read after 6 min: wasted
        ("c", 0, 0, 0, 2000), ("c", 50, 2000, 0, 0),      # 1h write read at 50 min: kept
        ("d", 0, 0, 500, 0),                              # never read: wasted
    ]
    calls = [Call(ts=t0 + timedelta(minutes=m), provider="anthropic", model="claude-sonnet-4-5",
                  session_id=s, task_id=s, request_id=f"{s}{m}",
                  usage=Usage(input_tokens=10, cache_read_tokens=r, cache_write_5m_tokens=w5,
                              cache_write_1h_tokens=w1, output_tokens=5))
             for s, m, r, w5, w1 in rows]
    p = tmp / "w.duckdb"
    with open_store(p) as st:
        st.insert_calls(calls)
    return p


def test_wasted_writes_definition(tmp_path: Path, duck: Any) -> None:
    rep = compute_report(duck(db=_wasted_store(tmp_path)), "session", with_types=False)
    wasted = {r.key: r.wasted_write_tokens for r in rep.rows}
    assert wasted == {"a": 0, "b": 1000, "c": 0, "d": 500}
    assert rep.total is not None and rep.total.wasted_write_tokens == 1500
    assert rep.total.wasted_write_share == pytest.approx(1500 / 4500)


def test_parquet_source_equals_store(tmp_path: Path, make_store: Any, duck: Any) -> None:
    db = make_store(seed=3, days=3, tasks_per_day=10)
    pq = tmp_path / "calls.parquet"
    with open_store(db, read_only=True) as s:
        s.con.execute(f"COPY calls TO '{pq}' (FORMAT parquet)")
        s.con.execute(f"COPY tasks TO '{tmp_path / 'calls.tasks.parquet'}' (FORMAT parquet)")
    a = compute_report(duck(db=db), "type").as_dict()
    b = compute_report(duck(data=pq), "type").as_dict()
    a.pop("source"), b.pop("source")
    assert a == b


def test_since_until_and_timezone(make_store: Any, duck: Any) -> None:
    e = duck(db=make_store(seed=3, days=3, tasks_per_day=10))
    f = Filters(since=datetime(2026, 3, 3, tzinfo=UTC), until=datetime(2026, 3, 4, tzinfo=UTC))
    rep = compute_report(e, "day", f, with_types=False)
    assert [r.key for r in rep.rows] == ["2026-03-03"]
    utc_days = {r.key: r.calls for r in compute_report(e, "day", with_types=False).rows}
    tokyo = {r.key: r.calls for r in compute_report(
        e, "day", Filters(tz="Asia/Tokyo"), with_types=False).rows}
    assert sum(utc_days.values()) == sum(tokyo.values())
    assert utc_days != tokyo  # calls late in the UTC day move to the next Tokyo day


@pytest.mark.parametrize("limit", [1, 7, 10_000])
def test_rows_limit_keeps_rows_in_the_engine(make_store: Any, duck: Any, limit: int) -> None:
    """``--by task`` for the terminal (only the first rows): the same first rows, total,
    per-type stats and row count as the full report, computed inside the engine."""
    db = make_store(seed=5, days=4, tasks_per_day=15)
    full = compute_report(duck(db=db), "task")
    part = compute_report(duck(db=db), "task", rows_limit=limit)
    assert len(part) == len(full) > 7
    assert part.top(limit) == full.top(limit)
    assert part.rows == full.rows[:limit]
    assert part.total == full.total and part.types == full.types
    assert part.unpriced_models == full.unpriced_models


def _no_task_store(tmp: Path) -> Path:
    """Two tasks, a session without a task id, and three calls outside any task (one of
    them typed, as a gateway call with a type header but no task would be)."""
    t0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
    u = Usage(input_tokens=1000, output_tokens=100)
    spec = [("t1", None, "support"), ("t1", None, "support"), ("t2", None, "support"),
            (None, "s1", None), (None, None, None), (None, None, None),
            (None, None, "support")]
    calls = [Call(ts=t0 + timedelta(minutes=i), provider="anthropic",
                  model="claude-sonnet-4-5", task_id=tid, session_id=sid, task_type=tt,
                  request_id=f"r{i}", usage=u) for i, (tid, sid, tt) in enumerate(spec)]
    p = tmp / "nt.duckdb"
    with open_store(p) as st:
        st.insert_calls(calls)
    return p


@pytest.mark.parametrize("limit", [None, 2])
def test_calls_outside_any_task_are_one_no_task_group(tmp_path: Path, duck: Any,
                                                      limit: int | None) -> None:
    from ctxbudget.analyze.sql import NO_TASK

    db = _no_task_store(tmp_path)
    rep = compute_report(duck(db=db), "task", rows_limit=limit)
    rows = {r.key: r for r in compute_report(duck(db=db), "task").rows}
    assert set(rows) == {"t1", "t2", "s1", NO_TASK}  # not one "task" per call
    assert (rows[NO_TASK].calls, rows[NO_TASK].tasks) == (3, 0)
    assert rows[NO_TASK].cost_usd == rows["t2"].cost_usd * 3
    assert rep.total is not None and rep.total.tasks == 3 and rep.total.calls == 7
    assert len(rep) == 4
    types = {t.task_type: t for t in rep.types}
    assert set(types) == {"support", "(none)", NO_TASK}
    nt = types[NO_TASK]
    assert (nt.tasks, nt.calls, nt.priced_tasks, nt.p50_cost_usd) == (0, 3, 0, None)
    assert nt.cost_usd == rows[NO_TASK].cost_usd
    assert (types["support"].tasks, types["(none)"].tasks) == (2, 1)
    by_type = {r.key: r for r in compute_report(duck(db=db), "type").rows}
    # an untyped call outside any task is "(no task)", a typed one stays with its type
    assert {k: (r.calls, r.tasks) for k, r in by_type.items()} == {
        "support": (4, 2), "(none)": (1, 1), NO_TASK: (2, 0)}
    # per-task metrics (check, signals) see the three tasks only
    from ctxbudget.analyze.rules import task_metrics

    assert sorted(t["task_key"] for t in task_metrics(duck(db=db), Filters())) == [
        "s1", "t1", "t2"]
