"""What the dashboard shows, read from the store without ever writing to it.

A :class:`Dataset` keeps one :class:`Snapshot` of the aggregates the pages need
(per day, per task type, per model, per (day, type), one row per task, the warning
signals), computed with the same queries as ``ctxbudget report`` (so the numbers are
the report's) and kept in the server's own in-memory DuckDB. Page loads query that
snapshot; a page about one task or one call reads just that task's sessions from the
store. The snapshot is rebuilt in the background when the data changes: the store file
(and its WAL) or the tracker's spool (records not yet ingested are shown too, read from
the spool files, de-duplicated by call key against the store).

The store is opened read-only, only while a query runs (``ATTACH ... (READ_ONLY)`` on
a fresh in-memory connection), so a writer (``ingest``, ``import``, the gateway) is
never kept out for longer than one query. While a writer holds the store the last
snapshot is served and the pages say how old it is.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ...analyze.sql import task_key_sql
from ...errors import StoreError
from ...prices import PriceBook, default_pricebook

__all__ = ["CallRow", "Dataset", "Snapshot", "TaskQuery"]

log = logging.getLogger(__name__)

#: Columns of the per-task table a tasks page can sort by.
TASK_SORTS = ("cost", "calls", "tokens", "first", "outcome", "wasted", "type")
_SORT_SQL = {"cost": "cost_usd", "calls": "calls", "tokens": "tokens", "first": "first_ts",
             "outcome": "outcome", "wasted": "wasted_write_tokens", "type": "task_type"}
#: The columns a tasks page shows (the per-task table has more).
_PAGE_COLUMNS = ("task_key", "task_type", "outcome", "calls", "tokens", "cost_usd",
                 "wasted_write_tokens", "first_ts", "models", "day", "session_id", "user_id")
#: A call counts as "expensive to explain" when it writes at least this many tokens to
#: the cache, or reads none of a prompt at least this long after an earlier call.
LARGE_WRITE_TOKENS = 1024


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskQuery:
    """The filters and order of a tasks page (every field is in the page's URL)."""

    day: str | None = None
    task_type: str | None = None
    model: str | None = None
    outcome: str | None = None
    session: str | None = None
    user: str | None = None
    sort: str = "cost"
    desc: bool = True
    limit: int = 50
    offset: int = 0

    def where(self) -> str:
        parts = ["1 = 1"]
        for col, v in (("day", self.day), ("task_type", self.task_type),
                       ("outcome", self.outcome), ("session_id", self.session),
                       ("user_id", self.user)):
            if v is not None:
                parts.append(f"COALESCE(CAST({col} AS VARCHAR), '(none)') = {_lit(v)}")
        if self.model is not None:
            parts.append(f"list_contains(models, {_lit(self.model)})")
        return " AND ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """The aggregates of one version of the data."""

    version: str
    built_at: datetime
    build_s: float
    source: str
    by_day: Any
    """:class:`~ctxbudget.analyze.metrics.Report` by day (with its total)."""
    by_type: Any
    by_model: Any
    day_type: list[dict[str, Any]]
    signals: tuple[Any, ...]
    pending_spool_calls: int = 0
    notes: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRow:
    """One call of a task page, priced by the report's formula."""

    call_key: str
    ts: datetime
    model: str
    provider: str
    task_key: str
    session_id: str | None
    turn: int | None
    status: str
    latency_ms: float | None
    input_tokens: int
    cache_read_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    output_tokens: int
    cost_usd: Decimal | None
    wasted_write_tokens: int
    has_fingerprint: bool
    expected_cache_read_tokens: int | None = None

    @property
    def prompt_tokens(self) -> int:
        return (self.input_tokens + self.cache_read_tokens + self.cache_write_5m_tokens
                + self.cache_write_1h_tokens)

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def suspicious(self) -> bool:
        """A large cache write, or a long prompt read with no cache hit at all."""
        return self.cache_write_tokens >= LARGE_WRITE_TOKENS or (
            self.cache_read_tokens == 0 and self.prompt_tokens >= LARGE_WRITE_TOKENS
            and (self.turn or 0) > 1)


@dataclass
class Dataset:
    """The data behind the dashboard: a store (``db``) or a calls Parquet file (``data``).

    ``refresh_s``: how often the data version is checked; ``wait_s``: how long to wait for
    a writer to release the store before serving the previous snapshot. ``since`` /
    ``until`` (UTC): only the calls with ``since <= ts < until`` are shown.
    """

    db: Path | None = None
    data: Path | None = None
    spool: Path | None = None
    book: PriceBook | None = None
    tz: str = "UTC"
    refresh_s: float = 2.0
    wait_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    since: datetime | None = None
    until: datetime | None = None
    _snap: Snapshot | None = field(default=None, init=False, repr=False)
    _mem: Any = field(default=None, init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    _build_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _checked: float = field(default=-1e18, init=False, repr=False)
    stale_reason: str | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _reader: Any = field(default=None, init=False, repr=False)
    _read_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _counts: dict[tuple[str, str], int] = field(default_factory=dict, init=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    def __post_init__(self) -> None:
        import duckdb

        if self.db is None and self.data is None:
            from ...store import default_db_path

            self.db = default_db_path()
            if self.spool is None:
                from ...track import default_spool_dir

                self.spool = default_spool_dir()
        if self.db is not None and not Path(self.db).exists():
            raise StoreError(f"{self.db}: no usage store here (import or track something first)")
        if self.data is not None and not Path(self.data).exists():
            raise StoreError(f"{self.data}: file not found")
        self.book = self.book or default_pricebook()
        self._mem = duckdb.connect()
        self._mem.execute("SET TimeZone = 'UTC'")
        self._mem.execute("SET enable_progress_bar = false")
        self._reader = duckdb.connect()

    # ------------------------------------------------------------------ versions

    @property
    def label(self) -> str:
        return str(self.db if self.db is not None else self.data)

    def _range(self, alias: str = "") -> str | None:
        """The ``--since`` / ``--until`` condition on the calls, ``None`` without one."""
        if self.since is None and self.until is None:
            return None
        from ...analyze.sql import Filters

        return Filters(since=self.since, until=self.until).where(alias)

    def _files(self) -> list[Path]:
        if self.db is not None:
            db = Path(self.db)
            out = [db, db.with_name(db.name + ".wal")]
        else:
            assert self.data is not None
            out = [Path(self.data)]
        if self.spool is not None and Path(self.spool).is_dir():
            out.extend(sorted(Path(self.spool).glob("*.jsonl")))
        return out

    def version(self) -> str:
        """Changes whenever the store, its WAL or a live spool file changes."""
        parts = []
        for p in self._files():
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            parts.append(f"{p.name}:{st.st_size}:{st.st_mtime_ns}")
        import hashlib

        return hashlib.blake2b("|".join(parts).encode(), digest_size=8).hexdigest()

    # ------------------------------------------------------------------ connections

    @contextmanager
    def connect(self, calls_where: str | None = None, *, page: bool = False) -> Iterator[Any]:
        """A connection with ``calls`` and ``tasks`` views over the data, the store attached
        read-only only for as long as the block runs.

        ``calls_where`` restricts ``calls`` (a SQL condition on the store's columns).
        ``page``: a short page query, run on a cursor of one long-lived in-memory
        database (a new database costs ~12 ms; an attach ~1 ms), one at a time; the
        snapshot build gets a database of its own so pages never wait for it.
        """
        import duckdb

        calls_where = " AND ".join(f"({c})" for c in (self._range(), calls_where) if c) or None
        if self.db is None:
            from ...analyze.source import open_source

            src = open_source(data=self.data)
            try:
                if calls_where:
                    src.con.execute("ALTER VIEW calls RENAME TO calls_all")
                    src.con.execute(f"CREATE VIEW calls AS SELECT * FROM calls_all "
                                    f"WHERE {calls_where}")
                yield src.con
            finally:
                src.close()
            return
        lock = self._read_lock if page else None
        if lock is not None:
            lock.acquire()
        con = self._reader.cursor() if page else duckdb.connect()
        attached = False
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET enable_progress_bar = false")  # it would print on our stdout
            cond = f" WHERE {calls_where}" if calls_where else ""
            self._attach(con)
            attached = True
            stored = _store_calls(con)
            base = stored
            if self._spool_table(con):
                base = (f"{stored} UNION ALL SELECT * FROM spool_calls sc "
                        "WHERE sc.call_key NOT IN (SELECT call_key FROM s.main.calls)")
            con.execute(f"CREATE OR REPLACE TEMP VIEW calls AS SELECT * FROM ({base}) x{cond}")
            con.execute(f"CREATE OR REPLACE TEMP VIEW tasks AS {_store_tasks(con)}")
            yield con
        finally:
            try:
                if page and attached:  # temp views and tables go with the cursor
                    con.execute("DETACH s")  # the store is not held between pages
            finally:
                con.close()
                if lock is not None:
                    lock.release()

    def _attach(self, con: Any) -> None:
        import duckdb

        q = str(self.db).replace("'", "''")
        deadline = self.clock() + self.wait_s
        delay = 0.05
        while True:
            try:
                con.execute(f"ATTACH '{q}' AS s (READ_ONLY)")
                return
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or self.clock() >= deadline:
                    raise StoreError(f"{self.db}: {_first_line(exc)}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            except duckdb.Error as exc:
                raise StoreError(f"{self.db}: not a readable usage store "
                                 f"({_first_line(exc)})") from None

    def _spool_table(self, con: Any) -> int:
        """Register the spool's records as ``spool_calls`` (0: nothing to show)."""
        if self.spool is None or not Path(self.spool).is_dir():
            return 0
        live = list(Path(self.spool).glob("*.jsonl"))
        if not live:
            return 0
        from ...store.db import calls_to_arrow
        from ...store.spool import read_spool

        calls, _tasks, _rep = read_spool(self.spool)
        if not calls:
            return 0
        con.register("spool_calls", calls_to_arrow(calls))
        return len(calls)

    # ------------------------------------------------------------------ snapshot

    def snapshot(self, *, block: bool = True) -> Snapshot | None:
        """The current snapshot, rebuilt first when the data changed (checked at most every
        ``refresh_s``). ``block=False`` never builds: it returns what there is."""
        now = self.clock()
        if self._snap is not None and (now - self._checked < self.refresh_s or not block):
            return self._snap
        self._checked = now
        v = self.version()
        if self._snap is not None and v == self._snap.version:
            return self._snap
        if not block:
            return self._snap
        with self._build_lock:
            if self._snap is not None and self._snap.version == v:
                return self._snap
            try:
                snap = self._build(v)
            except StoreError as exc:
                if self._snap is None:
                    raise
                self.stale_reason = str(exc)
                log.warning("serving the previous snapshot: %s", exc)
                return self._snap
            self.stale_reason = None
            self._snap = snap
        return self._snap

    def start_refresher(self) -> None:
        """Rebuild in a background thread when the data changes (pages never wait)."""
        def loop() -> None:
            while not self._stop.wait(self.refresh_s):
                try:
                    self.snapshot()
                except Exception as exc:  # keep serving; the page shows stale_reason
                    self.stale_reason = str(exc)
                    log.warning("refresh failed: %s", exc)

        self._thread = threading.Thread(target=loop, name="ctxbudget-serve-refresh",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self._mem.close()
        with self._read_lock:
            self._reader.close()

    def _build(self, version: str) -> Snapshot:
        from ...analyze.engine import DuckDBEngine, price_data
        from ...analyze.metrics import compute_report, compute_two_reports
        from ...analyze.signals import compute_signals
        from ...analyze.source import DataSource
        from ...analyze.sql import Filters, group_sql

        t0 = time.perf_counter()
        f = Filters(since=self.since, until=self.until, tz=self.tz)
        with self.connect() as con:
            pending = 0
            if self.db is not None:
                pending = int(con.execute(
                    "SELECT COUNT(*) FROM calls WHERE call_key NOT IN "
                    "(SELECT call_key FROM s.main.calls)").fetchall()[0][0])
            eng = DuckDBEngine(DataSource(con=con, label=self.label))
            detail = price_data(eng, f, self.book).detail  # type: ignore[arg-type]
            tasks = eng.arrow(
                f"SELECT * FROM ({group_sql('task', f, eng.dialect, detail=detail)}) r")
            # per day, per type, per (day, type) and the total: one scan, the report's sums
            by_day, by_type, cross = compute_two_reports(eng, "day", "type", f, self.book,
                                                         tasks=tasks, source=self.label)
            by_model = compute_report(eng, "model", f, self.book, with_types=False,
                                      with_total=False, wasted=False, source=self.label)
            day_type = [{"day": g.key.split("|", 1)[0], "task_type": g.task_type,
                         "calls": g.calls, "tasks": g.tasks, "cost_usd": g.cost_usd,
                         "cache_read_tokens": g.cache_read_tokens,
                         "prompt_tokens": g.prompt_tokens,
                         "wasted_write_tokens": g.wasted_write_tokens,
                         "unpriced_calls": g.unpriced_calls} for g in cross]
            day = ("CAST(MIN(ts) AS DATE)" if self.tz in ("UTC", "utc", "Etc/UTC") else
                   f"CAST(timezone({_lit(self.tz)}, MIN(ts)) AS DATE)")
            extras = eng.arrow(
                f"SELECT {task_key_sql()} AS task_key, "
                "list_sort(list_distinct(list(model))) AS models, "
                "MIN(session_id) AS session_id, "
                "list_distinct(list(COALESCE(session_id, task_id, call_key))) AS sks, "
                "MIN(json_extract_string(meta, '$.user')) AS user_id, "
                f"{day} AS day FROM calls GROUP BY 1")
            signals = tuple(compute_signals(eng, f, self.book, priced=True))
            sessions = None
            if self.db is not None:  # row ranges: a task page reads only its sessions' rows
                sessions = con.sql(
                    "SELECT COALESCE(session_id, task_id, call_key) AS sk, MIN(rowid) AS lo, "
                    "MAX(rowid) AS hi, COUNT(*) AS n FROM s.main.calls "
                    f"WHERE {self._range() or 'true'} GROUP BY 1"
                ).to_arrow_table()
        with self._lock:
            m = self._mem
            m.register("new_tasks", tasks)
            m.register("new_extras", extras)
            m.execute("""CREATE OR REPLACE TABLE t_tasks AS
SELECT t.key AS task_key, COALESCE(t.task_type, '(none)') AS task_type, t.outcome, t.calls,
  t.input_tokens + t.cache_read_tokens + t.cache_write_5m_tokens + t.cache_write_1h_tokens
    + t.output_tokens AS tokens,
  t.input_tokens, t.cache_read_tokens, t.cache_write_5m_tokens, t.cache_write_1h_tokens,
  t.output_tokens, t.cost_usd, t.unpriced_calls, t.wasted_write_tokens, t.error_calls,
  t.first_ts, t.last_ts, e.models, e.session_id, e.user_id, CAST(e.day AS VARCHAR) AS day,
  e.sks
FROM new_tasks t LEFT JOIN new_extras e ON e.task_key = t.key""")
            m.execute("CREATE INDEX t_tasks_key ON t_tasks (task_key)")  # a task page's lookup
            m.execute("DROP TABLE IF EXISTS t_sessions")
            if sessions is not None:
                m.register("new_sessions", sessions)
                m.execute("CREATE TABLE t_sessions AS SELECT * FROM new_sessions")
                m.execute("CREATE INDEX t_sessions_sk ON t_sessions (sk)")
                m.unregister("new_sessions")
            m.unregister("new_tasks")
            m.unregister("new_extras")
            models = tuple(r[0] for r in m.execute(
                "SELECT DISTINCT unnest(models) FROM t_tasks ORDER BY 1").fetchall())
            outcomes = tuple(r[0] for r in m.execute(
                "SELECT DISTINCT COALESCE(outcome, '(none)') FROM t_tasks ORDER BY 1"
            ).fetchall())
        notes = []
        if pending:
            notes.append(f"{pending:,} call(s) from the tracker's spool not yet ingested "
                         "are included")
        return Snapshot(version=version, built_at=datetime.now(UTC),
                        build_s=time.perf_counter() - t0, source=self.label, by_day=by_day,
                        by_type=by_type, by_model=by_model, day_type=day_type,
                        signals=signals, pending_spool_calls=pending, notes=tuple(notes),
                        models=models, outcomes=outcomes)

    # ------------------------------------------------------------------ page queries

    def tasks(self, q: TaskQuery) -> tuple[list[dict[str, Any]], int]:
        """One page of tasks matching ``q`` and how many match in all (the count is kept
        per snapshot and filter: paging and re-sorting do not count again)."""
        snap = self.snapshot(block=self._snap is None)
        col = _SORT_SQL.get(q.sort, "cost_usd")
        order = "DESC" if q.desc else "ASC"
        where = q.where()
        with self._lock:
            key = (snap.version if snap else "", where)
            n = self._counts.get(key)
            if n is None:
                n = int(self._mem.execute(
                    f"SELECT COUNT(*) FROM t_tasks WHERE {where}").fetchall()[0][0])
                if len(self._counts) > 1000:
                    self._counts.clear()
                self._counts[key] = n
            cur = self._mem.execute(
                f"SELECT {', '.join(_PAGE_COLUMNS)} FROM t_tasks WHERE {where} "
                f"ORDER BY {col} {order} NULLS LAST, task_key LIMIT {int(q.limit)} "
                f"OFFSET {int(q.offset)}")
            cols = [d[0] for d in cur.description]
            rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        return rows, n

    def task(self, task_key: str) -> dict[str, Any] | None:
        self.snapshot(block=self._snap is None)
        with self._lock:
            cur = self._mem.execute("SELECT * FROM t_tasks WHERE task_key = ?", [task_key])
            cols = [d[0] for d in cur.description]
            rows = cur.fetchall()
        return dict(zip(cols, rows[0], strict=True)) if rows else None

    def _session_calls(self, con: Any, task_key: str) -> None:
        """Replace ``calls`` on ``con`` (from :meth:`connect`) by a table of the calls of the
        sessions ``task_key`` has calls in (wasted writes and the audit are per session).

        The snapshot knows each session's row range in the store, so only that range is
        read; when the store changed since (the count differs) every row is scanned.
        """
        sks: list[str] = []
        rng = None
        with self._lock:
            if self._has_table("t_tasks"):
                r = self._mem.execute("SELECT sks FROM t_tasks WHERE task_key = ?",
                                      [task_key]).fetchall()
                sks = list(r[0][0] or []) if r else []
            if sks and self.db is not None and self._has_table("t_sessions"):
                rng = self._mem.execute(
                    "SELECT MIN(lo), MAX(hi), SUM(n) FROM t_sessions WHERE sk = ?", [sks[0]]
                ).fetchall()[0] if len(sks) == 1 else self._mem.execute(
                    "SELECT MIN(lo), MAX(hi), SUM(n) FROM t_sessions "
                    "WHERE sk IN (SELECT unnest(?))", [sks]).fetchall()[0]
        k = _lit(task_key)
        sk_expr = "COALESCE(session_id, task_id, call_key)"
        if sks:
            cond = f"{sk_expr} IN ({', '.join(_lit(x) for x in sks)})"
        else:  # not in the snapshot yet: find its sessions
            cond = (f"{sk_expr} IN (SELECT DISTINCT {sk_expr} FROM calls "
                    f"WHERE {task_key_sql()} = {k})")
        done = False
        if rng is not None and rng[0] is not None:
            con.execute("CREATE TEMP TABLE calls_sel AS " + _store_calls(
                con, f" WHERE rowid BETWEEN {int(rng[0])} AND {int(rng[1])} AND {cond} "
                f"AND {self._range() or 'true'}"))
            n = con.execute("SELECT COUNT(*) FROM calls_sel").fetchall()[0][0]
            done = n == int(rng[2])
            if done and self._pending_spool(con):
                con.execute(f"INSERT INTO calls_sel SELECT * FROM spool_calls sc WHERE {cond} "
                            "AND sc.call_key NOT IN (SELECT call_key FROM calls_sel)")
            if not done:
                con.execute("DROP TABLE calls_sel")
        if not done:
            con.execute(f"CREATE TEMP TABLE calls_sel AS SELECT * FROM calls WHERE {cond}")
        con.execute("DROP VIEW calls")
        con.execute("ALTER TABLE calls_sel RENAME TO calls")

    def _has_table(self, name: str) -> bool:
        return bool(self._mem.execute(
            "SELECT COUNT(*) FROM duckdb_tables() WHERE table_name = ?", [name]
        ).fetchall()[0][0])

    @staticmethod
    def _pending_spool(con: Any) -> bool:
        """Whether :meth:`connect` registered spool records on ``con``."""
        import duckdb

        try:
            con.execute("SELECT 1 FROM spool_calls LIMIT 0").fetchall()
        except duckdb.CatalogException:
            return False
        return True

    def _priced_calls(self, con: Any, task_key: str) -> list[CallRow]:
        from ...analyze.engine import DuckDBEngine, price_data
        from ...analyze.source import DataSource
        from ...analyze.sql import Filters, base_cte

        f = Filters(since=self.since, until=self.until, tz=self.tz)
        eng = DuckDBEngine(DataSource(con=con, label=self.label))
        detail = price_data(eng, f, self.book).detail  # type: ignore[arg-type]
        rows = eng.query(f"""{base_cte(f, eng.dialect, detail=detail)}
SELECT pc.call_key, pc.ts, pc.model, pc.provider, pc.task_key, pc.session_id, pc.turn,
  pc.status, pc.latency_ms, pc.input_tokens, pc.cache_read_tokens, pc.cache_write_5m_tokens,
  pc.cache_write_1h_tokens, pc.output_tokens, pc.cost_usd, pc.wasted_write_tokens,
  pc.prefix_fingerprint IS NOT NULL AS has_fp, pc.expected_cache_read_tokens
FROM pc WHERE pc.task_key = {_lit(task_key)} ORDER BY pc.ts, pc.call_key""").rows
        return [CallRow(call_key=r[0], ts=r[1], model=r[2], provider=r[3], task_key=r[4],
                        session_id=r[5], turn=r[6], status=r[7], latency_ms=r[8],
                        input_tokens=int(r[9] or 0), cache_read_tokens=int(r[10] or 0),
                        cache_write_5m_tokens=int(r[11] or 0),
                        cache_write_1h_tokens=int(r[12] or 0), output_tokens=int(r[13] or 0),
                        cost_usd=r[14], wasted_write_tokens=int(r[15] or 0),
                        has_fingerprint=bool(r[16]), expected_cache_read_tokens=r[17])
                for r in rows]

    def task_calls(self, task_key: str) -> list[CallRow]:
        """The task's calls in order, each priced, with its wasted cache-write tokens."""
        with self.connect(page=True) as con:
            self._session_calls(con, task_key)
            return self._priced_calls(con, task_key)

    def call(self, call_key: str, task_key: str | None = None
             ) -> tuple[CallRow | None, dict[str, Any]]:
        """One call and its audit: ``{"findings": [...], "notes": [...], ...}``.

        ``task_key`` (the task page's links carry it) saves a scan for the call's task."""
        with self.connect(page=True) as con:
            if task_key is None:
                rows = con.execute(
                    f"SELECT {task_key_sql()} FROM calls "
                    "WHERE call_key = ?", [call_key]).fetchall()
                if not rows:
                    return None, {}
                task_key = str(rows[0][0])
            self._session_calls(con, task_key)
            calls = self._priced_calls(con, task_key)
            call = next((c for c in calls if c.call_key == call_key), None)
            if call is None:
                return None, {}
            return call, self._audit(con, call_key)

    def _audit(self, con: Any, call_key: str) -> dict[str, Any]:
        from ...analyze.audit import audit_requests
        from ...analyze.requests import STORE_REQUEST_COLUMNS, requests_from_rows

        out: dict[str, Any] = {"findings": [], "notes": [], "requests": 0}
        rows = con.execute(
            f"SELECT {', '.join(STORE_REQUEST_COLUMNS)} FROM calls "
            "WHERE prefix_fingerprint IS NOT NULL ORDER BY ts, call_key").fetchall()
        if not any(r[11] == call_key for r in rows):
            out["notes"].append(
                "this call has no prefix fingerprint (the tracker and the gateway record one "
                "from the request body; importers of provider logs cannot): the cause of a "
                "cache miss cannot be shown, only its cost")
            return out
        reqs = requests_from_rows(rows, self.label)
        index = next(i for i, r in enumerate(rows) if r[11] == call_key)
        rep = audit_requests(reqs, book=self.book)
        out["requests"] = rep.requests
        out["findings"] = [f for f in rep.findings if f.index == index]
        out["index"] = index
        out["blocks"] = _block_diff(reqs, index, out["findings"])
        if not out["findings"]:
            out["notes"].append("no cache miss found for this call: every block of its "
                                "prefix that an earlier call had cached was read")
        return out

    def whatif(self, task_type: str | None, *, model: str | None = None,
               ttl: str | None = None, history_window: int | None = None,
               caching: str | None = None) -> Any:
        """Re-price one task type (``None``: all) under another model / TTL / window."""
        from ...analyze.whatif import Scenario, whatif

        key = task_type if task_type is not None else "*"
        sc = Scenario(model_map={key: model} if model else {}, ttl=ttl,
                      history_window=history_window, caching=caching)
        # whatif groups calls by their own task type, as ``ctxbudget whatif`` does
        where = None if task_type is None else \
            f"COALESCE(task_type, '(none)') = {_lit(task_type)}"
        with self.connect(where) as con:
            return whatif(con, sc, book=self.book, source=self.label)


def _block_diff(reqs: list[Any], index: int, findings: list[Any]) -> list[dict[str, Any]]:
    """The prefix blocks of the call and of the call it was compared with, side by side."""
    if not findings or findings[0].compared_to is None:
        return []
    cur, prev = reqs[index], reqs[findings[0].compared_to]
    out = []
    for k in range(max(len(cur.blocks), len(prev.blocks))):
        a = prev.blocks[k] if k < len(prev.blocks) else None
        b = cur.blocks[k] if k < len(cur.blocks) else None
        out.append({
            "block": b.label if b is not None else a.label if a is not None else "",
            "before": None if a is None else a.canon,
            "after": None if b is None else b.canon,
            "tokens": None if b is None else b.tokens,
            "same": a is not None and b is not None and a.canon == b.canon,
        })
    return out


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def env_token() -> str | None:
    return os.environ.get("CTXBUDGET_SERVE_TOKEN") or None


def _store_tasks(con: Any) -> str:
    """``SELECT`` of the attached store's tasks with every column of
    :data:`~ctxbudget.analyze.source.TASK_COLUMNS` (NULL for those an older store lacks,
    e.g. ``blocked_by`` before migration 7)."""
    from ...analyze.source import TASK_COLUMNS

    have = {r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = 's' "
        "AND table_name = 'tasks'").fetchall()}
    cols = ", ".join(n if n in have else f"CAST(NULL AS {t}) AS {n}" for n, t in TASK_COLUMNS)
    return f"SELECT {cols} FROM s.main.tasks"


def _store_calls(con: Any, where: str = "") -> str:
    """``SELECT`` of the attached store's calls (``where``: a ``WHERE`` clause on them) with
    every column of :data:`~ctxbudget.store.schema.CALL_COLUMNS`: NULL for those an older
    store, attached read-only and so not migrated, lacks."""
    from ...store.schema import CALL_COLUMNS

    have = {r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = 's' "
        "AND table_name = 'calls'").fetchall()}
    if all(n in have for n, _ in CALL_COLUMNS):
        return f"SELECT * FROM s.main.calls{where}"
    cols = ", ".join(n if n in have else f"CAST(NULL AS {t}) AS {n}" for n, t in CALL_COLUMNS)
    return f"SELECT {cols} FROM s.main.calls{where}"
