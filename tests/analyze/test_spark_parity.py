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


def test_duckdb_and_spark_price_usage_detail_alike(tmp_path: Path, spark: Any) -> None:
    """Tool fees (priced and unpriced), modality rates and other counters: the transpiled
    SQL gives Spark the same rows, totals and unpriced fees as DuckDB."""
    from datetime import UTC, datetime, timedelta

    from ctxbudget.analyze.engine import DuckDBEngine, SparkEngine
    from ctxbudget.analyze.metrics import compute_report
    from ctxbudget.analyze.source import open_source
    from ctxbudget.prices import PriceBook
    from ctxbudget.store import open_store
    from ctxbudget.usage import Call, Usage

    t0 = datetime(2026, 6, 1, 12, tzinfo=UTC)
    calls = [Call(ts=t0 + timedelta(minutes=i), provider=p, model=m, task_id=f"t{i % 3}",
                  request_id=f"r{i}", usage=u, other_tool_requests=o)
             for i, (p, m, u, o) in enumerate([
                 ("anthropic", "claude-sonnet-4-20250514",
                  Usage(input_tokens=8984, output_tokens=520, web_search_requests=1), None),
                 ("anthropic", "claude-sonnet-4-20250514",
                  Usage(input_tokens=99, output_tokens=9, code_execution_requests=2), None),
                 ("google", "gemini-2.5-flash-image",
                  Usage(input_tokens=10, output_tokens=1300, output_image_tokens=1290), None),
                 ("google", "gemini-2.0-flash",
                  Usage(input_tokens=300, output_tokens=5, input_audio_tokens=150), None),
                 ("openai", "gpt-4o", Usage(input_tokens=5, output_tokens=5),
                  {"image_generation_call": 1}),
             ])]
    db = tmp_path / "u.duckdb"
    with open_store(db) as s:
        s.insert_calls(calls)
    book = PriceBook()
    with open_source(db=db) as src:
        duck = [compute_report(DuckDBEngine(src), by, book=book, source="x")
                for by in ("task", "day")]
        se = SparkEngine(src, spark=spark)
        try:
            sp = [compute_report(se, by, book=book, source="x") for by in ("task", "day")]
        finally:
            se.close()
    for a, b in zip(duck, sp, strict=True):
        assert _comparable(a) == _comparable(b)
    total = duck[1].total
    assert total is not None and total.tool_fees_usd > 0 and total.unpriced_fee_calls == 2
