"""DuckDB draws its progress bar on stdout for queries over ~2 s: on a big store it was
printed into ``report --json`` and piped tables. Every analytics connection turns it off."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from ctxbudget.analyze.source import open_source
from ctxbudget.store import open_store
from ctxbudget.store.db import calls_to_arrow


def _setting(con: object) -> object:
    return con.execute(  # type: ignore[attr-defined]
        "SELECT current_setting('enable_progress_bar')").fetchall()[0][0]


def test_store_and_parquet_connections_draw_no_progress_bar(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    with open_store(db):
        pass
    with open_source(db=db) as src:
        assert _setting(src.con) is False
    pf = tmp_path / "c.parquet"
    pq.write_table(calls_to_arrow([]), pf)
    with open_source(data=pf) as src:
        assert _setting(src.con) is False
