"""Issue 4 acceptance: `import claude-code` + `report --json` equal ccusage's own output."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ctxbudget.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def cc_db(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    db = tmp_path_factory.mktemp("cc") / "usage.duckdb"
    r = runner.invoke(app, ["import", "claude-code", str(data_dir / "claude-code"),
                            "--db", str(db)])
    assert r.exit_code == 0, r.output
    return db


def _report(db: Path, by: str) -> dict[str, Any]:
    r = runner.invoke(app, ["report", "--by", by, "--json", "--db", str(db)])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def _check(row: dict[str, Any], ref: dict[str, Any]) -> None:
    assert row["input_tokens"] == ref["inputTokens"]
    assert row["output_tokens"] == ref["outputTokens"]
    assert row["cache_read_tokens"] == ref["cacheReadTokens"]
    assert row["cache_write_5m_tokens"] + row["cache_write_1h_tokens"] == \
        ref["cacheCreationTokens"]
    assert row["unpriced_calls"] == 0
    assert abs(Decimal(row["cost_usd"]) - Decimal(str(ref["totalCost"]))) <= Decimal("0.000001")


def test_daily_equals_ccusage(cc_db: Path, data_dir: Path) -> None:
    ref = json.loads((data_dir / "claude-code" / "ccusage-daily-offline.json").read_text())
    got = {r["key"]: r for r in _report(cc_db, "day")["rows"]}
    assert sorted(got) == sorted(d["date"] for d in ref["daily"])
    for d in ref["daily"]:
        _check(got[d["date"]], d)
    tot = _report(cc_db, "day")["total"]
    _check(tot, ref["totals"])


def test_sessions_equal_ccusage(cc_db: Path, data_dir: Path) -> None:
    ref = json.loads((data_dir / "claude-code" / "ccusage-session-offline.json").read_text())
    got = {r["key"]: r for r in _report(cc_db, "session")["rows"]}
    assert sorted(got) == sorted(s["sessionId"] for s in ref["sessions"])
    for s in ref["sessions"]:
        _check(got[s["sessionId"]], s)


def test_reimport_changes_nothing(cc_db: Path, data_dir: Path) -> None:
    before = _report(cc_db, "day")
    r = runner.invoke(app, ["import", "claude-code", str(data_dir / "claude-code"),
                            "--db", str(cc_db)])
    assert r.exit_code == 0, r.output
    after = _report(cc_db, "day")
    assert before == after
