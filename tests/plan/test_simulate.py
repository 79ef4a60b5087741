"""Synthetic logs: totals match the projection, schema matches the store, injections land."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctxbudget.cli.main import app
from ctxbudget.errors import SpecError
from ctxbudget.plan import project, simulate
from ctxbudget.plan.simulate import parse_injection
from ctxbudget.prices import PriceBook, cost_of
from ctxbudget.store.schema import CALL_COLUMNS
from ctxbudget.usage import Usage

BUCKETS = ("input_tokens", "cache_read_tokens", "cache_write_5m_tokens",
           "cache_write_1h_tokens", "output_tokens")


def _mean_cost(calls: object, price: object, tasks: int) -> Decimal:
    cols = {b: calls.column(b).to_pylist() for b in BUCKETS}  # type: ignore[attr-defined]
    total = Decimal(0)
    for row in zip(*cols.values(), strict=True):
        total += cost_of(Usage(**dict(zip(BUCKETS, row, strict=True))), price).total_usd
    return total / tasks


def test_seed_mean_cost_matches_projection(root_dir: Path) -> None:
    spec = root_dir / "examples" / "seed-example.yaml"
    plan = project(spec)
    calls, tasks = simulate(spec, tasks=1000, days=7, seed=42)
    assert tasks.num_rows == 1000 and calls.num_rows == 15000
    price = PriceBook(overrides=[root_dir / "examples" / "prices-2026.yaml"]).resolve(
        "claude-sonnet-4-6", "anthropic")
    mean = _mean_cost(calls, price, 1000)
    assert abs(mean - plan.task.expected_usd) / plan.task.expected_usd < Decimal("0.02")
    # 15 fixed turns: every session is the projected one, so it is exact
    assert mean == plan.task.expected_usd


VARYING = """\
prices: prices.yaml
models: [{model: test-sonnet, provider: anthropic}]
fixed: {system_prompt: {tokens: 1500}, tools: {tokens: 200, count: 5}}
variable:
  history: {accumulate: [user_message, output]}
  retrieved: {chunks: 3, chunk_tokens: 400}
  user_message: {tokens: 150}
  output: {tokens: 300}
session:
  turns: {distribution: normal, mean: 12, sd: 5}
  seconds_between_calls: 45
  seconds_between_turns: 200
