"""Output for pipes, files, narrow terminals, CSV and Markdown (numbers never cut)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from ctxbudget.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: a figure as the tables print it: $1,234.5678, 12,345, 77.5%, 3,090.5k, 159.58M
_NUM = re.compile(r"\$?-?\d[\d,]*(?:\.\d+)?[%kM]?")


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ctxbudget.plan.simulate import iter_simulate, write_parquet

    out = tmp_path_factory.mktemp("fmt") / "calls.parquet"
    chunks, tasks_fn = iter_simulate(ROOT / "examples" / "support-agent.yaml", tasks=300,
                                     days=2, seed=4, failure_rate=0.1)
    write_parquet(chunks, tasks_fn, out)
    return out


def _cli(args: list[str], *, stdout: Any = subprocess.PIPE, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items()
         if k not in ("COLUMNS", "TTY_COMPATIBLE", "FORCE_COLOR", "GITHUB_STEP_SUMMARY")}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "ctxbudget.cli.main", *args], text=True,
                          stdout=stdout, stderr=subprocess.PIPE, env=e, check=False)


def _expected(row: dict[str, Any]) -> list[str]:
    """The figures of a JSON row as the table must show them (formatted here, not by
    the renderer): calls, tasks, cost to 4 places, cache hit rate to 0.1%."""
    out = [f"{row['calls']:,}", f"${Decimal(row['cost_usd']):,.4f}"]
    if row.get("cache_hit_rate") is not None:
        out.append(f"{row['cache_hit_rate']:.1%}")
    return out


def _numbers(text: str) -> set[str]:
    return set(_NUM.findall(_ANSI.sub("", text)))


@pytest.mark.parametrize("by", ["type", "task"])
def test_piped_file_and_narrow_terminal_keep_every_number(calls: Path, tmp_path: Path,
                                                          by: str) -> None:
    args = ["report", "--data", str(calls), "--by", by, "--limit", "0"]
    ref = json.loads(_cli([*args, "--json"]).stdout)
    rows = [*ref["rows"], ref["total"]]
    assert len(ref["rows"]) == (300 if by == "task" else 3)
    piped = _cli(args)  # | cat
    assert piped.returncode == 0, piped.stderr
    with (tmp_path / "out.txt").open("w") as fh:  # > file
        assert _cli(args, stdout=fh).returncode == 0
    narrow = _cli(args, env={"COLUMNS": "60", "TTY_COMPATIBLE": "1", "NO_COLOR": "1"})
    assert narrow.returncode == 0, narrow.stderr
    assert "\x1b[" in narrow.stdout  # it really rendered as a terminal
    assert max(len(_ANSI.sub("", ln)) for ln in narrow.stdout.splitlines()) <= 60
    for text in (piped.stdout, (tmp_path / "out.txt").read_text(), narrow.stdout):
        found = _numbers(text)
        for r in rows:
            missing = [x for x in _expected(r) if x not in found]
            assert not missing, (r["key"], missing)
        assert "…" not in text  # no cell cut with an ellipsis
    # a wide table when piped: one line per row, not folded at 80 columns
    first = ref["rows"][0]
    line = next(ln for ln in piped.stdout.splitlines() if f" {first['key']} " in ln)
    assert all(x in line for x in _expected(first))


def test_csv_is_raw_and_complete(calls: Path) -> None:
    ref = json.loads(_cli(["report", "--data", str(calls), "--by", "task", "--json"]).stdout)
    r = _cli(["report", "--data", str(calls), "--by", "task", "--format", "csv"])
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == len(ref["rows"]) == 300  # all rows, not the first --limit
    by_key = {x["key"]: x for x in ref["rows"]}
    for row in rows:
        j = by_key[row["key"]]
        assert Decimal(row["cost_usd"]) == Decimal(j["cost_usd"])  # exact money
        assert int(row["prompt_tokens"]) == j["prompt_tokens"]
        assert row["outcome"] == (j["outcome"] or "")


def test_json_values_are_typed(calls: Path) -> None:
    doc = json.loads(_cli(["report", "--data", str(calls), "--by", "type", "--json"]).stdout)
    for row in [*doc["rows"], doc["total"]]:
        assert isinstance(row["cost_usd"], str)  # money: decimal string
        Decimal(row["cost_usd"])
        assert isinstance(row["cache_hit_rate"], float)  # ratios: numbers
        assert isinstance(row["calls"], int)


def _tables(md: str) -> list[list[list[str]]]:
    """Every table of a Markdown document, as rows of cell texts (GFM tables)."""
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    tables: list[list[list[str]]] = []
    row: list[str] | None = None
    for i, t in enumerate(tokens):
        if t.type == "table_open":
            tables.append([])
        elif t.type == "tr_open":
            row = []
        elif t.type in ("th_open", "td_open"):
            assert row is not None
            row.append(tokens[i + 1].content)
        elif t.type == "tr_close":
            assert row is not None
            tables[-1].append(row)
    return tables


def test_check_markdown_is_a_github_table(calls: Path, tmp_path: Path) -> None:
    from ctxbudget.plan.simulate import iter_simulate, write_parquet

    worse = tmp_path / "worse.parquet"
    chunks, tasks_fn = iter_simulate(ROOT / "examples" / "support-agent.yaml", tasks=300,
                                     days=2, seed=5, inject=["retrieved+200%@day1"])
    write_parquet(chunks, tasks_fn, worse)
    base = tmp_path / "b.json"
    assert runner.invoke(app, ["baseline", "save", str(base), "--data", str(calls)]).exit_code == 0
    summary = tmp_path / "summary.md"
    r = _cli(["check", "--baseline", str(base), "--data", str(worse), "--format", "markdown"],
             env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert r.returncode == 1, r.stderr
    md = r.stdout
    assert md.startswith("## ctxbudget check: ❌ fail")
    assert summary.read_text().strip() == md.strip()  # the same summary for the PR page
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    heads = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert heads[:2] == ["ctxbudget check: ❌ fail", "Metrics that moved"]
    assert "Worst tasks" in heads and "All comparisons" in heads
    tables = _tables(md)
    moved, every = tables[0], tables[-1]
    header = ["check", "scope", "tasks (now / base)", "value", "reference", "change",
              "interval", "limit", "status"]
    assert moved[0] == header and every[0] == header
    assert all(len(r) == len(header) for t in (moved, every) for r in t)
    assert len(every) == 1 + 20  # 5 metrics x (all + 3 types)
    ref = json.loads(_cli(["check", "--baseline", str(base), "--data", str(worse),
                           "--json"]).stdout)
    assert len(moved) - 1 >= len(ref["breaches"]) > 0
    mean_all = next(r for r in every[1:] if r[:2] == ["mean_cost_per_task", "all"])
    e = next(x for x in ref["evaluated"]
             if x["metric"] == "mean_cost_per_task" and x["task_type"] is None)
    assert mean_all[5] == f"{e['ratio'] - 1:+.1%}"
    assert mean_all[6] == f"{e['interval'][0] - 1:+.1%} .. {e['interval'][1] - 1:+.1%}"
    assert mean_all[8] == e["status"] == "breach"
    worst = tables[1]
    assert worst[0] == ["task", "type", "cost", "calls", "outcome"] and len(worst) > 1


def test_signals_and_check_csv(calls: Path, tmp_path: Path) -> None:
    base = tmp_path / "b.json"
    assert runner.invoke(app, ["baseline", "save", str(base), "--data", str(calls)]).exit_code == 0
    r = runner.invoke(app, ["check", "--baseline", str(base), "--data", str(calls),
                            "--format", "csv"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 20 and {x["status"] for x in rows} == {"ok"}
    assert all(float(x["interval_low"]) <= 1 <= float(x["interval_high"]) for x in rows)
    s = runner.invoke(app, ["signals", "--data", str(calls), "--format", "csv"])
    assert s.exit_code == 0, s.output
    assert s.stdout.splitlines()[0] == "kind,task_type,started,title,fix,evidence,worst_tasks"
    m = runner.invoke(app, ["signals", "--data", str(calls), "--format", "markdown"])
    assert m.exit_code == 0 and m.stdout.startswith("## ctxbudget signals")


def test_report_says_what_it_cannot_know(tmp_path: Path) -> None:
    """Calls without usage are counted and warned about; no outcome recorded is said."""
    from datetime import UTC, datetime, timedelta

    from ctxbudget.store import open_store
    from ctxbudget.usage import Call, Usage

    t0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
    calls = [Call(ts=t0 + timedelta(minutes=i), provider="anthropic",
                  model="claude-sonnet-4-5", task_id=f"t{i % 2}", task_type="support",
                  request_id=f"r{i}", usage=Usage(input_tokens=1000, output_tokens=100),
                  meta={"usage_missing": True, "usage_estimated": "reservation"} if i < 2
                  else None)
             for i in range(5)]
    db = tmp_path / "usage.duckdb"
    with open_store(db) as s:
        s.insert_calls(calls)
    doc = json.loads(_cli(["report", "--db", str(db), "--by", "type", "--json"]).stdout)
    assert doc["usage_missing_calls"] == 2
    text = _cli(["report", "--db", str(db), "--by", "type"]).stdout
    assert "usage missing: 2 calls were recorded without usage" in text
    assert "no outcomes recorded" in text  # tasks tracked, no outcome: not "no successes"
    md = _cli(["report", "--db", str(db), "--by", "type", "--format", "markdown"]).stdout
    assert "usage missing: 2 calls" in md
