"""A task a budget cap blocks, before or during its run, is reported with outcome ``blocked``
and the cap that blocked it: real tracker, local fake API, spool -> store -> ``report``."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fakeapi import FakeAPI
from track_helpers import closing, recorded
from typer.testing import CliRunner

import ctxbudget
from ctxbudget.cli.main import build_app
from ctxbudget.errors import BudgetExceeded
from ctxbudget.store.spool import ingest_spool

anthropic = pytest.importorskip("anthropic")
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

MODEL = "claude-sonnet-4-5"
MSG = [{"role": "user", "content": "hi"}]


def _client(api: FakeAPI) -> Any:
    return ctxbudget.track(closing(anthropic.Anthropic(base_url=api.url, api_key="test",
                                                       max_retries=0)))


def _run_tasks(api: FakeAPI) -> None:
    """Four tasks of type ``support``: one blocked before its first call (``max_calls=0``,
    the exception escapes), one blocked on its second call (``max_calls=1``, caught), one
    blocked by its parent's cap, one that finishes; and one tracked call outside any task."""
    client = _client(api)
    with pytest.raises(BudgetExceeded), ctxbudget.task("never-ran", type="support",
                                                       max_calls=0):
        client.messages.create(model=MODEL, max_tokens=64, messages=MSG)
    with ctxbudget.task("stopped", type="support", max_cost_usd="5", max_calls=1) as t:
        client.messages.create(model=MODEL, max_tokens=64, messages=MSG)
        with pytest.raises(BudgetExceeded):
            client.messages.create(model=MODEL, max_tokens=64, messages=MSG)
    assert t.outcome == "blocked"
    assert t.blocked_by == {"cap": "max_calls", "limit": "1", "task_id": "stopped",
                            "phase": "pre-call"}
    with pytest.raises(BudgetExceeded), ctxbudget.task("parent", type="batch", max_calls=1):
        client.messages.create(model=MODEL, max_tokens=64, messages=MSG)
        with ctxbudget.task("child", type="support"):
            client.messages.create(model=MODEL, max_tokens=64, messages=MSG)
    with ctxbudget.task("fine", type="support") as ok:
        client.messages.create(model=MODEL, max_tokens=64, messages=MSG)
    assert ok.outcome == "success" and ok.blocked_by is None
    client.messages.create(model=MODEL, max_tokens=64, messages=MSG)  # no task


def test_blocked_outcome_is_recorded_with_its_cap(api: FakeAPI, spool: Path) -> None:
    _run_tasks(api)
    _, tasks = recorded(spool)
    by_id = {t.task_id: t for t in tasks}
    assert {k: by_id[k].outcome for k in by_id} == {
        "never-ran": "blocked", "stopped": "blocked", "parent": "blocked", "child": "blocked",
        "fine": "success"}
    assert by_id["never-ran"].blocked_by == {"cap": "max_calls", "limit": "0",
                                             "task_id": "never-ran", "phase": "pre-call"}
    # the child's call was blocked by its parent's cap: both name the parent's cap
    assert by_id["child"].blocked_by == by_id["parent"].blocked_by == {
        "cap": "max_calls", "limit": "1", "task_id": "parent", "phase": "pre-call"}
    assert by_id["fine"].blocked_by is None


def test_explicit_outcome_after_a_block_wins(api: FakeAPI, spool: Path) -> None:
    client = _client(api)
    with ctxbudget.task("handled", max_calls=0) as t:
        with pytest.raises(BudgetExceeded):
            client.messages.create(model=MODEL, max_tokens=64, messages=MSG)
        assert t.outcome == "blocked"
        t.outcome = "partial"  # the code fell back to something else
    _, (task,) = recorded(spool)
    assert task.outcome == "partial" and task.blocked_by is not None


def _report(db: Path, *args: str) -> Any:
    r = CliRunner().invoke(build_app(), ["report", "--db", str(db), *args],
                           env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    return r.output


def test_report_shows_blocked_tasks_and_their_caps(api: FakeAPI, spool: Path,
                                                   tmp_path: Path) -> None:
    _run_tasks(api)
    ctxbudget.track.flush()
    db = tmp_path / "usage.duckdb"
    ingest_spool(db, spool)
    doc = json.loads(_report(db, "--by", "task", "--json"))
    rows = {r["key"]: r for r in doc["rows"]}
    # blocked before its first call: no call stored, still a row (cost exactly 0)
    never = rows["never-ran"]
    assert never["outcome"] == "blocked" and never["calls"] == 0
    assert Decimal(never["cost_usd"]) == 0 and never["blocked_tasks"] == 1
    assert never["blocked_by"] == {"cap": "max_calls", "limit": "0", "task_id": "never-ran",
                                   "phase": "pre-call"}
    stopped = rows["stopped"]
    assert stopped["outcome"] == "blocked" and stopped["calls"] == 1
    assert Decimal(stopped["cost_usd"]) > 0
    assert stopped["blocked_by"]["cap"] == "max_calls"
    assert rows["child"]["blocked_by"]["task_id"] == "parent"
    assert rows["fine"]["outcome"] == "success" and "blocked_by" not in rows["fine"]
    assert doc["total"]["blocked_tasks"] == 4
    # the tracked call outside any task: one "(no task)" row, not a task
    assert (rows["(no task)"]["calls"], rows["(no task)"]["tasks"]) == (1, 0)
    assert doc["total"]["tasks"] == 5 and doc["total"]["calls"] == 4
    assert {t["task_type"]: t["tasks"] for t in doc["types"]} == {
        "support": 4, "batch": 1, "(no task)": 0}
    support = next(t for t in doc["types"] if t["task_type"] == "support")
    assert support["blocked"] == 3 and support["successes"] == 1  # never-ran, stopped, child
    assert next(t for t in doc["types"] if t["task_type"] == "batch")["blocked"] == 1

    table = _report(db, "--by", "task")
    nt = [ln for ln in table.splitlines() if ln.lstrip("│ ").startswith("(no task)")]
    assert len(nt) == 2 and "unpriced" not in nt[1]  # a --by task row, a type row: no task
    line = next(ln for ln in table.splitlines() if ln.lstrip("│ ").startswith("never-ran"))
    assert "blocked: max_calls 0" in line
    child = next(ln for ln in table.splitlines() if ln.lstrip("│ ").startswith("child"))
    assert "blocked: max_calls 1 of parent" in child
    assert "blocked" in next(ln for ln in table.splitlines() if "type" in ln and "p95" in ln)

    # the per-type summaries count them whatever the --by
    by_type = json.loads(_report(db, "--by", "type", "--json"))
    assert {r["key"]: r["blocked_tasks"] for r in by_type["rows"]}["batch"] == 1
    assert next(t for t in by_type["types"] if t["task_type"] == "support")["blocked"] == 3
