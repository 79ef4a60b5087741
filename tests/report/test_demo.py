"""`ctxbudget demo`: the README's main job, offline."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ctxbudget.cli.main import app


def test_demo_runs_and_finds_the_regression(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    r = CliRunner().invoke(app, ["demo", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert Path(s["html"]).stat().st_size > 1_000_000  # plotly.js inlined
    assert Path(s["calls_file"]).exists() and Path(s["baseline"]).exists()
    assert s["signals"] == ["rising_cost:support", "low_cache_hit:support"]
    assert s["check_ok"] is False and s["breaches"] >= 2


def test_demo_terminal_output_says_where_the_report_is(tmp_path: Path) -> None:
    out = tmp_path / "d"
    r = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert f"HTML report: {out / 'report.html'}" in r.stdout.replace("\n", "")
    assert "BREACH" in r.stdout and "low_cache_hit" in r.stdout
