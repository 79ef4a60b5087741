"""DuckDB-backed store of calls and tasks."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..usage import DETAIL_FIELDS, Call, Task
from ._lock import LOCK_TIMEOUT_S, StoreLock, lock_timeout
from ._paths import default_db_path, private_dir
from .pending import fold_pending, pending_path
from .schema import CALL_COLUMNS, migrate

__all__ = ["LOCK_TIMEOUT_S", "Store", "call_key", "calls_to_arrow", "default_db_path",
           "is_parquet", "lock_timeout", "open_store", "private_dir", "store_error"]



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
        for name in DETAIL_FIELDS:
            cols[name].append(getattr(u, name))
        cols["other_tool_requests"].append(
            _json(dict(c.other_tool_requests)) if c.other_tool_requests else None)
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
    lock: StoreLock | None = field(default=None, repr=False)
    _depth: int = field(default=0, repr=False)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.con.close()
        finally:
            if self.lock is not None:
                self.lock.release()
                self.lock = None

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

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction (re-entrant: an inner block joins the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.con.execute("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield
        except BaseException as exc:
            self._depth = 0
            with suppress(Exception):  # the connection may be gone already
                self.con.execute("ROLLBACK")
            if isinstance(exc, StoreError) or not isinstance(exc, Exception):
                raise
            import duckdb

            if isinstance(exc, duckdb.Error | OSError):
                raise store_error(self.path, exc, "could not write") from exc
            raise
        self._depth = 0
        try:
            self.con.execute("COMMIT")
        except Exception as exc:
            with suppress(Exception):
                self.con.execute("ROLLBACK")
            raise store_error(self.path, exc, "could not write") from exc

    def _check_keys(self, name: str) -> None:
        # the table has no key index (schema migration 3): writers keep call_key unique
        n, distinct, nulls = self.con.execute(
            f"SELECT count(*), count(DISTINCT call_key), count(*) - count(call_key) "
            f"FROM {name}").fetchall()[0]
        repeated = n - nulls - distinct  # COUNT(DISTINCT) leaves NULLs out
        if repeated or nulls:
            raise StoreError(f"{self.path}: refusing to write calls: {repeated} "
                             f"repeated and {nulls} missing call_key values in the batch")

    def insert_arrow(self, table: Any) -> int:
        """Insert or replace an Arrow table with :data:`CALL_COLUMNS` (keys unique): the
        incoming keys are deleted, then the rows appended, in one transaction."""
        names = ", ".join(n for n, _ in CALL_COLUMNS)
        self.con.register("_incoming_calls", table)
        try:
            self._check_keys("_incoming_calls")
            with self.transaction():
                if self.count_calls():
                    self.con.execute("DELETE FROM calls WHERE call_key IN "
                                     "(SELECT call_key FROM _incoming_calls)")
                self.con.execute(
                    f"INSERT INTO calls ({names}) SELECT {names} FROM _incoming_calls")
        finally:
            with suppress(Exception):  # fails in an aborted transaction
                self.con.unregister("_incoming_calls")
        return int(table.num_rows)

    def add_new_calls(self, table: Any) -> int:
        """Append the calls of an Arrow table whose keys the store does not hold yet (an
        anti-join: for records that never change once written, like the tracker's spool).
        Returns the rows appended."""
        names = ", ".join(n for n, _ in CALL_COLUMNS)
        self.con.register("_incoming_calls", table)
        try:
            self._check_keys("_incoming_calls")
            with self.transaction():
                if not self.count_calls():
                    q = f"INSERT INTO calls ({names}) SELECT {names} FROM _incoming_calls"
                else:
                    q = (f"INSERT INTO calls ({names}) SELECT {names} FROM _incoming_calls i "
                         "WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.call_key = i.call_key)")
                row = self.con.execute(q).fetchall()
        finally:
            with suppress(Exception):  # fails in an aborted transaction
                self.con.unregister("_incoming_calls")
        return int(row[0][0]) if row else 0

    def upsert_tasks(self, tasks: Iterable[Task], source: str = "track") -> int:
        """Insert or replace tasks by ``task_id`` as one Arrow batch (the last of a repeated
        id wins)."""
        import pyarrow as pa

        last = {t.task_id: t for t in tasks}
        if not last:
            return 0
        ts = pa.timestamp("us", tz="UTC")
        vals = list(last.values())
        table = pa.table({
            "task_id": pa.array([t.task_id for t in vals], pa.string()),
            "task_type": pa.array([t.task_type for t in vals], pa.string()),
            "outcome": pa.array([t.outcome for t in vals], pa.string()),
            "started_at": pa.array([t.started_at for t in vals], ts),
            "ended_at": pa.array([t.ended_at for t in vals], ts),
            "session_id": pa.array([t.session_id for t in vals], pa.string()),
            "parent_id": pa.array([t.parent_id for t in vals], pa.string()),
            "source": pa.array([source] * len(vals), pa.string()),
            "blocked_by": pa.array([_json(dict(t.blocked_by)) if t.blocked_by else None
                                    for t in vals], pa.string()),
        })
        self.con.register("_incoming_tasks", table)
        try:
            with self.transaction():
                self.con.execute("DELETE FROM tasks WHERE task_id IN "
                                 "(SELECT task_id FROM _incoming_tasks)")
                self.con.execute("INSERT INTO tasks BY NAME SELECT * FROM _incoming_tasks")
        finally:
            with suppress(Exception):  # fails in an aborted transaction
                self.con.unregister("_incoming_tasks")
        return len(vals)

    def quarantine(self, source: str, file: str, rows: Sequence[tuple[int, str, str]],
                   at: datetime) -> None:
        """Keep records that could not be stored aside: (line, reason, raw text) each; a
        line already held for the same file is not added twice."""
        for line, reason, raw in rows:
            self.con.execute(
                "INSERT INTO quarantine SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 "
                "FROM quarantine WHERE source = ? AND file = ? AND line = ?)",
                [source, file, line, reason, raw, at, source, file, line])

    def quarantined(self) -> int:
        """Records held in the quarantine table."""
        try:
            return int(self.con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0])
        except Exception:
            return 0

    def count_calls(self) -> int:
        row = self.con.execute("SELECT count(*) FROM calls").fetchall()
        return int(row[0][0])


def open_store(path: Path | str | None = None, *, read_only: bool = False,
               timeout: float | None = None) -> Store:
    """Open (creating and migrating if needed) the DuckDB store at ``path``.

    Writers (``read_only=False``) take the store's lock exclusively and serialize;
    readers share it. Either waits up to ``timeout`` seconds (default
    ``$CTXBUDGET_LOCK_TIMEOUT`` or :data:`LOCK_TIMEOUT_S`) for the other side, then
    raises :class:`StoreError` naming who holds the store. A new store is created
    atomically (built aside, then renamed into place) with mode 0600 in a 0700 folder.
    """
    p = Path(path) if path is not None else default_db_path()
    if read_only and not p.exists():
        raise StoreError(f"{p}: no usage store here yet (import or track something first)")
    refuse_parquet(p)
    wait = lock_timeout() if timeout is None else timeout
    if read_only and pending_path(p).exists():
        # calls the day summary imported past the store: folded in by a writer first
        open_store(p, timeout=timeout).close()
    lock = StoreLock.acquire(p, exclusive=not read_only, timeout=wait)
    try:
        if not read_only and not p.exists():
            _create_atomically(p)
        con = _connect(p, read_only=read_only, deadline=time.monotonic() + wait)
        store = Store(path=p, con=con, lock=lock)
        try:
            con.execute("SET TimeZone = 'UTC'")
            if not read_only:
                migrate(con)
                if pending_path(p).exists():
                    fold_pending(store)
        except Exception as exc:
            con.close()
            if isinstance(exc, StoreError):
                raise
            raise store_error(p, exc, "cannot open the usage store") from exc
    except BaseException:
        lock.release()
        raise
    return store


def refuse_parquet(p: Path) -> None:
    """Raise :class:`StoreError` when ``p`` is a Parquet file given where a store goes."""
    if is_parquet(p):
        raise StoreError(f"{p}: is a Parquet file, not a usage store: give it with --data "
                         "to the commands that read Parquet (report, signals, check...)")


def is_parquet(path: Path) -> bool:
    """Whether ``path`` is a Parquet file (it starts with the magic bytes ``PAR1``)."""
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"PAR1"
    except OSError:
        return False


_RECOVER = ("recover with: mv '{p}' '{p}.damaged' and re-run your imports and "
            "`ctxbudget ingest --redo` (the spool keeps every tracked record)")


def _create_atomically(p: Path) -> None:
    """Build an empty, migrated store beside ``p`` and rename it into place, so a crash or a
    full disk never leaves a half-written store behind (called under the write lock)."""
    import duckdb

    private_dir(p.parent)
    tmp = p.with_name(f".{p.name}.creating-{os.getpid()}")
    _remove(tmp)
    try:
        con = duckdb.connect(str(tmp))
        try:
            con.execute("SET TimeZone = 'UTC'")
            migrate(con)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.chmod(tmp, 0o600)
        os.rename(tmp, p)
    except (OSError, duckdb.Error) as exc:
        raise store_error(p, exc, "cannot create the usage store") from exc
    finally:
        _remove(tmp)


def _remove(tmp: Path) -> None:
    for q in (tmp, tmp.with_name(tmp.name + ".wal")):
        try:
            q.unlink()
        except FileNotFoundError:
            pass
        except OSError:  # pragma: no cover - best effort
            pass


def _connect(p: Path, *, read_only: bool, deadline: float) -> Any:
    """duckdb.connect, retrying while a process outside the lock protocol holds the file."""
    import duckdb

    while True:
        try:
            con = duckdb.connect(str(p), read_only=read_only)
        except duckdb.Error as exc:
            if read_only and "different configuration" in str(exc):
                # this process has the store open for writing already: share that instance
                read_only = False
                continue
            if "lock" in str(exc).lower() and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise store_error(p, exc, "cannot open the usage store") from exc
        if not read_only:
            _chmod_private(p)
        return con


def _chmod_private(p: Path) -> None:
    for q in (p, p.with_name(p.name + ".wal")):
        try:
            if q.exists() and q.stat().st_mode & 0o077:
                os.chmod(q, 0o600)
        except OSError:  # not ours to change (another user's store opened read-write)
            pass


def store_error(p: Path, exc: BaseException, what: str) -> StoreError:
    """One line saying what went wrong with the store at ``p`` and how to recover."""
    msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    low = str(exc).lower()
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    if full or any(s in low for s in ("no space left", "disk quota", "file too large")):
        return StoreError(f"{p}: {what}: the disk is full ({msg}); free some space and run "
                          "the command again (nothing was half-written)")
    if "lock" in low:
        return StoreError(f"{p}: {what}: another program holds the store ({msg}); "
                          "wait for it to finish or raise CTXBUDGET_LOCK_TIMEOUT")
    if any(s in low for s in ("not a valid duckdb", "corrupt", "checksum", "could not read",
                              "serialization", "invalid", "failed to read")):
        return StoreError(f"{p}: the usage store is damaged ({msg}); " + _RECOVER.format(p=p))
    return StoreError(f"{p}: {what}: {msg}")
