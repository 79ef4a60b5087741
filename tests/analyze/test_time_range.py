"""--since / --until filter every command that reads the store, not only ``report``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ctxbudget.cli.main import app
from ctxbudget.store import open_store
from ctxbudget.usage import Call, Task, Usage

runner = CliRunner()
T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Day 1: three tasks of 2 calls; day 2: three tasks of 3 calls (a cache write, then
    reads of the same prefix); a task of day 2 blocked before its first call."""
    calls, tasks = [], []
    for day in range(2):
        for k in range(3):
            tid = f"d{day}-t{k}"
            start = T0 + timedelta(days=day, minutes=10 * k)
            tasks.append(Task(task_id=tid, task_type="support", outcome="success",
                              started_at=start, ended_at=start + timedelta(minutes=2)))
            for i in range(2 + day):
                calls.append(Call(
                    ts=start + timedelta(seconds=30 * i), provider="anthropic",
                    model="claude-sonnet-4-5", task_id=tid, session_id=tid, task_type="support",
                    request_id=f"{tid}-{i}", prefix_fingerprint=("a", "b", "c" if i else "x"),
                    usage=Usage(input_tokens=100, cache_read_tokens=900 if i else 0,
                                cache_write_5m_tokens=0 if i else 900, output_tokens=50)))
    tasks.append(Task(task_id="d1-blocked", task_type="support", outcome="blocked",
                      started_at=T0 + timedelta(days=1, hours=1),
                      blocked_by={"cap": "max_calls", "limit": "0", "task_id": "d1-blocked",
                                  "phase": "pre-call"}))
    p = tmp_path_factory.mktemp("range") / "usage.duckdb"
    with open_store(p) as st:
        st.insert_calls(calls)
        st.upsert_tasks(tasks)
    return p


def _json(store: Path, *args: str) -> Any:
    r = runner.invoke(app, [*args, "--db", str(store), "--json"])
    assert r.exit_code in (0, 1), r.output  # checklist / audit --check may fail: still JSON
    return json.loads(r.stdout)


DAY2 = ("--since", "2026-03-02")
DAY1 = ("--until", "2026-03-01")  # a date includes its whole day


def test_report_and_signals_filter(store: Path) -> None:
    all_ = _json(store, "report", "--by", "day")
    assert [r["key"] for r in all_["rows"]] == ["2026-03-01", "2026-03-02"]
    d2 = _json(store, "report", "--by", "task", *DAY2)
    assert {r["key"] for r in d2["rows"]} == {"d1-t0", "d1-t1", "d1-t2", "d1-blocked"}
    d1 = _json(store, "report", "--by", "task", *DAY1)
    assert {r["key"] for r in d1["rows"]} == {"d0-t0", "d0-t1", "d0-t2"}
    assert d1["total"]["calls"] == 6 and d2["total"]["calls"] == 9


def test_whatif_filters(store: Path) -> None:
    calls = [sum(t["calls"] for t in _json(store, "whatif", "--ttl", "1h", *rng)["types"])
             for rng in ((), DAY1, DAY2)]
    assert calls == [15, 6, 9]


def test_checklist_filters(store: Path) -> None:
    def hit(*rng: str) -> str:
        items = {i["id"]: i for i in _json(store, "checklist", *rng)["items"]}
        return str(items["caching_verified"]["evidence"][0])

    # day 1: one read per write (900 / 2,000 prompt tokens); day 2: two (1,800 / 3,000)
    assert "cache read 2,700 / prompt 6,000" in hit(*DAY1)
    assert "cache read 5,400 / prompt 9,000" in hit(*DAY2)
    assert "cache read 8,100 / prompt 15,000" in hit()


def test_audit_filters(store: Path) -> None:
    assert [_json(store, "audit", *rng)["requests"] for rng in ((), DAY1, DAY2)] == [15, 6, 9]
    # a time, not a date: exclusive upper bound
    assert _json(store, "audit", "--since", "2026-03-02T10:00:00",
                 "--until", "2026-03-02T10:10:00")["requests"] == 3


def test_export_filters(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "lake"
    r = runner.invoke(app, ["export", "--db", str(store), "--out", str(out), *DAY2, "--json"])
    assert r.exit_code == 0, r.output
    done = json.loads(r.stdout)
    assert (done["calls"], done["days"], done["first_day"]) == (9, 1, "2026-03-02")
    assert done["tasks"] == 4  # the day's three tasks and the one blocked that day
    # the export reads back as the same range
    back = _json(store, "report", "--by", "task", *DAY2)
    lake = json.loads(runner.invoke(app, ["report", "--data", str(out), "--by", "task",
                                          "--json"]).stdout)
    assert {r["key"]: r["cost_usd"] for r in lake["rows"]} == {
        r["key"]: r["cost_usd"] for r in back["rows"]}


def test_dashboard_dataset_filters(store: Path) -> None:
    pytest.importorskip("starlette")
    from ctxbudget.serve.dashboard import Dataset
    from ctxbudget.serve.dashboard._data import TaskQuery

    ds = Dataset(db=store, since=T0 + timedelta(days=1))
    try:
        snap = ds.snapshot()
        assert snap is not None and snap.by_day.total.calls == 9
        assert [r.key for r in snap.by_day.rows] == ["2026-03-02"]
        rows, n = ds.tasks(TaskQuery())
        assert n == 4 and {r["task_key"] for r in rows} == {"d1-t0", "d1-t1", "d1-t2",
                                                             "d1-blocked"}
    finally:
        ds.close()


def test_empty_or_reversed_range_is_a_user_error(store: Path) -> None:
    for cmd in (["report"], ["whatif", "--ttl", "1h"], ["audit"], ["checklist"]):
        r = runner.invoke(app, [*cmd, "--db", str(store), "--since", "2026-03-02",
                                "--until", "2026-03-01"])
        assert r.exit_code == 2 and "range is empty" in r.stderr, (cmd, r.output)


def test_dashboard_reads_a_store_written_before_blocked_by(tmp_path: Path) -> None:
    """The dashboard attaches the store read-only (not migrated): a store of migrations 1-5
    has no tasks.blocked_by, which the task report reads; it is NULL, not an error."""
    pytest.importorskip("starlette")
    import duckdb

    from ctxbudget.serve.dashboard import Dataset
    from ctxbudget.store.schema import MIGRATIONS

    p = tmp_path / "old.duckdb"
    con = duckdb.connect(str(p))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
                "applied_at TIMESTAMPTZ DEFAULT now())")
    for v, name, fn in MIGRATIONS:
        if v <= 5:
            fn(con)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                        [v, name])
    con.execute("INSERT INTO calls (call_key, ts, provider, model, task_id, input_tokens, "
                "cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, "
                "output_tokens, reasoning_tokens, status, source) VALUES ('k1', TIMESTAMPTZ "
                "'2026-03-01 10:00:00+00', 'anthropic', 'claude-sonnet-4-5', 't1', 100, 0, 0, "
                "0, 10, 0, 'ok', 'track')")
    con.execute("INSERT INTO tasks (task_id, outcome) VALUES ('t1', 'success')")
    con.close()
    ds = Dataset(db=p)
    try:
        snap = ds.snapshot()
        assert snap is not None and snap.by_day.total.success_tasks == 1
    finally:
        ds.close()
