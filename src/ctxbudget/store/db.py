"""DuckDB-backed store of calls and tasks."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..usage import Call, Task
from .schema import CALL_COLUMNS, migrate

__all__ = ["Store", "call_key", "calls_to_arrow", "default_db_path", "open_store"]


def default_db_path() -> Path:
    """``$CTXBUDGET_HOME/usage.duckdb`` (``~/.ctxbudget`` by default)."""
    home = os.environ.get("CTXBUDGET_HOME") or str(Path.home() / ".ctxbudget")
    return Path(home) / "usage.duckdb"


def call_key(c: Call) -> str:
    """De-duplication key: ``source:request_id``, else a hash of the record's identity."""
    if c.request_id:
        return f"{c.source}:{c.request_id}"
    h = hashlib.blake2b(digest_size=12)
    h.update(
        "|".join(
            str(x)
            for x in (c.source, c.ts.isoformat(), c.provider, c.model, c.task_id, c.session_id,
                      *c.usage.as_dict().values())
        ).encode()
    )
    return f"{c.source}:h:{h.hexdigest()}"


def _json(v: Any) -> str | None:
    if v is None:
        return None
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def calls_to_arrow(calls: Sequence[Call]) -> Any:
    """A pyarrow Table with :data:`CALL_COLUMNS`, one row per call."""
    import pyarrow as pa

    cols: dict[str, list[Any]] = {n: [] for n, _ in CALL_COLUMNS}
    for c in calls:
        u = c.usage
        cols["call_key"].append(call_key(c))
        cols["ts"].append(c.ts)
        cols["provider"].append(c.provider)
        cols["model"].append(c.model)
        cols["task_id"].append(c.task_id)
        cols["session_id"].append(c.session_id)
        cols["task_type"].append(c.task_type)
        cols["request_id"].append(c.request_id)
        cols["input_tokens"].append(u.input_tokens)
        cols["cache_read_tokens"].append(u.cache_read_tokens)
        cols["cache_write_5m_tokens"].append(u.cache_write_5m_tokens)
        cols["cache_write_1h_tokens"].append(u.cache_write_1h_tokens)
        cols["output_tokens"].append(u.output_tokens)
        cols["reasoning_tokens"].append(u.reasoning_tokens)
        cols["latency_ms"].append(c.latency_ms)
        cols["status"].append(c.status)
        cols["source"].append(c.source)
        cols["service_tier"].append(c.service_tier)
        cols["turn"].append(c.turn)
        cols["components"].append(_json(dict(c.components)) if c.components else None)
        cols["prefix_fingerprint"].append(
            _json(list(c.prefix_fingerprint)) if c.prefix_fingerprint else None)
        cols["expected_cache_read_tokens"].append(c.expected_cache_read_tokens)
        cols["input_inclusive"].append(c.input_inclusive)
        cols["meta"].append(_json(dict(c.meta)) if c.meta else None)
    types = {
        "VARCHAR": pa.string(), "BIGINT": pa.int64(), "INTEGER": pa.int32(),
        "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(), "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    }
    schema = pa.schema([(n, types[t]) for n, t in CALL_COLUMNS])
    return pa.table(cols, schema=schema)


@dataclass
class Store:
    """An open store. Use as a context manager or call :meth:`close`."""

    path: Path
    con: Any = field(repr=False)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def insert_calls(self, calls: Sequence[Call]) -> int:
        """Insert or replace calls by ``call_key`` (idempotent). Returns rows written.

        Within one batch the last record of a key wins (the final streamed copy).
        """
        if not calls:
            return 0
        last: dict[str, Call] = {}
        for c in calls:
            last[call_key(c)] = c
        return self.insert_arrow(calls_to_arrow(list(last.values())))

    def insert_arrow(self, table: Any) -> int:
        """Insert or replace an Arrow table with :data:`CALL_COLUMNS` (keys unique)."""
        names = ", ".join(n for n, _ in CALL_COLUMNS)
        self.con.register("_incoming_calls", table)
        try:
            # the table has no key index (schema migration 3): the writer keeps
            # call_key unique by deleting the incoming keys first
            n, distinct, nulls = self.con.execute(
                "SELECT count(*), count(DISTINCT call_key), count(*) - count(call_key) "
                "FROM _incoming_calls").fetchall()[0]
        except Exception:
            self.con.unregister("_incoming_calls")
            raise
        repeated = n - nulls - distinct  # COUNT(DISTINCT) leaves NULLs out
        if repeated or nulls:
            self.con.unregister("_incoming_calls")
            raise StoreError(f"{self.path}: refusing to write calls: {repeated} "
                             f"repeated and {nulls} missing call_key values in the batch")
        try:
            self.con.execute("BEGIN TRANSACTION")
            if self.count_calls():
                self.con.execute(
                    "DELETE FROM calls WHERE call_key IN (SELECT call_key FROM _incoming_calls)")
            self.con.execute(f"INSERT INTO calls ({names}) SELECT {names} FROM _incoming_calls")
            self.con.execute("COMMIT")
        except Exception as exc:
            self.con.execute("ROLLBACK")
            raise StoreError(f"{self.path}: could not write calls: {exc}") from exc
        finally:
            self.con.unregister("_incoming_calls")
        return int(table.num_rows)

    def upsert_tasks(self, tasks: Iterable[Task], source: str = "track") -> int:
        rows = [
            (t.task_id, t.task_type, t.outcome, t.started_at, t.ended_at, t.session_id,
             t.parent_id, source)
            for t in tasks
        ]
        if not rows:
            return 0
        self.con.executemany(
            "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    def count_calls(self) -> int:
        row = self.con.execute("SELECT count(*) FROM calls").fetchall()
        return int(row[0][0])


def open_store(path: Path | str | None = None, *, read_only: bool = False) -> Store:
    """Open (creating and migrating if needed) the DuckDB store at ``path``."""
    import duckdb

    p = Path(path) if path is not None else default_db_path()
    if read_only and not p.exists():
        raise StoreError(f"{p}: no usage store here yet (import or track something first)")
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(p), read_only=read_only)
    except duckdb.Error as exc:
        raise StoreError(f"{p}: cannot open the usage store: {exc}") from exc
    if not read_only:
        con.execute("SET TimeZone = 'UTC'")
        migrate(con)
    else:
        con.execute("SET TimeZone = 'UTC'")
    return Store(path=p, con=con)
