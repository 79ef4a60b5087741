"""The dashboard in a real browser (Debian's chromium driven by Playwright) against the real
server: click from the overview down to one call and its audit, check the numbers shown
equal ``ctxbudget report --json``, take screenshots (test-artifacts/serve/), and fail on
any request that leaves 127.0.0.1 (the ``page`` fixture)."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from .conftest import Server, cli, cli_json, fingerprint_calls, shot

pytestmark = pytest.mark.browser


def _cells(pg: Any, table: str, col: int) -> dict[str, str]:
    """``data-key`` of each row of ``#table`` -> ``data-v`` of its column ``col``."""
    out: dict[str, str] = pg.eval_on_selector_all(
        f"#{table} tbody tr",
        f"rows => Object.fromEntries(rows.map(r => [r.dataset.key, "
        f"r.children[{col}].dataset.v]))")
    return out


def _report(db: Path, by: str) -> dict[str, Any]:
    rep = cli_json("report", "--by", by, "--db", str(db))
    return {r["key"]: r for r in rep["rows"]} | {"__total__": rep["total"]}


def _click_through(pg: Any, server: Server, db: Path, name: str) -> None:
    pg.goto(server.url + "/")
    shot(pg, f"{name}-overview")
    by_day, by_type = _report(db, "day"), _report(db, "type")
    days = _cells(pg, "days", 3)
    assert days, "no day rows"
    assert days == {k: v["cost_usd"] for k, v in by_day.items() if k != "__total__"}
    calls = _cells(pg, "days", 1)
    assert {k: int(v) for k, v in calls.items()} == {
        k: v["calls"] for k, v in by_day.items() if k != "__total__"}
    types = _cells(pg, "types", 3)
    assert types == {k: v["cost_usd"] for k, v in by_type.items() if k != "__total__"}
    spend = pg.get_attribute('.card[data-k="spend"]', "data-v")
    assert spend == by_day["__total__"]["cost_usd"]

    # overview -> the most expensive day -> its most expensive task type
    top_day = max((k for k in days), key=lambda k: Decimal(days[k]))
    pg.click(f'#days tr[data-key="{top_day}"] a')
    pg.wait_for_selector("#day-types")
    assert pg.url.endswith(f"/day/{top_day}")
    shot(pg, f"{name}-day")
    pg.click("#day-types tbody tr:first-child a")
    pg.wait_for_selector("#tasks")
    assert "/tasks?" in pg.url and f"day={top_day}" in pg.url
    shot(pg, f"{name}-tasks")
    # sort by calls (state in the URL), then open the first task
    pg.click('#tasks th a:text-is("calls")')
    pg.wait_for_selector("#tasks")
    assert "sort=calls" in pg.url
    ncalls = [int(v) for v in pg.eval_on_selector_all(
        "#tasks tbody tr", "rows => rows.map(r => r.children[3].dataset.v)")]
    assert ncalls == sorted(ncalls, reverse=True)
    key = pg.get_attribute("#tasks tbody tr:first-child", "data-key")
    pg.click("#tasks tbody tr:first-child td:first-child a")
    pg.wait_for_selector("#calls")
    shot(pg, f"{name}-task")
    by_task = {r["key"]: r for r in cli_json("report", "--by", "task", "--db", str(db),
                                             "--limit", "0")["rows"]}
    task_cost = pg.get_attribute("dl.summary dd.money", "data-v")
    assert task_cost == by_task[key]["cost_usd"]
    call_costs = [Decimal(v) for v in pg.eval_on_selector_all(
        "#calls tbody tr", "rows => rows.map(r => r.children[7].dataset.v)")]
    assert len(call_costs) == by_task[key]["calls"]
    assert sum(call_costs, Decimal(0)) == Decimal(task_cost)

    # task -> one call (the first flagged one, else the last) and its audit section
    link = pg.query_selector("#calls a.why") or pg.query_selector_all("#calls a")[-1]
    link.click()
    pg.wait_for_selector("#buckets")
    assert "Why this call was expensive" in pg.content()
    assert Decimal(pg.get_attribute("#call-cost", "data-v")) in call_costs
    shot(pg, f"{name}-call")


