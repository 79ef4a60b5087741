"""Fold the tracker's spool (``$CTXBUDGET_HOME/spool/*.jsonl``) into the DuckDB store.

Idempotent and incremental:

* each spool file's ingested prefix (bytes up to just after a newline, and its line
  count) is remembered in ``spool_offsets`` (migration 2), so a second run reads
  only what was appended since;
* calls are keyed ``track:<rid>`` (``rid`` is unique per record, written by the
  tracker) and inserted with ``INSERT OR REPLACE``: re-reading a line — e.g. after a
  crash between the insert and the offset update — replaces the row, never adds one;
* a last line without its ``\\n`` (a write in progress, or cut by a crash) is left for
  the next run; a complete line that is not a valid record is skipped and reported as
  ``file:line`` (``rejected``) — nothing after it is lost;
* files whose writer process is gone and that are fully ingested are renamed
  ``*.jsonl.done`` (``retire=True``), so the spool does not grow forever. A torn tail
  of such a file (its last write cut by ``SIGKILL``) is counted in ``torn_bytes``.

Files are read in chunks of ``chunk_bytes`` so memory stays flat for large spools.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..track._spoolfmt import call_from_line, task_from_line
from ..track._writer import default_spool_dir
from ..usage import Call, Task
from .db import Store, open_store
from .schema import CALL_COLUMNS

__all__ = ["SpoolReport", "ingest_spool", "read_spool"]

CHUNK_BYTES = 32 * 1024 * 1024
MAX_REPORTED = 50


@dataclass(slots=True, kw_only=True)
class SpoolReport:
    """What one ingestion did."""

    files: int = 0
    """Spool files looked at."""
    calls: int = 0
    """Call records read (and inserted or replaced) in this run."""
    tasks: int = 0
    rejected: int = 0
    """Complete lines that were not valid records (skipped)."""
    rejected_at: list[str] = field(default_factory=list)
    """``file:line: reason`` of the first rejected lines."""
    torn_bytes: int = 0
    """Bytes of torn last lines left in retired files (a write cut by a crash)."""
    retired: int = 0
    """Files renamed ``.done`` (fully ingested, writer process gone)."""

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "calls": self.calls, "tasks": self.tasks,
                "rejected": self.rejected, "rejected_at": list(self.rejected_at),
                "torn_bytes": self.torn_bytes, "retired": self.retired}


def _pid_alive(name: str) -> bool:
    try:
        pid = int(name.split("-", 1)[0])
    except ValueError:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_ARROW_TYPES = {"VARCHAR": "string", "BIGINT": "int64", "INTEGER": "int32", "DOUBLE": "float64",
                "BOOLEAN": "bool_"}


def _json_col(v: Any) -> str | None:
    # the same text calls_to_arrow writes for these columns
    return None if not v else json.dumps(v, sort_keys=True, separators=(",", ":"))


_STR = (str, type(None))
_INT_N = (int, type(None))


class _Columns:
    """Call rows of one chunk, validated per line, turned into the store's column layout."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.index: dict[str, int] = {}

    def add(self, d: dict[str, Any]) -> None:
        u = d["u"]
        if type(u) is not list or len(u) != 6:
            raise ValueError("u must be a list of 6 token counts")
        for x in u:
            if type(x) is not int or x < 0:
                raise ValueError(f"token counts must be non-negative integers, got {x!r}")
        if u[5] > u[4]:
            raise ValueError("reasoning tokens exceed output tokens")
        ts = d["ts"]
        datetime.fromisoformat(ts)  # validates; Arrow parses the column in one go
        g = d.get
        provider, model = d["provider"], d["model"]
        texts = (provider, model, g("task_id"), g("session_id"), g("task_type"),
                 g("request_id"), g("service_tier"))
        for v in texts:
            if not isinstance(v, _STR):
                raise ValueError(f"expected a string, got {v!r}")
        if not provider or not model:
            raise ValueError("provider and model are required")
        lat = g("latency_ms")
        if lat is not None and (type(lat) not in (int, float)):
            raise ValueError(f"latency_ms must be a number, got {lat!r}")
        turn, ecr, incl = g("turn"), g("expected_cache_read_tokens"), g("input_inclusive")
        for v in (turn, ecr):
            if not isinstance(v, _INT_N) or isinstance(v, bool):
                raise ValueError(f"expected an integer, got {v!r}")
        if incl is not None and type(incl) is not bool:
            raise ValueError(f"input_inclusive must be a boolean, got {incl!r}")
        comps, fp, meta = g("components"), g("prefix_fingerprint"), g("meta")
        if (comps is not None and type(comps) is not dict) or (
                fp is not None and type(fp) is not list) or (
                meta is not None and type(meta) is not dict):
            raise ValueError("components / meta must be objects, prefix_fingerprint a list")
        key = f"track:{d['rid']}"
        row = (key, ts, provider, model, texts[2], texts[3], texts[4], texts[5],
               u[0], u[1], u[2], u[3], u[4], u[5],
               None if lat is None else float(lat), str(g("status", "ok")),
               str(g("source", "track")), texts[6], turn, _json_col(comps), _json_col(fp),
               ecr, incl, _json_col(meta))
        at = self.index.get(key)
        if at is None:
            self.index[key] = len(self.rows)
            self.rows.append(row)
        else:  # the same record twice in one chunk: keep the last
            self.rows[at] = row

    def __len__(self) -> int:
        return len(self.rows)

    def table(self) -> Any:
        import pyarrow as pa

        cols = list(zip(*self.rows, strict=True))
        arrays = []
        fields = []
        for (n, t), values in zip(CALL_COLUMNS, cols, strict=True):
            if t == "TIMESTAMPTZ":
                typ = pa.timestamp("us", tz="UTC")
                arr = pa.array(values, pa.string()).cast(typ)
            else:
                typ = getattr(pa, _ARROW_TYPES[t])()
                arr = pa.array(values, typ)
            arrays.append(arr)
            fields.append((n, typ))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _parse(chunk: bytes, name: str, first_line: int, report: SpoolReport
           ) -> tuple[_Columns, dict[str, Task]]:
    cols = _Columns()
    tasks: dict[str, Task] = {}
    lines = chunk.split(b"\n")
    lines.pop()  # chunk ends with b"\n"
    for i, raw in enumerate(lines):
        try:
            d = json.loads(raw)
            kind = d["k"]
            if kind == "c":
                cols.add(d)
            elif kind == "t":
                t = task_from_line(d)
                tasks[t.task_id] = t
            else:
                raise ValueError(f"unknown record kind {kind!r}")
        except Exception as exc:
            report.rejected += 1
            if len(report.rejected_at) < MAX_REPORTED:
                report.rejected_at.append(f"{name}:{first_line + i}: {type(exc).__name__}: "
                                          f"{str(exc)[:200]}")
    return cols, tasks


