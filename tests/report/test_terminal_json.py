"""Terminal (rich protocol) and JSON renderers, and the report CLI."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ctxbudget.analyze.engine import DuckDBEngine
from ctxbudget.analyze.metrics import compute_report
from ctxbudget.analyze.rules import CheckResult
from ctxbudget.analyze.signals import compute_signals
from ctxbudget.analyze.source import open_source
from ctxbudget.cli.main import app
from ctxbudget.report import CheckView, ReportView, SignalsView, render_text, to_jsonable

runner = CliRunner()


def test_report_view_renders_rows_total_and_types(regressed_store: Path) -> None:
    with open_source(db=regressed_store) as src:
        rep = compute_report(DuckDBEngine(src), "type", source="s")
    text = render_text(ReportView(rep), width=140)
    assert "cost by type" in text
    for row in rep.rows:
        assert row.key in text
        assert f"${float(row.cost_usd or 0):,.4f}" in text
    assert "total" in text and "cost per task by type" in text
    assert "\x1b[" not in text  # no colour codes in plain rendering


def test_report_view_limit(regressed_store: Path) -> None:
    with open_source(db=regressed_store) as src:
        rep = compute_report(DuckDBEngine(src), "task", with_types=False)
    text = render_text(ReportView(rep, limit=3), width=140)
    assert f"({len(rep.rows) - 3} more rows; --format json or csv prints all)" in text
    assert rep.rows[0].key in text and rep.rows[-1].key not in text


def test_signals_and_check_views(regressed_store: Path) -> None:
    with open_source(db=regressed_store) as src:
        found = compute_signals(DuckDBEngine(src))
    text = render_text(SignalsView(found), width=140)
    assert "rising_cost" in text and "fix:" in text
    assert "no warning signals" in render_text(SignalsView([]))
    assert "all checks passed" in render_text(CheckView(CheckResult(breaches=(), evaluated=())))


def test_json_is_exact_money(regressed_store: Path) -> None:
    with open_source(db=regressed_store) as src:
        rep = compute_report(DuckDBEngine(src), "day")
    doc = to_jsonable(rep)
    json.dumps(doc)  # serializable
    assert isinstance(doc["total"]["cost_usd"], str)
    assert sum(float(r["cost_usd"]) for r in doc["rows"]) == \
        __import__("pytest").approx(float(doc["total"]["cost_usd"]))


def test_cli_report_json_and_errors(regressed_store: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["report", "--by", "model", "--json", "--db", str(regressed_store)])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [row["key"] for row in doc["rows"]] == ["claude-sonnet-4-5"]
    bad = runner.invoke(app, ["report", "--by", "week", "--db", str(regressed_store)])
    assert bad.exit_code == 2 and "--by" in bad.stderr
    missing = runner.invoke(app, ["report", "--db", str(tmp_path / "none.duckdb")])
    assert missing.exit_code == 2 and "none.duckdb" in missing.stderr
    tz = runner.invoke(app, ["report", "--tz", "Mars/Olympus", "--db", str(regressed_store)])
    assert tz.exit_code == 2 and "--tz" in tz.stderr
    since = runner.invoke(app, ["report", "--by", "day", "--json", "--since", "2026-03-04",
                                "--until", "2026-03-05", "--db", str(regressed_store)])
    assert [row["key"] for row in json.loads(since.stdout)["rows"]] == \
        ["2026-03-04", "2026-03-05"]


def test_empty_store_says_so(tmp_path: Path) -> None:
    from ctxbudget.store import open_store

    db = tmp_path / "empty.duckdb"
    open_store(db).close()
    r = runner.invoke(app, ["report", "--db", str(db)])
    assert r.exit_code == 0 and "no calls in" in r.stdout
    j = runner.invoke(app, ["report", "--db", str(db), "--json"])
    doc = json.loads(j.stdout)
    assert doc["rows"] == [] and doc["total"] is None


def test_cli_signals_json(regressed_store: Path) -> None:
    r = runner.invoke(app, ["signals", "--json", "--db", str(regressed_store)])
    assert r.exit_code == 0, r.output
    sig = json.loads(r.stdout)["signals"]
    assert [(s["kind"], s["task_type"], s["started"]) for s in sig] == [
        ("rising_cost", "support", "2026-03-06")]


def test_cli_report_parquet_data(regressed_store: Path, tmp_path: Path) -> None:
    import duckdb

    pq = tmp_path / "calls.parquet"
    con = duckdb.connect(str(regressed_store), read_only=True)
    con.execute(f"COPY calls TO '{pq}' (FORMAT parquet)")
    con.close()
    a = runner.invoke(app, ["report", "--by", "day", "--json", "--data", str(pq)])
    b = runner.invoke(app, ["report", "--by", "day", "--json", "--db", str(regressed_store)])
    assert a.exit_code == 0, a.output
    ra, rb = json.loads(a.stdout), json.loads(b.stdout)
    assert ra["total"]["cost_usd"] == rb["total"]["cost_usd"]
    # without the sibling tasks file, outcomes are unknown, never invented
    assert ra["total"]["success_tasks"] == 0 and rb["total"]["success_tasks"] > 0
