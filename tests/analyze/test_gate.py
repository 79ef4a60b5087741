"""The CI gate's statistics: false-alarm and detection rates, baselines, inconclusive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from ctxbudget.analyze.gate import BASELINE_METRICS, ESTIMATORS, task_columns
from ctxbudget.analyze.rules import check_baseline, parse_tolerance, percentile, save_baseline
from ctxbudget.analyze.stats import mann_whitney_greater, ratio_interval
from ctxbudget.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples" / "support-agent.yaml"
#: +20% mean cost per task on support-agent.yaml (bench/bench_gate.py prints the rise)
REGRESSION = "retrieved+90%@day1"
runner = CliRunner()


def _tasks(out: Path, seed: int, inject: tuple[str, ...] = (), tasks: int = 1500
           ) -> list[dict[str, Any]]:
    from ctxbudget.analyze.engine import DuckDBEngine
    from ctxbudget.analyze.rules import task_metrics
    from ctxbudget.analyze.source import open_source
    from ctxbudget.analyze.sql import Filters
    from ctxbudget.plan.simulate import iter_simulate, write_parquet

    chunks, tasks_fn = iter_simulate(SPEC, tasks=tasks, days=4, seed=seed, inject=list(inject))
    write_parquet(chunks, tasks_fn, out)
    with open_source(data=out) as src:
        return task_metrics(DuckDBEngine(src), Filters())


@pytest.mark.slow
def test_false_alarms_and_detections_at_1500_tasks(tmp_path: Path) -> None:
    """Acceptance: baseline from one run; 40 reruns with other seeds fail <= 2 times,
    40 reruns with +20% cost per task fail >= 38 times, with the default options."""
    base = _tasks(tmp_path / "base.parquet", 1)
    bfile = tmp_path / "baseline.json"
    save_baseline(bfile, base)
    tol = parse_tolerance("10%")  # the CLI default; confidence 0.95, min_samples 30
    false_alarms = detections = 0
    plain_cost, regressed_cost = [], []
    for i in range(40):
        same = _tasks(tmp_path / "cur.parquet", 2 + i)
        false_alarms += not check_baseline(bfile, same, tol).ok
        plain_cost.append(np.mean([float(t["cost_usd"]) for t in same]))
        worse = _tasks(tmp_path / "cur.parquet", 2 + i, (REGRESSION,))
        detections += not check_baseline(bfile, worse, tol).ok
        regressed_cost.append(np.mean([float(t["cost_usd"]) for t in worse]))
    rise = np.mean(regressed_cost) / np.mean(plain_cost) - 1
    assert 0.18 <= rise <= 0.22, rise  # the regression is the +20% the issue asks for
    assert false_alarms <= 2, false_alarms
    assert detections >= 38, detections


def test_baseline_keeps_samples_and_provenance(tmp_path: Path) -> None:
    data = tmp_path / "calls.parquet"
    tasks = _tasks(data, 1, tasks=300)
    bfile = tmp_path / "b.json"
    r = runner.invoke(app, ["baseline", "save", str(bfile), "--data", str(data), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(bfile.read_text())
    assert doc["version"] == 2 and doc["created_from_tasks"] == 300
    assert doc["source"] == str(data)
    assert doc["git_commit"]  # the tests run in a git checkout
    assert doc["all"]["tasks"] == 300 == doc["all"]["samples"]["count"]
    assert sum(t["tasks"] for t in doc["types"].values()) == 300
    # exact money in the samples, and the reference values are the samples' statistics
    costs = sorted(t["cost_usd"] for t in tasks)
    assert sorted(doc["all"]["samples"]["cost_usd"], key=float) == [str(c) for c in costs]
    assert doc["all"]["p95_cost_per_task"] == str(percentile(costs, 0.95))
    assert set(BASELINE_METRICS) <= set(doc["types"]["billing"])


def test_estimators_match_the_exact_metrics(tmp_path: Path) -> None:
    """The vectorized estimators (bootstrap) agree with the exact METRICS on the data."""
    from ctxbudget.analyze.rules import METRICS

    tasks = _tasks(tmp_path / "c.parquet", 3, tasks=200)
    cols = task_columns(tasks)
    for m, (which, needs, est) in ESTIMATORS.items():
        keep = ~np.isnan(cols["cost"]) if which == "priced" else slice(None)
        got = float(est({k: cols[k][keep] for k in needs}))
        assert got == pytest.approx(float(METRICS[m][1](tasks)), rel=1e-9), m


def test_ratio_interval_covers_and_separates() -> None:
    rng = np.random.default_rng(0)
    a = {"x": rng.lognormal(0, 0.5, 800)}
    b = {"x": rng.lognormal(0, 0.5, 800)}
    est = ESTIMATORS["mean_cost_per_task"][2]
    same = ratio_interval({"cost": a["x"]}, {"cost": b["x"]}, est)
    assert same.low < 1 < same.high and same.level == pytest.approx(0.9)
    up = ratio_interval({"cost": a["x"] * 1.3}, {"cost": b["x"]}, est)
    assert up.low > 1.1 and up.estimate == pytest.approx(same.estimate * 1.3)
    again = ratio_interval({"cost": a["x"] * 1.3}, {"cost": b["x"]}, est)
    assert (again.low, again.high) == (up.low, up.high)  # same data, same verdict


def test_mann_whitney_is_scipy() -> None:
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(1)
    x, y = rng.normal(1.2, 1, 40), rng.normal(1, 1, 50)
    u, p = mann_whitney_greater(list(x), list(y))
    ref = mannwhitneyu(x, y, alternative="greater", method="asymptotic")
    assert (u, p) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue))
    assert mann_whitney_greater([1.0, 1.0], [1.0, 1.0])[1] == 1.0


def test_inconclusive_is_neither_pass_nor_breach(tmp_path: Path) -> None:
    big, small = tmp_path / "big.parquet", tmp_path / "small.parquet"
    _tasks(big, 1, tasks=300)
    _tasks(small, 2, (REGRESSION,), tasks=40)  # ~13 tasks per type, 40 in all
    bfile = tmp_path / "b.json"
    assert runner.invoke(app, ["baseline", "save", str(bfile), "--data", str(big)]).exit_code == 0
    r = runner.invoke(app, ["check", "--baseline", str(bfile), "--data", str(small), "--json",
                            "--min-samples", "30"])
    doc = json.loads(r.stdout)
    by_scope = {(e["task_type"], e["status"]) for e in doc["evaluated"]}
    assert ("billing", "inconclusive") in by_scope
    assert all(e["status"] == "inconclusive" for e in doc["evaluated"]
               if e["task_type"] is not None)
    assert doc["inconclusive"] == 15  # 3 types x 5 metrics; "all" (40 tasks) was decided
    assert r.exit_code == (1 if doc["breaches"] else 0)
    if not doc["breaches"]:
        assert doc["verdict"] == "inconclusive"
        strict = runner.invoke(app, ["check", "--baseline", str(bfile), "--data", str(small),
                                     "--fail-inconclusive"])
        assert strict.exit_code == 1
        assert "inconclusive" in strict.stdout


def test_old_or_broken_baseline_is_a_user_error(tmp_path: Path) -> None:
    data = tmp_path / "c.parquet"
    _tasks(data, 1, tasks=50)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"version": 1, "created_from_tasks": 3, "types": {
        "billing": {"tasks": 3, "p50_cost_per_task": "0.1"}}}))
    r = runner.invoke(app, ["check", "--baseline", str(old), "--data", str(data)])
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and "format 1" in r.stderr and "baseline save" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = runner.invoke(app, ["check", "--baseline", str(bad), "--data", str(data)])
    assert r.exit_code == 2 and "not a ctxbudget baseline" in r.stderr
    for opt, val in (("--confidence", "1.5"), ("--min-samples", "0"), ("--tolerance", "-5%")):
        r = runner.invoke(app, ["check", "--baseline", str(old), "--data", str(data), opt, val])
        assert r.exit_code == 2, (opt, r.output)
        assert r.stderr.count("\n") == 1 and opt in r.stderr
