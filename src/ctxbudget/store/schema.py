"""Store schema as numbered migrations, applied once and recorded.

``calls`` is the one fact table every importer, the tracker and ``simulate`` write
and every analysis reads. Its token columns are the disjoint :class:`Usage`
buckets. ``call_key`` is the de-duplication key: ``<source>:<request id>`` when the
source has one, else a content hash; re-importing the same record replaces it
(never adds a second row).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..usage import DETAIL_FIELDS

#: The calls table's columns as migration 1 created them (frozen: a migration never
#: changes once released).
_V1_CALL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("call_key", "VARCHAR"),
    ("ts", "TIMESTAMPTZ"),
    ("provider", "VARCHAR"),
    ("model", "VARCHAR"),
    ("task_id", "VARCHAR"),
    ("session_id", "VARCHAR"),
    ("task_type", "VARCHAR"),
    ("request_id", "VARCHAR"),
    ("input_tokens", "BIGINT"),
    ("cache_read_tokens", "BIGINT"),
    ("cache_write_5m_tokens", "BIGINT"),
    ("cache_write_1h_tokens", "BIGINT"),
    ("output_tokens", "BIGINT"),
    ("reasoning_tokens", "BIGINT"),
    ("latency_ms", "DOUBLE"),
    ("status", "VARCHAR"),
    ("source", "VARCHAR"),
    ("service_tier", "VARCHAR"),
    ("turn", "INTEGER"),
    ("components", "VARCHAR"),  # JSON object {component: tokens}
    ("prefix_fingerprint", "VARCHAR"),  # JSON list of block hashes
    ("expected_cache_read_tokens", "BIGINT"),
    ("input_inclusive", "BOOLEAN"),
    ("meta", "VARCHAR"),  # JSON object
)

#: Migration 6: the usage detail of :class:`~ctxbudget.usage.Usage` (modality subsets
#: of the buckets, server-side tool request counts; NULL = the source did not say) and
#: the billed counters no field holds (JSON object ``{name: count}``).
DETAIL_COLUMNS: tuple[tuple[str, str], ...] = (
    *((f, "BIGINT") for f in DETAIL_FIELDS),
    ("other_tool_requests", "VARCHAR"),
)

#: (name, DuckDB type) of the calls table, in order. Parquet files written by
#: ``simulate`` use the same names so analytics can read either.
CALL_COLUMNS: tuple[tuple[str, str], ...] = (*_V1_CALL_COLUMNS, *DETAIL_COLUMNS)


def _m1_initial(con: Any) -> None:
    cols = ",\n  ".join(f"{n} {t}" for n, t in _V1_CALL_COLUMNS)
    con.execute(f"CREATE TABLE calls (\n  {cols},\n  PRIMARY KEY (call_key)\n)")
    con.execute(
        """CREATE TABLE tasks (
          task_id VARCHAR PRIMARY KEY,
          task_type VARCHAR,
          outcome VARCHAR,
          started_at TIMESTAMPTZ,
          ended_at TIMESTAMPTZ,
          session_id VARCHAR,
          parent_id VARCHAR,
          source VARCHAR
        )"""
    )
    con.execute(
        """CREATE TABLE imports (
          path VARCHAR,
          format VARCHAR,
          size_bytes BIGINT,
          mtime DOUBLE,
          lines BIGINT,
          accepted BIGINT,
          rejected BIGINT,
          imported_at TIMESTAMPTZ
        )"""
    )


def _m2_spool_offsets(con: Any) -> None:
    # How far each tracker spool file has been folded into this store (see store/spool.py):
    # bytes up to ``offset`` (always just after a newline) and ``lines`` lines are ingested.
    con.execute(
        """CREATE TABLE spool_offsets (
          file VARCHAR PRIMARY KEY,
          "offset" BIGINT NOT NULL,
          lines BIGINT NOT NULL,
          rejected BIGINT NOT NULL DEFAULT 0,
          done BOOLEAN NOT NULL DEFAULT false,
          updated_at TIMESTAMPTZ
        )"""
    )


def _m3_calls_without_pk(con: Any) -> None:
    # The PRIMARY KEY's ART index on call_key cost more than everything else in a bulk
    # import (1 GiB of Claude Code logs, 227k calls: 3.4 s of INSERT + COMMIT with it,
    # 0.7 s without). Uniqueness is kept by the writers instead: every write deletes
    # the incoming keys, then inserts rows whose keys are unique (Store.insert_arrow
    # checks), inside one transaction; DuckDB allows one writing process per file.
    # call_key and request_id are unique strings: DuckDB's string compression of them
    # cost 0.4 s of the 1.1 s that writing those 227k calls took; stored uncompressed
    # the table is ~1.6x larger on disk (180 vs 110 bytes per call)
    cols = ",\n  ".join(
        f"{n} {t}" + (" USING COMPRESSION uncompressed" if n in ("call_key", "request_id")
                      else "") for n, t in _V1_CALL_COLUMNS)
    con.execute(f"CREATE TABLE calls_v3 (\n  {cols}\n)")
    con.execute("INSERT INTO calls_v3 SELECT * FROM calls")
    con.execute("DROP TABLE calls")
    con.execute("ALTER TABLE calls_v3 RENAME TO calls")


def _m4_quarantine(con: Any) -> None:
    # Records that could not be stored (a malformed or out-of-range spool line, ...) are
    # kept here with their file and line instead of stopping the rest of their file.
    con.execute(
        """CREATE TABLE quarantine (
          source VARCHAR NOT NULL,
          file VARCHAR NOT NULL,
          line BIGINT,
          reason VARCHAR NOT NULL,
          record VARCHAR,
          quarantined_at TIMESTAMPTZ
        )"""
    )


def _m5_import_offsets(con: Any) -> None:
    # Append-aware imports (sources/_runner.py): ``size_bytes`` is the byte offset read
    # up to; ``tail_hash`` fingerprints the bytes just before it (a file whose bytes
    # there changed was rewritten: it is read whole again); ``state`` is what a
    # stateful format (Codex: session, model, running total) needs to read on from it.
    con.execute("ALTER TABLE imports ADD COLUMN tail_hash BIGINT")
    con.execute("ALTER TABLE imports ADD COLUMN state VARCHAR")


def _m6_usage_detail(con: Any) -> None:
    # Server-side tool fees and modality detail priced by reports (the same formula as
    # ``ctxbudget usage --cost``): one nullable column per Usage detail field, plus the
    # counters no field holds. Existing rows keep NULL (unknown, never a made-up 0).
    for name, typ in DETAIL_COLUMNS:
        con.execute(f"ALTER TABLE calls ADD COLUMN {name} {typ}")


def _m7_task_blocked_by(con: Any) -> None:
    # A task a budget cap blocked (outcome 'blocked') names the cap: JSON object
    # {"cap", "limit", "task_id", "phase"} (see ctxbudget.usage.Task.blocked_by).
    con.execute("ALTER TABLE tasks ADD COLUMN blocked_by VARCHAR")


#: Ordered migrations. Never edit a released one: append a new function.
MIGRATIONS: tuple[tuple[int, str, Callable[[Any], None]], ...] = (
    (1, "initial calls/tasks/imports tables", _m1_initial),
    (2, "spool_offsets: tracker spool ingestion progress", _m2_spool_offsets),
    (3, "calls: no PRIMARY KEY index (writers keep call_key unique)", _m3_calls_without_pk),
    (4, "quarantine: records kept aside with their file and line", _m4_quarantine),
    (5, "imports: tail fingerprint and reader state (append-aware imports)", _m5_import_offsets),
    (6, "calls: usage detail (tool requests, modality tokens) and other billed counters",
     _m6_usage_detail),
    (7, "tasks: blocked_by, the budget cap that blocked a task", _m7_task_blocked_by),
)


def migrate(con: Any) -> list[int]:
    """Apply pending migrations in order inside one transaction each; return those applied."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMPTZ DEFAULT now())"
    )
    done = {r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied: list[int] = []
    for version, name, fn in MIGRATIONS:
        if version in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            fn(con)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                        [version, name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied
