"""One analytics layer, two engines: DuckDB and Spark (local[2]) agree exactly on 1M calls."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.spark,
              # pyspark 4 warns that it does not fully support pandas >= 3 (not used here)
              pytest.mark.filterwarnings("ignore::FutureWarning")]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    pytest.importorskip("pyspark", reason="pip install 'ctxbudget[spark]'")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from ctxbudget.analyze.engine import spark_session

    s = spark_session("local[2]")
    s.sparkContext.setLogLevel("ERROR")
    yield s


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ctxbudget.plan.simulate import iter_simulate, write_parquet

    out = tmp_path_factory.mktemp("spark") / "calls.parquet"
    chunks, tasks_fn = iter_simulate(
        ROOT / "examples" / "seed-example.yaml", tasks=66_667, days=14, seed=42,
        failure_rate=0.1, inject=["system_prompt+30%@day8:support", "cache-break@day10-11"],
        task_types="support:2,research:1,coding:1")
    _, _, rows = write_parquet(chunks, tasks_fn, out)
    assert rows >= 1_000_000
    return out


def _comparable(rep: Any) -> dict[str, Any]:
    d = rep.as_dict()
    d.pop("engine")
    return d


def test_duckdb_and_spark_identical_per_task(million: Path, spark: Any, seed_book: Any) -> None:
    from ctxbudget.analyze.engine import DuckDBEngine, SparkEngine
    from ctxbudget.analyze.metrics import compute_report
    from ctxbudget.analyze.source import open_source

    with open_source(data=million) as src:
        duck = compute_report(DuckDBEngine(src), "task", book=seed_book, source="x")
        se = SparkEngine(src, spark=spark)
        try:
            sp = compute_report(se, "task", book=seed_book, source="x")
            sp_day = compute_report(se, "day", book=seed_book, source="x", with_types=False)
        finally:
            se.close()
        duck_day = compute_report(DuckDBEngine(src), "day", book=seed_book, source="x",
                                  with_types=False)
    assert len(duck.rows) == 66_667
    assert sum(r.calls for r in duck.rows) >= 1_000_000
    a, b = _comparable(duck), _comparable(sp)
    assert a["rows"] == b["rows"]  # every task: buckets, exact DECIMAL cost, outcome, waste
    assert a["total"] == b["total"]
    assert a["types"] == b["types"]  # p50 / p95 / max per type (nearest rank)
    assert _comparable(duck_day) == _comparable(sp_day)
