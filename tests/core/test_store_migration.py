"""Schema migrations keep every stored row: 3 (calls without the PRIMARY KEY index) and
6 (usage detail columns, NULL for the rows stored before)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from ctxbudget.store import open_store
from ctxbudget.store.db import calls_to_arrow
from ctxbudget.store.schema import _V1_CALL_COLUMNS, DETAIL_COLUMNS, MIGRATIONS
from ctxbudget.usage import Call, Usage

V1 = ", ".join(n for n, _ in _V1_CALL_COLUMNS)


def test_v2_store_upgrades_with_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
                "applied_at TIMESTAMPTZ DEFAULT now())")
    for version, name, fn in MIGRATIONS[:2]:  # a store written by the previous release
        fn(con)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                    [version, name])
    calls = [Call(ts=datetime(2025, 1, d, tzinfo=UTC), provider="anthropic", model="m",
                  usage=Usage(input_tokens=d, output_tokens=2 * d), request_id=f"r{d}",
                  source="test") for d in range(1, 4)]
    con.register("t", calls_to_arrow(calls))
    con.execute(f"INSERT INTO calls SELECT {V1} FROM t")
    before = con.execute("SELECT * FROM calls ORDER BY call_key").fetchall()
    con.close()

    with open_store(db) as st:
        versions = [r[0] for r in st.con.execute(
            "SELECT version FROM schema_migrations ORDER BY 1").fetchall()]
        assert versions == sorted(m[0] for m in MIGRATIONS) and 3 in versions
        assert st.con.execute(f"SELECT {V1} FROM calls ORDER BY call_key").fetchall() == before
        detail = ", ".join(n for n, _ in DETAIL_COLUMNS)
        assert st.con.execute(f"SELECT DISTINCT {detail} FROM calls").fetchall() == [
            (None,) * len(DETAIL_COLUMNS)]
        # replacing a stored call still leaves one row per key
        st.insert_arrow(calls_to_arrow([calls[0]]))
        assert st.count_calls() == 3
        assert st.con.execute("SELECT count(DISTINCT call_key) FROM calls").fetchall() == [(3,)]