caching: {history: true}
task_types: {support: 3, research: 1}
"""


def test_varying_turns_mean_within_2pct(write_spec: Callable[[str], Path],
                                        tmp_path: Path) -> None:
    spec = write_spec(VARYING)
    plan = project(spec)
    calls, tasks = simulate(spec, tasks=1000, days=3, seed=7)
    price = PriceBook(overrides=[tmp_path / "prices.yaml"]).resolve("test-sonnet", "anthropic")
    mean = _mean_cost(calls, price, 1000)
    assert abs(mean - plan.task.expected_usd) / plan.task.expected_usd < Decimal("0.02")
    assert mean != plan.task.expected_usd  # turns really vary
    types = tasks.column("task_type").to_pylist()
    assert 0.65 < types.count("support") / 1000 < 0.85


def test_schema_is_the_store_schema(write_spec: Callable[[str], Path]) -> None:
    calls, tasks = simulate(write_spec(VARYING), tasks=20, days=1, seed=1)
    assert [(f.name, str(f.type)) for f in calls.schema] == [
        (n, {"VARCHAR": "string", "BIGINT": "int64", "INTEGER": "int32", "DOUBLE": "double",
             "BOOLEAN": "bool", "TIMESTAMPTZ": "timestamp[us, tz=UTC]"}[t])
        for n, t in CALL_COLUMNS]
    assert tasks.column_names[:5] == ["task_id", "task_type", "outcome", "started_at",
                                      "ended_at"]
    rows = calls.to_pylist()
    assert len({r["call_key"] for r in rows}) == len(rows)
    first = rows[0]
    assert first["call_key"] == "simulate:" + first["request_id"]
    assert first["session_id"] == "sess-" + first["task_id"]
    comps = json.loads(first["components"])
    assert comps["system_prompt"] == 1500 and comps["retrieved"] == 1200
    # prompt buckets add up to the components in the prompt
    prompt = sum(first[b] for b in BUCKETS[:4])
    assert prompt == sum(v for k, v in comps.items() if k != "output")


def test_deterministic_and_timestamps(write_spec: Callable[[str], Path]) -> None:
    spec = write_spec(VARYING)
    a, ta = simulate(spec, tasks=50, days=2, seed=3)
    b, tb = simulate(spec, tasks=50, days=2, seed=3)
    c, _ = simulate(spec, tasks=50, days=2, seed=4)
    assert a.equals(b) and ta.equals(tb) and not a.equals(c)
    rows = a.to_pylist()
    t0 = rows[0]
    same = [r for r in rows if r["task_id"] == t0["task_id"]]
    gaps = {(y["ts"] - x["ts"]).total_seconds() for x, y in itertools.pairwise(same)}
    assert gaps <= {200.0}  # one call per turn, 200 s between turns
    starts = ta.column("started_at").to_pylist()
    assert starts == sorted(starts)
    assert (starts[-1] - starts[0]).total_seconds() < 2 * 86400


def test_injections(root_dir: Path, write_spec: Callable[[str], Path]) -> None:
    spec = write_spec(VARYING)
    calls, tasks = simulate(spec, tasks=600, days=6, seed=5,
                            inject=["system_prompt+30%@day5:support", "cache-break@day3-3"])
    starts = {r["task_id"]: r["started_at"] for r in tasks.to_pylist()}
    day0 = min(starts.values()).replace(hour=0, minute=0, second=0, microsecond=0)

    def day(tid: str) -> int:
        return (starts[tid] - day0).days + 1

    seen = {"grown": 0, "broken": 0}
    for r in calls.to_pylist():
        sp = json.loads(r["components"])["system_prompt"]
        d = day(r["task_id"])
        if d >= 5 and r["task_type"] == "support":
            assert sp == 1950  # 1500 x 1.3
            seen["grown"] += 1
        else:
            assert sp == 1500
        if d == 3:
            assert r["cache_read_tokens"] == 0 and r["cache_write_5m_tokens"] > 0
            seen["broken"] += 1
        elif r["turn"] > 1:
            assert r["cache_read_tokens"] > 0
    assert seen["grown"] > 0 and seen["broken"] > 0


def test_injection_grammar() -> None:
    i = parse_injection("system_prompt+30%@day5:support", ["system_prompt"])
    assert (i.component, i.factor, i.first_day, i.last_day, i.task_type) == (
        "system_prompt", 1.3, 5, None, "support")
    j = parse_injection("cache-break@day3-4")
    assert (j.kind, j.first_day, j.last_day) == ("cache-break", 3, 4)
    assert parse_injection("output-50%@day2").factor == 0.5
    with pytest.raises(SpecError):
        parse_injection("sytem+30%@day5", ["system_prompt"])
    with pytest.raises(SpecError):
        parse_injection("cache-break@3")


def test_failure_rate(write_spec: Callable[[str], Path]) -> None:
    _, tasks = simulate(write_spec(VARYING), tasks=1000, days=1, seed=9, failure_rate=0.2)
    share = tasks.column("outcome").to_pylist().count("failure") / 1000
    assert 0.15 < share < 0.25


def test_cli_parquet_and_db(write_spec: Callable[[str], Path], tmp_path: Path) -> None:
    import duckdb
    import pyarrow.parquet as pq

    spec = write_spec(VARYING)
    out = tmp_path / "calls.parquet"
    r = CliRunner().invoke(app, ["simulate", str(spec), "--tasks", "200", "--days", "2",
                                 "--seed", "1", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    t = pq.read_table(out)
    assert t.num_rows == summary["calls"] and str(t.schema.field("components").type) == "string"
    assert pq.read_table(tmp_path / "calls.tasks.parquet").num_rows == 200
    direct, _ = simulate(spec, tasks=200, days=2, seed=1)
    assert t.drop_columns(["latency_ms"]).equals(direct.drop_columns(["latency_ms"]))
    db = tmp_path / "u.duckdb"
    for _ in range(2):  # idempotent: the same keys are replaced
        r = CliRunner().invoke(app, ["simulate", str(spec), "--tasks", "200", "--days", "2",
                                     "--seed", "1", "--db", str(db)])
        assert r.exit_code == 0, r.output
    con = duckdb.connect(str(db))
    assert con.execute("select count(*) from calls").fetchall()[0][0] == t.num_rows
    assert con.execute("select count(*) from tasks").fetchall()[0][0] == 200
    con.close()
    r = CliRunner().invoke(app, ["simulate", str(spec), "--tasks", "5", "--out", str(out),
                                 "--inject", "nope+1%@day1"])
    assert r.exit_code == 2 and "unknown component" in r.output
