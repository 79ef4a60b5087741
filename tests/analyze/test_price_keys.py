"""Price keys from Parquet row-group statistics equal the ones a scan finds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from ctxbudget.analyze.engine import parquet_price_keys
from ctxbudget.analyze.source import open_source
from ctxbudget.analyze.sql import Filters, price_keys_sql


def _scan(src: Any, f: Filters) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in src.con.execute(price_keys_sql(f)).fetchall()]


def _write(path: Path, models: list[str | None], tiers: list[str | None]) -> Path:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE c (call_key VARCHAR, ts TIMESTAMPTZ, provider VARCHAR, "
                "model VARCHAR, service_tier VARCHAR, input_tokens BIGINT, "
                "output_tokens BIGINT)")
    t0 = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    for i, (m, tier) in enumerate(zip(models, tiers, strict=True)):
        con.execute("INSERT INTO c VALUES (?, ? + INTERVAL (? * 20) MINUTE, 'openai', ?, ?, 5, 1)",
                    [f"k{i}", t0, i, m, tier])
    con.execute(f"COPY c TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 2)")
    con.close()
    return path


def test_statistics_equal_the_scan_for_one_model(simulate_parquet: Any) -> None:
    with open_source(data=simulate_parquet()) as src:
        keys = parquet_price_keys(src, Filters())
        assert keys is not None and keys == _scan(src, Filters())


def test_single_model_no_tier_several_row_groups(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.parquet", ["gpt-4o"] * 7, [None] * 7)
    with open_source(data=p) as src:
        keys = parquet_price_keys(src, Filters())
        assert keys == _scan(src, Filters())
        assert keys is not None and keys[0][3] != keys[0][4]  # spans midnight UTC


def test_falls_back_when_statistics_cannot_tell(tmp_path: Path) -> None:
    two = _write(tmp_path / "two.parquet", ["gpt-4o", "gpt-4o", "gpt-4o-mini", "gpt-4o"],
                 [None] * 4)
    some_null = _write(tmp_path / "n.parquet", ["gpt-4o"] * 4, [None, "flex", None, None])
    for p in (two, some_null):
        with open_source(data=p) as src:
            assert parquet_price_keys(src, Filters()) is None
            assert len(_scan(src, Filters())) == 2
    with open_source(data=_write(tmp_path / "f.parquet", ["gpt-4o"] * 3, [None] * 3)) as src:
        f = Filters(since=datetime(2026, 3, 2, tzinfo=UTC))
        assert parquet_price_keys(src, f) is None  # a time filter: the scan decides