def read_spool(spool: Path | str | None = None) -> tuple[list[Call], list[Task], SpoolReport]:
    """Every complete record in the spool directory as objects (no store involved; for tests
    and tools). Includes ``.done`` files; rejected lines are counted in the report."""
    d = Path(spool) if spool is not None else default_spool_dir()
    report = SpoolReport()
    calls: list[Call] = []
    tasks: list[Task] = []
    for path in sorted(d.glob("*.jsonl*")) if d.is_dir() else []:
        report.files += 1
        data = path.read_bytes()
        for i, raw in enumerate(data[:data.rfind(b"\n") + 1].split(b"\n")[:-1]):
            try:
                rec = json.loads(raw)
                if rec["k"] == "c":
                    calls.append(call_from_line(rec)[1])
                elif rec["k"] == "t":
                    tasks.append(task_from_line(rec))
                else:
                    raise ValueError(f"unknown record kind {rec['k']!r}")
            except Exception as exc:
                report.rejected += 1
                if len(report.rejected_at) < MAX_REPORTED:
                    report.rejected_at.append(f"{path.name}:{i + 1}: {exc}")
    report.calls, report.tasks = len(calls), len(tasks)
    return calls, tasks, report


def _insert(store: Store, calls: _Columns, tasks: dict[str, Task]) -> None:
    if len(calls):
        store.insert_arrow(calls.table())
    if tasks:
        store.upsert_tasks(tasks.values(), source="track")


def _ingest_file(store: Store, path: Path, offset: int, lines: int, report: SpoolReport,
                 chunk_bytes: int) -> tuple[int, int, int]:
    """Ingest ``path`` from ``offset``; return (new offset, new line count, bytes left)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        while offset < size:
            f.seek(offset)
            data = f.read(min(chunk_bytes, size - offset))
            end = data.rfind(b"\n") + 1
            if end == 0:
                if len(data) == size - offset:
                    break  # only a partial last line remains
                data = data + f.read(size - offset - len(data))  # one line longer than chunk
                end = data.rfind(b"\n") + 1
                if end == 0:
                    break
            chunk = data[:end]
            calls, tasks = _parse(chunk, path.name, lines + 1, report)
            _insert(store, calls, tasks)
            report.calls += len(calls)
            report.tasks += len(tasks)
            offset += end
            lines += chunk.count(b"\n")
            store.con.execute(
                'INSERT OR REPLACE INTO spool_offsets (file, "offset", lines, rejected, done, '
                "updated_at) VALUES (?, ?, ?, ?, false, ?)",
                [path.name, offset, lines, report.rejected, datetime.now(UTC)])
    return offset, lines, size - offset


def ingest_spool(
    db: Path | str | Store | None = None,
    spool: Path | str | None = None,
    *,
    retire: bool = True,
    chunk_bytes: int = CHUNK_BYTES,
) -> SpoolReport:
    """Fold new spool records into the store at ``db`` (default ``$CTXBUDGET_HOME/usage.duckdb``,
    or an open :class:`Store`). Safe to call any time, from any process, any number of times."""
    d = Path(spool) if spool is not None else default_spool_dir()
    report = SpoolReport()
    if not d.is_dir():
        return report
    own = not isinstance(db, Store)
    store = open_store(db) if not isinstance(db, Store) else db
    try:
        done = {r[0]: (int(r[1]), int(r[2])) for r in store.con.execute(
            'SELECT file, "offset", lines FROM spool_offsets').fetchall()}
        for path in sorted(d.glob("*.jsonl")):
            report.files += 1
            offset, lines = done.get(path.name, (0, 0))
            try:
                offset, lines, left = _ingest_file(store, path, offset, lines, report,
                                                   chunk_bytes)
            except FileNotFoundError:  # retired by a concurrent ingester
                continue
            if retire and not _pid_alive(path.name):
                report.torn_bytes += left
                try:
                    path.rename(path.with_name(path.name + ".done"))
                except FileNotFoundError:  # retired by a concurrent ingester
                    continue
                except OSError as exc:
                    raise StoreError(f"{path}: cannot retire spool file: {exc}") from exc
                store.con.execute("UPDATE spool_offsets SET done = true WHERE file = ?",
                                  [path.name])
                report.retired += 1
    finally:
        if own:
            store.close()
    return report
