"""The four warning signals on `ctxbudget simulate` data with known injections (fixed seeds)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctxbudget.analyze.signals import SignalConfig, compute_signals
from ctxbudget.analyze.stats import mann_whitney_greater
from ctxbudget.store import open_store
from ctxbudget.usage import Call, Task, Usage

DAY1 = date(2026, 1, 1)  # simulate's day 1


def _kinds(signals: list[Any]) -> list[tuple[str, str, date | None]]:
    return [(s.kind, s.task_type, s.started) for s in signals]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_injection_reports_nothing(seed: int, simulate_parquet: Any, duck: Any,
                                      seed_book: Any) -> None:
    e = duck(data=simulate_parquet(seed=seed))
    assert compute_signals(e, book=seed_book) == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_system_prompt_growth_from_day5(seed: int, simulate_parquet: Any, duck: Any,
                                        seed_book: Any) -> None:
    e = duck(data=simulate_parquet(inject=("system_prompt+30%@day5:support",), seed=seed))
    found = compute_signals(e, book=seed_book)
    assert _kinds(found) == [("rising_cost", "support", DAY1 + timedelta(days=4))]
    ev = found[0].evidence
    assert ev["recent_median_cost_per_call_usd"] > ev["baseline_median_cost_per_call_usd"]
    grown = ev["grown_components"]
    assert list(grown) == ["system_prompt"]
    assert grown["system_prompt"]["change"] == pytest.approx(0.30)
    assert found[0].fix and found[0].worst_tasks
    assert found[0].fix.startswith("system_prompt: the fixed prompt grew")


def test_fix_names_the_component_that_grew(simulate_parquet: Any, duck: Any,
                                           seed_book: Any) -> None:
    """Retrieval growth gets the retrieval fix (k, chunk size), not the system prompt's."""
    e = duck(data=simulate_parquet(inject=("retrieved+60%@day5:support",), seed=1))
    found = [s for s in compute_signals(e, book=seed_book) if s.kind == "rising_cost"]
    assert [(s.task_type, s.started) for s in found] == [("support", DAY1 + timedelta(days=4))]
    assert list(found[0].evidence["grown_components"]) == ["retrieved"]
    fix = found[0].fix
    assert fix.startswith("retrieved: retrieval grew") and "lower k or the chunk size" in fix
    assert "system prompt" not in fix


@pytest.mark.parametrize("seed", [1, 2])
def test_cache_break_reports_low_hit_rate(seed: int, simulate_parquet: Any, duck: Any,
                                          seed_book: Any) -> None:
    e = duck(data=simulate_parquet(inject=("cache-break@day3:research",), seed=seed))
    found = {(s.kind, s.task_type): s for s in compute_signals(e, book=seed_book)}
    low = found[("low_cache_hit", "research")]
    assert low.started == DAY1 + timedelta(days=2)
    assert low.evidence["hit_ratio"] < 0.05 and low.evidence["hit_ratio_before"] > 0.95
    assert not any(t == "support" for _, t in found)


def test_synthetic_growth_with_noise(make_store: Any, duck: Any) -> None:
    none = duck(db=make_store(seed=5))
    assert compute_signals(none) == []
    grown = duck(db=make_store(seed=5, prompt_growth=("support", 4, 1.3)))
    assert _kinds(compute_signals(grown)) == [
        ("rising_cost", "support", date(2026, 3, 6))]


def _store(tmp: Path, rows: list[tuple[str, str, int, int, int]]) -> Path:
    """rows: (task, outcome, calls, input tokens per call, output tokens per call)."""
    t0 = datetime(2026, 4, 1, tzinfo=UTC)
    calls, tasks = [], []
    for i, (tid, outcome, n, inp, out) in enumerate(rows):
        for k in range(n):
            calls.append(Call(ts=t0 + timedelta(minutes=10 * i, seconds=k), provider="anthropic",
                              model="claude-sonnet-4-5", task_id=tid, task_type="agent",
                              request_id=f"{tid}-{k}",
                              usage=Usage(input_tokens=inp, output_tokens=out)))
        tasks.append(Task(task_id=tid, task_type="agent", outcome=outcome))  # type: ignore[arg-type]
    p = tmp / "s.duckdb"
    with open_store(p) as s:
        s.insert_calls(calls)
        s.upsert_tasks(tasks)
    return p


def test_failed_task_cost(tmp_path: Path, duck: Any) -> None:
    rows = [(f"ok{i}", "success", 3, 1000, 200) for i in range(20)]
    rows += [(f"bad{i}", "failure", 12, 1000, 200) for i in range(6)]
    found = compute_signals(duck(db=_store(tmp_path, rows)))
    fc = [s for s in found if s.kind == "failed_task_cost"]
    assert len(fc) == 1
    assert fc[0].evidence["failure_to_success_cost_ratio"] == pytest.approx(4.0)
    assert fc[0].evidence["failed_spend_share"] == pytest.approx(72 / 132)
    assert {w["task"] for w in fc[0].worst_tasks} <= {f"bad{i}" for i in range(6)}


def test_failed_task_cost_needs_min_failures(tmp_path: Path, duck: Any) -> None:
    rows = [(f"ok{i}", "success", 3, 1000, 200) for i in range(20)]
    rows += [(f"bad{i}", "failure", 12, 1000, 200) for i in range(4)]
    assert compute_signals(duck(db=_store(tmp_path, rows))) == []


def test_output_heavy(tmp_path: Path, duck: Any) -> None:
    rows = [(f"t{i}", "success", 4, 300, 1200) for i in range(10)]
    e = duck(db=_store(tmp_path, rows))
    found = compute_signals(e)
    assert [s.kind for s in found] == ["output_heavy"]
    assert found[0].evidence["output_input_ratio"] == pytest.approx(4.0)
    assert compute_signals(e, cfg=SignalConfig(max_output_ratio=5)) == []


@settings(max_examples=40, deadline=None)
@given(a=st.lists(st.integers(0, 30), min_size=20, max_size=60),
       b=st.lists(st.integers(0, 30), min_size=20, max_size=60))
def test_mann_whitney_matches_scipy(a: list[int], b: list[int]) -> None:
    stats = pytest.importorskip("scipy.stats")
    u, p = mann_whitney_greater(a, b)
    ref = stats.mannwhitneyu(a, b, alternative="greater", method="asymptotic")
    assert u == pytest.approx(ref.statistic)
    if len(set(a + b)) > 1:
        assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(a=st.lists(st.integers(0, 10), min_size=1, max_size=40),
       b=st.lists(st.integers(0, 10), min_size=1, max_size=40))
def test_mann_whitney_u_counts_pairs(a: list[int], b: list[int]) -> None:
    u, p = mann_whitney_greater(a, b)
    assert u == sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    assert 0.0 <= p <= 1.0
    if min(a) > max(b) and len(a) >= 20 and len(b) >= 20:
        assert p < 1e-6
