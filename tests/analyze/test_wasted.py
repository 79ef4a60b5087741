"""Wasted cache writes: the bucketed query equals the per-call window definition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctxbudget.analyze.engine import DuckDBEngine
from ctxbudget.analyze.metrics import compute_report
from ctxbudget.analyze.source import TASK_COLUMNS, DataSource
from ctxbudget.store.schema import CALL_COLUMNS

T0 = datetime(2026, 5, 1, 11, 58, tzinfo=UTC)  # 2 minutes before a 5-minute bucket edge

#: The definition: a write's next read is the first later read of its session and model
#: in (ts, call_key) order; 5m (1h) tokens are wasted unless it is within 5 min (1 h).
REFERENCE = """
WITH w AS (
  SELECT COALESCE(task_id, session_id, '(no task)') AS task_key,
    COALESCE(session_id, '(none)') AS session, ts, cache_write_5m_tokens AS w5,
    cache_write_1h_tokens AS w1h,
    MIN(CASE WHEN cache_read_tokens > 0 THEN ts END) OVER (
      PARTITION BY COALESCE(session_id, task_id, call_key), model ORDER BY ts, call_key
      ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS nr
  FROM calls)
SELECT {key}, CAST(SUM(
  CASE WHEN nr IS NOT NULL AND nr <= ts + INTERVAL 5 MINUTE THEN 0 ELSE w5 END
  + CASE WHEN nr IS NOT NULL AND nr <= ts + INTERVAL 1 HOUR THEN 0 ELSE w1h END) AS BIGINT)
FROM w GROUP BY 1"""

_call = st.tuples(
    st.sampled_from(["s1", "s2", None]),            # session
    st.sampled_from(["t1", "t2", None]),            # task
    st.sampled_from(["m1", "m2"]),                  # model
    st.integers(0, 160).map(lambda k: k * 30),      # seconds after T0: ties, 5 min edges
    st.integers(0, 9),                              # call key (ties broken by it)
    st.sampled_from([0, 0, 100]),                   # cache read
    st.sampled_from([0, 0, 1000]),                  # cache write 5m
    st.sampled_from([0, 0, 0, 7000]),               # cache write 1h
)


def _source(rows: list[tuple[Any, ...]]) -> DataSource:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    cols = ", ".join(f"{n} {t}" for n, t in CALL_COLUMNS)
    con.execute(f"CREATE TABLE calls ({cols})")
    tcols = ", ".join(f"{n} {t}" for n, t in TASK_COLUMNS)
    con.execute(f"CREATE TABLE tasks ({tcols})")
    for i, (sess, task, model, secs, key, cr, w5, w1h) in enumerate(rows):
        con.execute(
            "INSERT INTO calls (call_key, ts, provider, model, task_id, session_id, "
            "input_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, "
            "output_tokens, reasoning_tokens, status) VALUES (?, ?, 'anthropic', ?, ?, ?, 10, "
            "?, ?, ?, 5, 0, 'ok')",
            [f"k{key}-{i:03d}", T0 + timedelta(seconds=secs), model, task, sess, cr, w5, w1h])
    return DataSource(con=con, label="mem")


def _check(rows: list[tuple[Any, ...]]) -> None:
    src = _source(rows)
    try:
        eng = DuckDBEngine(src)
        for by, key in (("task", "task_key"), ("session", "session")):
            want = {k: v for k, v in src.con.execute(REFERENCE.format(key=key)).fetchall()}
            rep = compute_report(eng, by, with_types=False)
            assert {r.key: r.wasted_write_tokens for r in rep.rows} == want, by
            assert rep.total is not None
            assert rep.total.wasted_write_tokens == sum(want.values())
    finally:
        src.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_call, min_size=1, max_size=25))
def test_bucketed_waste_equals_window_definition(rows: list[tuple[Any, ...]]) -> None:
    _check(rows)


def test_ties_at_one_instant_follow_call_key_order() -> None:
    # s1: a write and a read at the same instant; the read's key sorts after the write's
    # (not wasted); s2: the read's key sorts before (wasted: nothing reads after it).
    rows = [("s1", "t1", "m1", 120, 1, 0, 1000, 0), ("s1", "t1", "m1", 120, 2, 100, 0, 0),
            ("s2", "t2", "m1", 120, 2, 0, 1000, 0), ("s2", "t2", "m1", 120, 1, 100, 0, 0)]
    _check(rows)
    src = _source(rows)
    try:
        rep = compute_report(DuckDBEngine(src), "session", with_types=False)
        assert {r.key: r.wasted_write_tokens for r in rep.rows} == {"s1": 0, "s2": 1000}
    finally:
        src.close()


def test_reads_across_bucket_edges_and_ttl_bounds() -> None:
    # writes 2 min before a bucket edge; reads exactly 5 min / 5 min 30 s / 1 h later;
    # f: write at a bucket edge, read 5 min 30 s later (one 10-minute bucket would hide it)
    rows = [("a", None, "m1", 0, 0, 0, 1000, 0), ("a", None, "m1", 300, 1, 100, 0, 0),
            ("b", None, "m1", 0, 0, 0, 1000, 0), ("b", None, "m1", 330, 1, 100, 0, 0),
            ("c", None, "m1", 0, 0, 0, 0, 7000), ("c", None, "m1", 3600, 1, 100, 0, 0),
            ("d", None, "m1", 0, 0, 0, 0, 7000), ("d", None, "m1", 3630, 1, 100, 0, 0),
            ("e", None, "m1", 0, 0, 0, 1000, 0), ("e", None, "m2", 30, 1, 100, 0, 0),
            ("f", None, "m1", 120, 0, 0, 1000, 0), ("f", None, "m1", 450, 1, 100, 0, 0)]
    _check(rows)
    src = _source(rows)
    try:
        rep = compute_report(DuckDBEngine(src), "session", with_types=False)
        got = {r.key: r.wasted_write_tokens for r in rep.rows}
        assert got == {"a": 0, "b": 1000, "c": 0, "d": 7000, "e": 1000,
                       "f": 1000}
    finally:
        src.close()
