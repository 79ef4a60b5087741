"""Bad input to the importers and config readers: one line naming file:line (or file and
field), exit 2 under ``--strict``, never a traceback, never a nonsense value stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ctxbudget.cli.main import app
from ctxbudget.errors import InputFormatError, PriceFileError, SpecError
from ctxbudget.sources import get_importer, import_paths, json_records
from ctxbudget.sources._base import csv_records, decode_json_line
from ctxbudget.store import open_store

runner = CliRunner()

ROW = {"ts": "2025-06-01T10:00:00Z", "model": "gpt-4o", "input_tokens": 100,
       "output_tokens": 20, "latency_ms": 812.0, "request_id": "r1"}


def _import(fmt: str, path: Path, db: Path) -> tuple[Any, list[tuple[Any, ...]]]:
    with open_store(db) as st:
        stats = import_paths(get_importer(fmt), [path], st)
        rows = st.con.execute("SELECT call_key, ts, input_tokens, latency_ms FROM calls "
                              "ORDER BY call_key").fetchall()
    return stats, rows


@pytest.mark.parametrize(("bad", "field"), [
    ({"ts": "1970-01-01T00:00:00Z"}, "ts"),
    ({"ts": "9999-12-31T00:00:00Z"}, "ts"),
    ({"ts": 10**30}, "ts"),
    ({"input_tokens": 10**13}, "input_tokens"),
    ({"input_tokens": 2**64}, "input_tokens"),
    ({"output_tokens": -5}, "output_tokens"),
    ({"latency_ms": -3.0}, "latency_ms"),
    ({"latency_ms": "nan"}, "latency_ms"),
    ({"latency_ms": "inf"}, "latency_ms"),
])
def test_table_row_out_of_range_is_rejected_with_its_line(tmp_path: Path, bad: dict[str, Any],
                                                          field: str) -> None:
    good2 = {**ROW, "request_id": "r3"}
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (ROW, {**ROW, "request_id": "r2", **bad},
                                                        good2)) + "\n")
    stats, rows = _import("table", path, tmp_path / "u.db")
    assert stats.accepted == 2 and stats.rejected == 1
    assert stats.rejections[0].line == 2 and field in stats.rejections[0].reason
    assert [r[0] for r in rows] == ["table:r1", "table:r3"]
    # --strict: exit 2, one line naming file:line
    r = runner.invoke(app, ["import", "table", str(path), "--db", str(tmp_path / "s.db"),
                            "--strict"])
    assert r.exit_code == 2, r.output
    assert f"{path}:2:" in r.stderr and "Traceback" not in r.stderr


def test_json_lines_that_python_cannot_decode(tmp_path: Path) -> None:
    """Non-UTF-8 bytes, an integer past the int-str limit, nesting past the recursion
    limit: each an InputFormatError value, the other lines read."""
    lines = [json.dumps(ROW).encode(), b'{"model": "\xff\xfe"}',
             b'{"input_tokens": ' + b"9" * 5000 + b"}", b"[" * 100_000 + b"]" * 100_000,
             json.dumps({**ROW, "request_id": "r9"}).encode()]
    for raw in lines[1:4]:
        assert isinstance(decode_json_line(raw), InputFormatError)
    path = tmp_path / "calls.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    stats, rows = _import("table", path, tmp_path / "u.db")
    assert stats.accepted == 2 and [r.line for r in stats.rejections] == [2, 3, 4]
    assert [r[0] for r in rows] == ["table:r1", "table:r9"]
    # the same in a .json file (one document)
    doc = tmp_path / "doc.json"
    doc.write_bytes(b'{"a": ' + b"9" * 5000 + b"}")
    [rec] = list(json_records(doc))
    assert isinstance(rec.value, InputFormatError)


def test_csv_field_over_the_limit_and_non_utf8(tmp_path: Path) -> None:
    head = "ts,model,input_tokens,output_tokens,request_id\n"
    good = "2025-06-01T10:00:00Z,gpt-4o,10,2,r1\n"
    big = tmp_path / "big.csv"
    big.write_text(head + good + f'2025-06-01T10:00:00Z,"{"x" * 200_000}",1,1,r2\n')
    recs = list(csv_records(big))
    assert isinstance(recs[-1].value, InputFormatError) and recs[-1].line == 3
    stats, rows = _import("table", big, tmp_path / "u.db")
    assert stats.accepted == 1 and stats.rejected == 1 and rows[0][0] == "table:r1"
    assert stats.rejections[0].line == 3 and "CSV" in stats.rejections[0].reason
    latin = tmp_path / "latin.csv"
    latin.write_bytes((head + good).encode() + b"2025-06-01T10:00:00Z,gpt-\xe9,1,1,r2\n")
    r = runner.invoke(app, ["import", "table", str(latin), "--db", str(tmp_path / "l.db")])
    assert r.exit_code == 0, r.output
    assert "UTF-8" in r.stderr and "Traceback" not in r.output


def test_otel_resource_spans_not_a_list(tmp_path: Path) -> None:
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"resourceSpans": {"scopeSpans": []}}))
    stats, _ = _import("otel", p, tmp_path / "u.db")
    assert stats.rejected == 1 and "resourceSpans is not a list" in stats.rejections[0].reason
    p.write_text(json.dumps({"resourceSpans": [{"resource": 5}, {"resource": {
        "attributes": [{"key": "a", "value": {"intValue": "9" * 5000}}]}}, 7]}))
    stats, _ = _import("otel", p, tmp_path / "v.db")
    assert stats.rejected == 3


def test_claude_code_out_of_range_goes_to_the_python_path(data_dir: Path,
                                                          tmp_path: Path) -> None:
    """The fast path hands a file with a 1970 timestamp or a 10^13 count to the line-by-line
    path, which rejects that line as file:line and keeps every other one."""
    src = sorted((data_dir / "claude-code" / "projects" / "sample-project").glob("*.jsonl"))[0]
    lines = src.read_text().splitlines()
    at = [i for i, ln in enumerate(lines) if '"usage"' in ln]
    bad_ts, bad_n = json.loads(lines[at[0]]), json.loads(lines[at[-1]])
    bad_ts["timestamp"] = "1970-01-01T00:00:00.000Z"
    bad_n["message"]["usage"]["input_tokens"] = 10**13
    lines[at[0]], lines[at[-1]] = json.dumps(bad_ts), json.dumps(bad_n)
    p = tmp_path / "s.jsonl"
    p.write_text("\n".join(lines) + "\n")
    stats, rows = _import("claude-code", p, tmp_path / "u.db")
    assert {r.line for r in stats.rejections} == {at[0] + 1, at[-1] + 1}
    assert all(r[1].year >= 2020 and r[2] <= 10**12 for r in rows) and rows


def test_yaml_files_not_utf8_or_nan(tmp_path: Path) -> None:
    from ctxbudget.analyze.rules import load_rules
    from ctxbudget.plan import load_spec
    from ctxbudget.prices import PriceBook
    from ctxbudget.serve.gateway import load_config

    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    for load, err in ((load_spec, SpecError), (load_rules, SpecError),
                      (lambda p: PriceBook(overrides=[p]), PriceFileError),
                      (load_config, SpecError)):
        with pytest.raises(err, match=r"latin\.yaml:1: .*not UTF-8"):
            load(latin)
    rules = tmp_path / "rules.yaml"
    for value in (".nan", ".inf", "-.inf"):
        rules.write_text(f"rules:\n  - name: r\n    metric: mean_cost_per_task\n"
                         f"    threshold: {value}\n")
        with pytest.raises(SpecError, match=r"rules\.yaml: rules\.0\.threshold"):
            load_rules(rules)
    prices = tmp_path / "prices.yaml"
    for value in (".nan", "-1", ".inf", "1e999999999", "9" * 5000):
        prices.write_text(f"prices:\n  - model: m\n    input_mtok: {value}\n"
                          f"    output_mtok: 1\n")
        with pytest.raises(PriceFileError, match=r"prices\.yaml"):
            PriceBook(overrides=[prices])


def test_plan_spec_nan_and_inf(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    for field in ("tasks_per_day: .inf", "tasks_per_day: .nan", "days_per_month: .inf",
                  "seconds_between_calls: .nan"):
        spec.write_text(f"models: [gpt-4o]\nsession:\n  turns: 3\n  {field}\n")
        r = runner.invoke(app, ["plan", str(spec), "--json"])
        assert r.exit_code == 2, r.output
        assert "spec.yaml:" in r.stderr and field.split(":")[0] in r.stderr


def test_console_does_not_highlight() -> None:
    from ctxbudget.cli._common import console, err_console

    assert console()._highlight is False and err_console()._highlight is False
