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
from .db import Store, calls_to_arrow, open_store

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


def _parse(chunk: bytes, name: str, first_line: int, report: SpoolReport
           ) -> tuple[dict[str, Call], dict[str, Task]]:
    calls: dict[str, Call] = {}
    tasks: dict[str, Task] = {}
    lines = chunk.split(b"\n")
    lines.pop()  # chunk ends with b"\n"
    for i, raw in enumerate(lines):
        try:
            d = json.loads(raw)
            kind = d["k"]
            if kind == "c":
                rid, call = call_from_line(d)
                calls[f"track:{rid}"] = call
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
    return calls, tasks


def read_spool(spool: Path | str | None = None) -> tuple[list[Call], list[Task], SpoolReport]:
    """Every complete record in the spool directory (no store involved; for tests and
    tools). Includes ``.done`` files."""
    d = Path(spool) if spool is not None else default_spool_dir()
    report = SpoolReport()
    calls: list[Call] = []
    tasks: list[Task] = []
    for path in sorted(d.glob("*.jsonl*")) if d.is_dir() else []:
        report.files += 1
        data = path.read_bytes()
        end = data.rfind(b"\n") + 1
        c, t = _parse(data[:end], path.name, 1, report)
        calls.extend(c.values())
        tasks.extend(t.values())
    report.calls, report.tasks = len(calls), len(tasks)
    return calls, tasks, report


def _insert(store: Store, calls: dict[str, Call], tasks: dict[str, Task]) -> None:
    if calls:
        import pyarrow as pa

        table = calls_to_arrow(list(calls.values()))
        table = table.set_column(0, "call_key", pa.array(list(calls), pa.string()))
        store.insert_arrow(table)
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
                except OSError as exc:
                    raise StoreError(f"{path}: cannot retire spool file: {exc}") from exc
                store.con.execute("UPDATE spool_offsets SET done = true WHERE file = ?",
                                  [path.name])
                report.retired += 1
    finally:
        if own:
            store.close()
    return report
