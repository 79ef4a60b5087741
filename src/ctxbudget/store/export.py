"""``ctxbudget export --out DIR``: the store as Parquet a data lake or a cluster reads.

Layout::

    DIR/calls/day=YYYY-MM-DD/data_0.parquet   one folder per UTC day of ``ts``
    DIR/tasks.parquet

The call files have the store's columns (:data:`~ctxbudget.store.schema.CALL_COLUMNS`,
``ts`` as a UTC timestamp); ``day`` is only in the folder names (Hive partitioning:
Spark, DuckDB, Trino, Athena and BigQuery external tables read it as a column). A
new export replaces the previous one: it is written beside it and swapped in.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

__all__ = ["CALLS_DIR", "TASKS_FILE", "export_parquet"]

CALLS_DIR = "calls"
TASKS_FILE = "tasks.parquet"


def export_parquet(con: Any, out: Path) -> dict[str, Any]:
    """Write the ``calls`` and ``tasks`` tables of the DuckDB connection ``con`` under
    ``out``; return what was written (calls, tasks, days, bytes)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".calls.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    con.execute("SET TimeZone = 'UTC'")
    q = str(tmp).replace("'", "''")
    con.execute(
        "COPY (SELECT *, strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d') AS day FROM calls "
        f"ORDER BY ts) TO '{q}' (FORMAT parquet, PARTITION_BY (day), COMPRESSION zstd)")
    if not tmp.exists():  # no calls: an empty folder, still readable as "no days"
        tmp.mkdir()
    tasks_tmp = out / ".tasks.parquet.tmp"
    tq = str(tasks_tmp).replace("'", "''")
    con.execute(f"COPY (SELECT * FROM tasks) TO '{tq}' (FORMAT parquet)")
    calls_dir = out / CALLS_DIR
    old = out / ".calls.old"
    shutil.rmtree(old, ignore_errors=True)
    if calls_dir.exists():
        calls_dir.rename(old)
    tmp.rename(calls_dir)
    tasks_tmp.replace(out / TASKS_FILE)
    shutil.rmtree(old, ignore_errors=True)
    n_calls = int(con.execute("SELECT count(*) FROM calls").fetchall()[0][0])
    n_tasks = int(con.execute("SELECT count(*) FROM tasks").fetchall()[0][0])
    days = sorted(p.name.removeprefix("day=") for p in calls_dir.iterdir() if p.is_dir())
    size = sum(f.stat().st_size for f in out.rglob("*.parquet"))
    return {"dir": str(out), "calls": n_calls, "tasks": n_tasks, "days": len(days),
            "first_day": days[0] if days else None, "last_day": days[-1] if days else None,
            "bytes": size}