def test_shared_claude_code_store(cc_store: Path, page: Any) -> None:
    server = Server("--db", str(cc_store))
    try:
        _click_through(page, server, cc_store, "claude-code")
    finally:
        server.stop()


@pytest.mark.slow
def test_simulated_1m_call_store(sim_store_factory: Any, page: Any) -> None:
    db = sim_store_factory(62_500)  # ~1M calls
    server = Server("--db", str(db))
    try:
        _click_through(page, server, db, "sim-1m")
        # a filter by outcome and model keeps its state in a shareable URL
        page.goto(server.url + "/tasks?outcome=failure&sort=cost&order=desc")
        n = int(page.get_attribute("#count", "data-v"))
        rep = cli_json("report", "--by", "type", "--db", str(db))
        assert n == sum(t["failures"] for t in rep["types"])
    finally:
        server.stop()


def test_why_page_names_the_changed_block(fp_store: Path, page: Any) -> None:
    server = Server("--db", str(fp_store))
    try:
        page.goto(server.url + "/tasks")
        page.click("#tasks tbody tr:first-child td:first-child a")
        page.wait_for_selector("#calls")
        flagged = page.eval_on_selector_all(
            "#calls tbody tr.sus", "rows => rows.map(r => r.dataset.key)")
        assert "track:req_task-fp_3" in flagged
        page.click('#calls tr[data-key="track:req_task-fp_3"] a')
        page.wait_for_selector(".findings")
        cause = page.inner_text(".findings .cause")
        assert cause == "prefix_changed"  # fingerprints only: which block, not what kind
        changed = page.eval_on_selector_all(
            "#blocks tbody tr.changed", "rows => rows.map(r => r.children[0].innerText)")
        assert changed == ["block[1]"]
        lost = page.get_attribute(".findings .money", "data-v")
        assert Decimal(lost) > 0
        shot(page, "why-call")
    finally:
        server.stop()


def test_whatif_page_equals_the_command(cc_store: Path, page: Any) -> None:
    server = Server("--db", str(cc_store))
    try:
        page.goto(server.url + "/whatif")
        page.fill('input[name="model"]', "claude-haiku-4-5")
        page.click('button[name="run"]')
        page.wait_for_selector("#whatif")
        shot(page, "whatif")
        got = _cells(page, "whatif", 5)
        want = cli_json("whatif", "--db", str(cc_store), "--model-map", "*=claude-haiku-4-5")
        assert got.pop("(total)") == want["after_usd"]
        assert got == {t["task_type"]: t["after_usd"] for t in want["types"]}
        assert "model before -> after" in page.inner_text("#whatif thead")
    finally:
        server.stop()


def test_page_refreshes_when_new_calls_arrive(tmp_path: Path, page: Any) -> None:
    """New tracked calls in the spool show up without a reload by hand, and the store
    is never written to."""
    import hashlib

    from ctxbudget.store import open_store
    from ctxbudget.track import SpoolWriter

    db, spool = tmp_path / "live.duckdb", tmp_path / "spool"
    calls = fingerprint_calls()
    with open_store(db) as st:
        st.insert_calls(calls[:2])
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    server = Server("--db", str(db), "--spool", str(spool), "--refresh", "0.5")
    try:
        page.goto(server.url + "/")
        assert page.get_attribute('.card[data-k="calls"]', "data-v") == "2"
        w = SpoolWriter(spool)
        for c in calls[2:]:
            w.put("c", c)
        w.close()
        deadline = time.monotonic() + 60  # the page's own script reloads it (no eval: CSP)
        while page.get_attribute('.card[data-k="calls"]', "data-v") != "5":
            assert time.monotonic() < deadline, "the page did not refresh"
            page.wait_for_timeout(250)
        assert "not yet ingested" in page.inner_text("main")
    finally:
        server.stop()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    res = cli("report", "--by", "day", "--db", str(db), "--json")
    assert res.returncode == 0
