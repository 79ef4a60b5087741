"""Where analytics read calls from: the DuckDB store or a Parquet file.

Either way the engine sees two relations with the store's names and columns:
``calls`` (:data:`ctxbudget.store.schema.CALL_COLUMNS`) and ``tasks``
(task_id, task_type, outcome, started_at, ended_at, session_id, parent_id, source,
blocked_by).
A Parquet input ``calls.parquet`` may have a sibling ``calls.tasks.parquet``; without
it the task outcomes are unknown (``NULL``), never invented.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..store.schema import CALL_COLUMNS

__all__ = ["TASK_COLUMNS", "DataSource", "open_source", "restrict", "tasks_sibling"]

log = logging.getLogger(__name__)

#: (name, DuckDB type) of the tasks relation.
TASK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("task_id", "VARCHAR"),
    ("task_type", "VARCHAR"),
    ("outcome", "VARCHAR"),
    ("started_at", "TIMESTAMPTZ"),
    ("ended_at", "TIMESTAMPTZ"),
    ("session_id", "VARCHAR"),
    ("parent_id", "VARCHAR"),
    ("source", "VARCHAR"),
    ("blocked_by", "VARCHAR"),
)


def tasks_sibling(path: Path) -> Path:
    """``calls.parquet`` -> ``calls.tasks.parquet``."""
    return path.with_name(path.stem + ".tasks" + path.suffix)


@dataclass
class DataSource:
    """An open DuckDB connection exposing ``calls`` and ``tasks`` (UTC session)."""

    con: Any
    label: str
    """What was opened: the store path or the Parquet file."""
    parquet: Path | None = None
    tasks_parquet: Path | None = None
    _owned: Any = None

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
        else:
            self.con.close()

    def __enter__(self) -> DataSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Seconds a read command waits to fold the spool in before reading what is stored.
INGEST_WAIT_S = 2.0


def _ingest_spool(path: Path) -> None:
    """Fold the tracker's spool into the default store; when another command holds the store
    longer than :data:`INGEST_WAIT_S`, say so and how stale the stored data is."""
    from ..store.spool import ingest_spool

    try:
        ingest_spool(path, timeout=INGEST_WAIT_S)
    except StoreError as exc:
        log.warning("%s; showing what was stored before (%s)", exc, _staleness(path))
    except Exception as exc:  # pragma: no cover - depends on the tracker's spool
        log.warning("could not ingest the tracking spool: %s", exc)


def _staleness(path: Path) -> str:
    import os
    import time

    try:
        age = time.time() - os.stat(path).st_mtime
    except OSError:
        return "no store yet"
    return f"last written {age:.0f} s ago"


def _open_for_reading(path: Path) -> Any:
    """The store read-only (sharing it with other readers), migrated first if needed."""
    from ..store import open_store
    from ..store.schema import MIGRATIONS

    if not path.exists():
        open_store(path).close()  # creates an empty store
    store = open_store(path, read_only=True)
    try:
        have = {r[0] for r in store.con.execute(
            "SELECT version FROM schema_migrations").fetchall()}
    except Exception:
        have = set()
    if have >= {m[0] for m in MIGRATIONS}:
        return store
    store.close()
    open_store(path).close()  # applies the pending migrations
    return open_store(path, read_only=True)


def _warn_quarantine(store: Any) -> None:
    n = store.quarantined()
    if n:
        log.warning("%s: %d record(s) quarantined (not counted here); list them with "
                    "`ctxbudget ingest --quarantine`", store.path, n)


def _parquet_dir(root: Path) -> tuple[Path, Path | None]:
    """(glob of the call files, tasks file) of an exported folder: ``root/calls`` with
    one ``day=YYYY-MM-DD`` folder per day (or Parquet files in ``root`` itself). The
    glob has one level of folders so DuckDB and Spark (Hadoop globs) both read it."""
    calls = root / "calls" if (root / "calls").is_dir() else root
    if any(calls.glob("*/*.parquet")):
        glob = calls / "*" / "*.parquet"
    elif any(calls.glob("*.parquet")):
        glob = calls / "*.parquet"
    else:
        raise StoreError(f"{root}: no Parquet files here (write them with "
                         "ctxbudget export --out DIR)")
    tasks = root / "tasks.parquet"
    return glob, tasks if tasks.exists() else None


def open_source(
    db: Path | str | None = None, data: Path | str | None = None, *, store: Any = None
) -> DataSource:
    """Open ``data`` (a Parquet file) or the store ``db`` (default: the user's store),
    or read an already open ``store`` (closed with the source)."""
    if store is not None:
        store.con.execute("SET TimeZone = 'UTC'")
        store.con.execute("SET enable_progress_bar = false")
        return DataSource(con=store.con, label=str(store.path), _owned=store)
    import duckdb

    if data is not None:
        p = Path(data)
        if not p.exists():
            raise StoreError(f"{p}: file not found")
        tasks_file: Path | None = None
        if p.is_dir():  # an export (ctxbudget export --out DIR): calls/day=*/*.parquet
            p, tasks_file = _parquet_dir(p)
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")  # DuckDB draws it on stdout
        names = [n for n, _ in CALL_COLUMNS]
        q = str(p).replace("'", "''")
        try:
            have = {r[0] for r in con.execute(
                f"SELECT name FROM parquet_schema('{q}')").fetchall()}
        except duckdb.Error as exc:
            raise StoreError(f"{p}: not a readable Parquet file ({exc})") from None
        missing = [n for n in ("ts", "provider", "model", "input_tokens", "output_tokens")
                   if n not in have]
        if missing:
            raise StoreError(f"{p}: missing column(s) {', '.join(missing)}")
        types = dict(CALL_COLUMNS)
        cols = ", ".join(
            (f"CAST({n} AS {types[n]}) AS {n}" if n in have else f"CAST(NULL AS {types[n]}) AS {n}")
            if n not in ("ts",) else "CAST(ts AS TIMESTAMPTZ) AS ts"
            for n in names
        )
        con.execute(f"CREATE VIEW calls AS SELECT {cols} FROM read_parquet('{q}')")
        tp: Path | None = tasks_file if tasks_file is not None else tasks_sibling(p)
        if tp is not None and tp.exists():
            tq = str(tp).replace("'", "''")
            try:
                thave = {r[0] for r in con.execute(
                    f"SELECT name FROM parquet_schema('{tq}')").fetchall()}
                # columns added since the file was written (blocked_by) read as NULL
                tcols = ", ".join(f"CAST({n if n in thave else 'NULL'} AS {t}) AS {n}"
                                  for n, t in TASK_COLUMNS)
                con.execute(f"CREATE VIEW tasks AS SELECT {tcols} FROM read_parquet('{tq}')")
            except duckdb.Error as exc:
                raise StoreError(f"{tp}: not a tasks Parquet file ({exc})") from None
        else:
            tp = None
            tcols = ", ".join(f"CAST(NULL AS {t}) AS {n}" for n, t in TASK_COLUMNS)
            con.execute(f"CREATE VIEW tasks AS SELECT {tcols} WHERE false")
        return DataSource(con=con, label=str(p), parquet=p, tasks_parquet=tp)

    from ..store import default_db_path

    if db is None:
        path = default_db_path()
        _ingest_spool(path)
    else:
        path = Path(db)
        if not path.exists():
            raise StoreError(f"{path}: no usage store here (import or track something first)")
        from ..store.db import is_parquet

        if is_parquet(path):
            raise StoreError(f"{path}: is a Parquet file, not a usage store: pass it as "
                             f"--data {path}")
    store = _open_for_reading(path)
    store.con.execute("SET TimeZone = 'UTC'")
    # DuckDB draws its progress bar on stdout: it would corrupt --json and piped tables
    store.con.execute("SET enable_progress_bar = false")
    _warn_quarantine(store)
    return DataSource(con=store.con, label=str(store.path), _owned=store)


def restrict(src: DataSource, since: Any = None, until: Any = None) -> DataSource:
    """Limit what ``src`` shows to the calls with ``since <= ts < until`` (UTC datetimes,
    either may be ``None``) and the tasks that have a call in that range or, with none,
    started in it: ``calls`` and ``tasks`` become temporary views over the data, so every
    query on the connection (what-if, checklist, export...) sees only the range."""
    if since is None and until is None:
        return src
    from .sql import Filters

    f = Filters(since=since, until=until)
    con = src.con
    if src.parquet is not None:  # views of an in-memory database: rename them aside
        con.execute("ALTER VIEW calls RENAME TO calls_all")
        con.execute("ALTER VIEW tasks RENAME TO tasks_all")
        calls, tasks = "calls_all", "tasks_all"
    else:  # the store's tables: temporary views of the same name shadow them
        cat = str(con.execute("SELECT current_catalog()").fetchall()[0][0]).replace('"', '""')
        calls, tasks = f'"{cat}".main.calls', f'"{cat}".main.tasks'
    kind = "VIEW" if src.parquet is not None else "TEMP VIEW"
    con.execute(f"CREATE {kind} calls AS SELECT * FROM {calls} WHERE {f.where()}")
    con.execute(f"CREATE {kind} tasks AS SELECT * FROM {tasks} t WHERE t.task_id IN "
                f"(SELECT task_id FROM calls) OR (t.task_id NOT IN (SELECT task_id FROM "
                f"{calls} WHERE task_id IS NOT NULL) AND {f.where('t', 'started_at')})")
    return src
