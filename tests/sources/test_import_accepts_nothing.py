"""An import that accepts nothing is a user error said once (exit 2), not a rejection per
line and exit 0: a wrong format, a column mapping naming a missing column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctxbudget.cli.main import app

runner = CliRunner()


def _import(db: Path, *args: str) -> object:
    return runner.invoke(app, ["import", *args, "--db", str(db)])


def _one_line(r: object, *words: str) -> None:
    err = r.stderr  # type: ignore[attr-defined]
    assert r.exit_code == 2, r.output  # type: ignore[attr-defined]
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "rejected " not in err.splitlines()[0][:9]  # no per-line rejection list
    for w in words:
        assert w in err, err
    assert "Traceback" not in r.output  # type: ignore[attr-defined]


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    p = tmp_path / "calls.csv"
    p.write_text("timestamp,model,prompt,completion\n"
                 "2026-03-01T10:00:00Z,gpt-4o,1000,200\n"
                 "2026-03-01T10:01:00Z,gpt-4o,1500,100\n", encoding="utf-8")
    return p


def test_mapping_to_a_missing_column_is_one_header_error(tmp_path: Path,
                                                         csv_file: Path) -> None:
    db = tmp_path / "u.duckdb"
    r = _import(db, "table", str(csv_file), "--map", "input_tokens=prompt_tokens")
    _one_line(r, str(csv_file), "--map input_tokens=prompt_tokens", "'prompt_tokens'",
              "columns: timestamp, model, prompt, completion")
    ok = _import(db, "table", str(csv_file), "--map",
                 "input_tokens=prompt,output_tokens=completion", "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["accepted"] == 2


def test_table_without_a_model_or_time_column(tmp_path: Path) -> None:
    p = tmp_path / "nomodel.csv"
    p.write_text("ts,input_tokens\n2026-03-01T10:00:00Z,5\n", encoding="utf-8")
    _one_line(_import(tmp_path / "u.duckdb", "table", str(p)), "no 'model' column",
              "--map model=COLUMN")
    q = tmp_path / "notime.csv"
    q.write_text("model,input_tokens\ngpt-4o,5\n", encoding="utf-8")
    _one_line(_import(tmp_path / "u.duckdb", "table", str(q)), "no time column",
              "--map ts=COLUMN")


def test_parquet_table_mapping_checked_against_its_schema(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "calls.parquet"
    pq.write_table(pa.table({"ts": ["2026-03-01T10:00:00Z"], "model": ["gpt-4o"],
                             "input_tokens": [5]}), p)
    _one_line(_import(tmp_path / "u.duckdb", "table", str(p), "--map", "output_tokens=out"),
              "no column 'out'")


def test_wrong_format_exits_2_with_one_line(tmp_path: Path, data_dir: Path) -> None:
    claude = next((data_dir / "claude-code").rglob("*.jsonl"))
    lines = sum(1 for ln in claude.read_bytes().splitlines() if ln.strip())
    r = _import(tmp_path / "u.duckdb", "litellm", str(claude))
    _one_line(r, "nothing imported as litellm", f"{lines:,} of {lines:,} lines rejected",
              f"first: {claude}:1:", "right format")
    # the right format imports the same file
    ok = _import(tmp_path / "u.duckdb", "claude-code", str(claude), "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["accepted"] > 0


def test_all_skipped_is_a_warning_not_an_error(tmp_path: Path, data_dir: Path) -> None:
    """Lines that are valid but not calls of the format (codex reading a Claude Code log)
    import nothing: a warning, exit 0 (a log with no model reply yet is not an error)."""
    claude = next((data_dir / "claude-code").rglob("*.jsonl"))
    r = _import(tmp_path / "u.duckdb", "codex", str(claude))
    assert r.exit_code == 0, r.output
    assert r.stderr.startswith("warning: nothing imported as codex: every line was skipped")


def test_some_rejected_some_accepted_is_exit_0(tmp_path: Path, csv_file: Path) -> None:
    with csv_file.open("a", encoding="utf-8") as fh:
        fh.write("not-a-time,gpt-4o,5,5\n")
    r = _import(tmp_path / "u.duckdb", "table", str(csv_file), "--map",
                "input_tokens=prompt,output_tokens=completion")
    assert r.exit_code == 0, r.output
    assert "rejected" in r.stderr and ":4:" in r.stderr
