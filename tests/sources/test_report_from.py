"""``ctxbudget report --from claude-code [PATH]``: import what is new, then report, in
one command (issue #14 point 3); totals equal ccusage's on the shared data."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctxbudget.cli.main import app


def _daily(data_dir: Path) -> dict[str, dict[str, object]]:
    ref = json.loads((data_dir / "claude-code" / "ccusage-daily-offline.json").read_text())
    return {d["date"]: d for d in ref["daily"]}


def _check_equal(rows: list[dict[str, object]], ref: dict[str, dict[str, object]]) -> None:
    assert [r["key"] for r in rows] == sorted(ref)
    for r in rows:
        d = ref[str(r["key"])]
        assert r["input_tokens"] == d["inputTokens"]
        assert r["output_tokens"] == d["outputTokens"]
        assert r["cache_read_tokens"] == d["cacheReadTokens"]
        assert int(str(r["cache_write_5m_tokens"])) + int(str(r["cache_write_1h_tokens"])) \
            == d["cacheCreationTokens"]
        assert abs(Decimal(str(r["cost_usd"])) - Decimal(str(d["totalCost"]))) \
            <= Decimal("0.000001")


def test_report_from_config_dir_then_grown_file(data_dir: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "claude"
    shutil.copytree(data_dir / "claude-code" / "projects", root / "projects")
    f = sorted((root / "projects").rglob("*.jsonl"))[0]
    full = f.read_bytes()
    lines = full.splitlines(keepends=True)
    f.write_bytes(b"".join(lines[:20]))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(root))
    db = tmp_path / "u.duckdb"
    runner = CliRunner()
    r = runner.invoke(app, ["report", "--from", "claude-code", "--by", "day", "--db", str(db),
                            "--json"])
    assert r.exit_code == 0, r.output
    f.write_bytes(full)
    r = runner.invoke(app, ["report", "--from", "claude-code", "--by", "day", "--db", str(db),
                            "--json"])
    assert r.exit_code == 0, r.output
    _check_equal(json.loads(r.stdout)["rows"], _daily(data_dir))
    with __import__("ctxbudget").open_store(db) as st:
        assert st.con.execute("SELECT count(*) FROM imports").fetchall() == [(3,)]
    # an explicit PATH, and a folder given the terminal table (summary on stderr)
    r = runner.invoke(app, ["report", str(root), "--from", "claude-code", "--by", "day",
                            "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert "0 calls from 0 files read, 3 unchanged" in r.stderr


def test_report_from_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "nowhere"))
    r = runner.invoke(app, ["report", "--from", "claude-code", "--db", str(tmp_path / "u.db")])
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nowhere'}: no such folder (set CLAUDE_CONFIG_DIR or give PATH)"]
    r = runner.invoke(app, ["report", str(tmp_path), "--db", str(tmp_path / "u.db")])
    assert r.exit_code == 2 and "needs --from FORMAT" in r.stderr
    r = runner.invoke(app, ["report", "--from", "otel", str(tmp_path)])
    assert r.exit_code == 2 and "--from: 'otel' is not one of claude-code, codex" in r.stderr


def test_default_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ctxbudget.cli.report import default_log_paths

    monkeypatch.setenv("CLAUDE_CONFIG_DIR", f"{tmp_path}/a, {tmp_path}/b")
    assert default_log_paths("claude-code") == [tmp_path / "a", tmp_path / "b"]
    monkeypatch.delenv("CLAUDE_CONFIG_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_log_paths("claude-code") == [tmp_path / ".claude"]
    (tmp_path / ".config" / "claude").mkdir(parents=True)
    (tmp_path / ".claude").mkdir()
    assert default_log_paths("claude-code") == [tmp_path / ".config" / "claude",
                                                tmp_path / ".claude"]
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "cx"))
    assert default_log_paths("codex") == [tmp_path / "cx" / "sessions"]
