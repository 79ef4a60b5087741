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
from ..usage import (
    DETAIL_FIELDS,
    FUTURE_SLACK,
    MAX_LATENCY_MS,
    MAX_TOKENS,
    MAX_TURN,
    MIN_TS,
    MODALITY_FIELDS,
    Call,
    Task,
)
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
    quarantined: int = 0
    """Lines kept aside in the store's ``quarantine`` table by this run (= ``rejected``)."""
    quarantine_total: int = 0
    """Lines in the store's ``quarantine`` table after this run (all sources)."""

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "calls": self.calls, "tasks": self.tasks,
                "rejected": self.rejected, "rejected_at": list(self.rejected_at),
                "quarantined": self.quarantined, "quarantine_total": self.quarantine_total,
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


#: Characters of a quarantined line kept in the store.
QUARANTINE_KEEP = 4096


def check_ts(v: Any, name: str) -> datetime:
    """An ISO 8601 timestamp with a zone, between 2020 and tomorrow; else ValueError."""
    if type(v) is not str:
        raise ValueError(f"{name} must be an ISO 8601 string, got {v!r}")
    t = datetime.fromisoformat(v)
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} has no time zone: {v!r}")
    if not MIN_TS <= t <= datetime.now(UTC) + FUTURE_SLACK:
        raise ValueError(f"{name} out of range (2020 .. now): {v!r}")
    return t


def _check_text(v: Any) -> None:
    if v is None:
        return
    if type(v) is not str:
        raise ValueError(f"expected a string, got {v!r}")
    if not v.isascii():
        v.encode()  # a lone surrogate from a "\\udXXX" escape raises UnicodeEncodeError



_NO_DETAIL = (None,) * (len(DETAIL_FIELDS) + 1)
_DETAIL_INDEX = {n: i for i, n in enumerate(DETAIL_FIELDS)}
#: (index in DETAIL_FIELDS, index of its bucket in ``u``) of every modality field
_SUBSETS = tuple((_DETAIL_INDEX[f], ("input_tokens", "cache_read_tokens", "cache_write_5m_tokens",
                                     "cache_write_1h_tokens", "output_tokens").index(b))
                 for f, b, _ in MODALITY_FIELDS)


def _detail(detail: Any, other: Any, u: list[int]) -> tuple[Any, ...]:
    """The detail columns of a call line (``d``: Usage detail fields, ``o``: other billed
    counters) in :data:`~.schema.CALL_COLUMNS` order; ValueError when malformed."""
    if detail is None and other is None:
        return _NO_DETAIL
    vals: list[Any] = [None] * len(DETAIL_FIELDS)
    if detail is not None:
        if type(detail) is not dict:
            raise ValueError("d must be an object of usage detail counts")
        for k, v in detail.items():
            i = _DETAIL_INDEX.get(k)
            if i is None:
                raise ValueError(f"d: unknown usage detail field {k!r}")
            if type(v) is not int or not 0 <= v <= MAX_TOKENS:
                raise ValueError(f"d[{k!r}] must be an integer in 0..{MAX_TOKENS:.0e}, got {v!r}")
            vals[i] = v
        parts = [0] * 5
        for i, b in _SUBSETS:
            parts[b] += vals[i] or 0
        if any(p > u[b] for b, p in enumerate(parts)):
            raise ValueError("d: modality tokens exceed their bucket")
    if other is not None:
        if type(other) is not dict or not other:
            raise ValueError("o must be a non-empty object of counts")
        for k, v in other.items():
            _check_text(k)
            if type(v) is not int or not 0 <= v <= MAX_TOKENS:
                raise ValueError(f"o[{k!r}] must be an integer in 0..{MAX_TOKENS:.0e}, got {v!r}")
    return (*vals, _json_col(other))


class _Columns:
    """Call rows of one chunk, validated per line, turned into the store's column layout."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.index: dict[str, int] = {}
        self.lines: list[int] = []
        """Spool line number of each row (for quarantine)."""
        self.line = 0

    def add(self, d: dict[str, Any]) -> None:
        u = d["u"]
        if type(u) is not list or len(u) != 6:
            raise ValueError("u must be a list of 6 token counts")
        for x in u:
            if type(x) is not int or not 0 <= x <= MAX_TOKENS:
                raise ValueError(f"token counts must be integers in 0..{MAX_TOKENS:.0e}, "
                                 f"got {x!r}")
        if u[5] > u[4]:
            raise ValueError("reasoning tokens exceed output tokens")
        ts = d["ts"]
        check_ts(ts, "ts")
        g = d.get
        provider, model = d["provider"], d["model"]
        texts = (provider, model, g("task_id"), g("session_id"), g("task_type"),
                 g("request_id"), g("service_tier"))
        for v in texts:
            _check_text(v)
        if not provider or not model:
            raise ValueError("provider and model are required")
        lat = g("latency_ms")
        if lat is not None and (type(lat) not in (int, float) or not 0 <= lat <= MAX_LATENCY_MS):
            raise ValueError(f"latency_ms must be a number in 0..{MAX_LATENCY_MS:.0e}, "
                             f"got {lat!r}")
        turn, ecr, incl = g("turn"), g("expected_cache_read_tokens"), g("input_inclusive")
        if turn is not None and (type(turn) is not int or not 0 <= turn <= MAX_TURN):
            raise ValueError(f"turn must be an integer in 0..2^31-1, got {turn!r}")
        if ecr is not None and (type(ecr) is not int or not 0 <= ecr <= MAX_TOKENS):
            raise ValueError(f"expected_cache_read_tokens must be an integer in "
                             f"0..{MAX_TOKENS:.0e}, got {ecr!r}")
        if incl is not None and type(incl) is not bool:
            raise ValueError(f"input_inclusive must be a boolean, got {incl!r}")
        comps, fp, meta = g("components"), g("prefix_fingerprint"), g("meta")
        if (comps is not None and type(comps) is not dict) or (
                fp is not None and type(fp) is not list) or (
                meta is not None and type(meta) is not dict):
            raise ValueError("components / meta must be objects, prefix_fingerprint a list")
        if comps:
            for k, v in comps.items():
                if type(v) is not int or not 0 <= v <= MAX_TOKENS:
                    raise ValueError(f"components[{k!r}] must be a token count, got {v!r}")
        rid = d["rid"]
        if type(rid) not in (str, int):
            raise ValueError(f"rid must be a string, got {rid!r}")
        key = f"track:{rid}"
        _check_text(key)
        status, source = str(g("status", "ok")), str(g("source", "track"))
        _check_text(status)
        _check_text(source)
        row = (key, ts, provider, model, texts[2], texts[3], texts[4], texts[5],
               u[0], u[1], u[2], u[3], u[4], u[5],
               None if lat is None else float(lat), status, source, texts[6], turn,
               _json_col(comps), _json_col(fp), ecr, incl, _json_col(meta),
               *_detail(g("d"), g("o"), u))
        at = self.index.get(key)
        if at is None:
            self.index[key] = len(self.rows)
            self.rows.append(row)
            self.lines.append(self.line)
        else:  # the same record twice in one chunk: keep the last
            self.rows[at] = row
            self.lines[at] = self.line

    def __len__(self) -> int:
        return len(self.rows)

    def table(self) -> Any:
        """The rows as an Arrow table (raises if a value does not fit its column)."""
        return _table(self.rows)

    def tables(self, quarantine: list[tuple[int, str, str]], raw: list[bytes],
               first_line: int) -> Any:
        """Like :meth:`table`, but a row Arrow refuses is moved to ``quarantine``."""
        try:
            return self.table()
        except Exception:
            pass
        good = []
        for row, line in zip(self.rows, self.lines, strict=True):
            try:
                _table([row])
            except Exception as exc:
                quarantine.append((line, f"{type(exc).__name__}: {str(exc)[:200]}",
                                   _raw_text(raw[line - first_line])))
            else:
                good.append(row)
        return _table(good) if good else None


def _table(rows: list[tuple[Any, ...]]) -> Any:
    import pyarrow as pa

    cols = list(zip(*rows, strict=True))
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


def _raw_text(raw: bytes) -> str:
    return raw[:QUARANTINE_KEEP].decode("utf-8", errors="replace")


@dataclass(slots=True)
class _Chunk:
    """One chunk's records, validated, plus the lines that could not be stored."""

    calls: _Columns
    tasks: dict[str, Task]
    quarantine: list[tuple[int, str, str]]
    """(line, reason, raw text) of every line that was not stored."""
    table: Any = None
    """The calls as an Arrow table (``None`` when the chunk has none)."""


def _parse_fast(chunk: bytes, first_line: int) -> _Chunk | None:
    """The whole chunk decoded by msgspec (typed, range-checked); ``None`` when any line is
    not a valid record (the caller then reads the chunk line by line, quarantining)."""
    from ._spoolfast import DECODER, TaskLine

    try:
        recs: list[Any] = DECODER.decode_lines(chunk)
    except Exception:
        return None
    cols = _Columns()
    tasks: dict[str, Task] = {}
    index = cols.index
    rows = cols.rows
    lines = cols.lines
    checked: dict[str, None] = {}
    try:
        for i, r in enumerate(recs):
            if type(r) is TaskLine:
                outcome = r.outcome
                if outcome is not None and outcome not in _OUTCOMES:
                    return None
                for v in (r.started_at, r.ended_at):
                    if v is not None and v not in checked:
                        check_ts(v, "ts")
                        checked[v] = None
                tasks[r.task_id] = Task(
                    task_id=r.task_id, task_type=r.task_type, outcome=outcome,  # type: ignore[arg-type]
                    started_at=None if r.started_at is None else datetime.fromisoformat(
                        r.started_at),
                    ended_at=None if r.ended_at is None else datetime.fromisoformat(r.ended_at),
                    session_id=r.session_id, parent_id=r.parent_id, blocked_by=r.blocked_by)
                continue
            u = r.u
            if u[5] > u[4]:
                return None
            ts = r.ts
            if ts not in checked:
                check_ts(ts, "ts")
                checked[ts] = None
            key = f"track:{r.rid}"
            comps, fp, meta = r.components, r.prefix_fingerprint, r.meta
            lat = r.latency_ms
            row = (key, ts, r.provider, r.model, r.task_id, r.session_id, r.task_type,
                   r.request_id, u[0], u[1], u[2], u[3], u[4], u[5],
                   None if lat is None else float(lat), r.status, r.source, r.service_tier,
                   r.turn, _json_col(comps) if comps else None,
                   _json_col(fp) if fp else None, r.expected_cache_read_tokens,
                   r.input_inclusive, _json_col(meta) if meta else None,
                   *(_NO_DETAIL if r.d is None and r.o is None else _detail(r.d, r.o, u)))
            at = index.get(key)
            if at is None:
                index[key] = len(rows)
                rows.append(row)
                lines.append(first_line + i)
            else:
                rows[at] = row
                lines[at] = first_line + i
        table = _table(rows) if rows else None
    except Exception:
        return None
    return _Chunk(calls=cols, tasks=tasks, quarantine=[], table=table)


def _parse(chunk: bytes, name: str, first_line: int, report: SpoolReport) -> _Chunk:
    fast = _parse_fast(chunk, first_line)
    if fast is not None:
        return fast
    cols = _Columns()
    tasks: dict[str, Task] = {}
    bad: list[tuple[int, str, str]] = []
    lines = chunk.split(b"\n")
    lines.pop()  # chunk ends with b"\n"
    for i, raw in enumerate(lines):
        try:
            d = json.loads(raw)
            if type(d) is not dict:
                raise ValueError("not a JSON object")
            kind = d["k"]
            if kind == "c":
                cols.line = first_line + i
                cols.add(d)
            elif kind == "t":
                t = _task(d)
                tasks[t.task_id] = t
            else:
                raise ValueError(f"unknown record kind {kind!r}")
        except Exception as exc:
            reason = f"{type(exc).__name__}: {str(exc)[:200]}"
            if isinstance(exc, KeyError):
                reason = f"missing field {exc.args[0]!r}"
            bad.append((first_line + i, reason, _raw_text(raw)))
    out = _Chunk(calls=cols, tasks=tasks, quarantine=bad,
                 table=cols.tables(bad, lines, first_line) if len(cols) else None)
    for line, reason, _ in bad:
        report.rejected += 1
        if len(report.rejected_at) < MAX_REPORTED:
            report.rejected_at.append(f"{name}:{line}: {reason}")
    return out


def _task(d: dict[str, Any]) -> Task:
    tid = d["task_id"]
    if type(tid) is not str or not tid:
        raise ValueError(f"task_id must be a non-empty string, got {tid!r}")
    for k in ("task_type", "outcome", "session_id", "parent_id"):
        _check_text(d.get(k))
    _check_text(tid)
    for k in ("started_at", "ended_at"):
        if d.get(k) is not None:
            check_ts(d[k], k)
    if d.get("outcome") is not None and d["outcome"] not in _OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(_OUTCOMES)}, got {d['outcome']!r}")
    return task_from_line(d)


_OUTCOMES = ("success", "partial", "failure", "blocked")


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


def _write_chunk(store: Store, name: str, chunk: _Chunk, offset: int, lines: int,
                 rejected: int) -> None:
    """Calls, tasks, quarantined lines and the new offset of one chunk, in one transaction:
    a crash leaves either all of it or none (then the chunk is read again)."""
    now = datetime.now(UTC)
    with store.transaction():
        if chunk.table is not None and chunk.table.num_rows:
            store.add_new_calls(chunk.table)
        if chunk.tasks:
            store.upsert_tasks(chunk.tasks.values(), source="track")
        if chunk.quarantine:
            store.quarantine("spool", name, chunk.quarantine, now)
        store.con.execute(
            'INSERT OR REPLACE INTO spool_offsets (file, "offset", lines, rejected, done, '
            "updated_at) VALUES (?, ?, ?, ?, false, ?)", [name, offset, lines, rejected, now])


def _ingest_file(store: Store, path: Path, name: str, offset: int, lines: int, rejected: int,
                 report: SpoolReport, chunk_bytes: int) -> tuple[int, int]:
    """Ingest ``path`` from ``offset`` to its current end; return (new offset, bytes left)."""
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
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
            parsed = _parse(chunk, name, lines + 1, report)
            offset += end
            lines += chunk.count(b"\n")
            rejected += len(parsed.quarantine)
            _write_chunk(store, name, parsed, offset, lines, rejected)
            report.calls += 0 if parsed.table is None else parsed.table.num_rows
            report.tasks += len(parsed.tasks)
            report.quarantined += len(parsed.quarantine)
    return offset, size - offset


def ingest_spool(
    db: Path | str | Store | None = None,
    spool: Path | str | None = None,
    *,
    retire: bool = True,
    chunk_bytes: int = CHUNK_BYTES,
    redo: bool = False,
    timeout: float | None = None,
) -> SpoolReport:
    """Fold new spool records into the store at ``db`` (default ``$CTXBUDGET_HOME/usage.duckdb``,
    or an open :class:`Store`). Safe to call any time, from any process, any number of times.

    ``redo`` also reads retired ``*.jsonl.done`` files this store has no record of (after
    the store was lost or replaced); re-reading a record never adds a second row.
    ``timeout``: seconds to wait for another command holding the store."""
    d = Path(spool) if spool is not None else default_spool_dir()
    report = SpoolReport()
    if not d.is_dir():
        return report
    own = not isinstance(db, Store)
    store = open_store(db, timeout=timeout) if not isinstance(db, Store) else db
    try:
        done = {r[0]: (int(r[1]), int(r[2]), int(r[3]), bool(r[4])) for r in store.con.execute(
            'SELECT file, "offset", lines, rejected, done FROM spool_offsets').fetchall()}
        paths = sorted(d.glob("*.jsonl"))
        if redo:
            paths += [p for p in sorted(d.glob("*.jsonl.done"))
                      if not done.get(p.name[:-5], (0, 0, 0, False))[3]]
        for path in paths:
            report.files += 1
            name = path.name[:-5] if path.name.endswith(".done") else path.name
            offset, lines, rejected, _ = done.get(name, (0, 0, 0, False))
            # the writer-alive check comes first: a writer found gone can add no byte
            # after it, so reading to the end of the file then leaves nothing behind
            gone = retire and not _pid_alive(name)
            try:
                offset, left = _ingest_file(store, path, name, offset, lines, rejected, report,
                                            chunk_bytes)
            except FileNotFoundError:  # retired by a concurrent ingester
                continue
            if gone or path.name.endswith(".done"):
                report.torn_bytes += left
                if not path.name.endswith(".done"):
                    try:
                        path.rename(path.with_name(name + ".done"))
                    except FileNotFoundError:  # retired by a concurrent ingester
                        continue
                    except OSError as exc:
                        raise StoreError(f"{path}: cannot retire spool file: {exc}") from exc
                    report.retired += 1
                store.con.execute("UPDATE spool_offsets SET done = true WHERE file = ?", [name])
        report.quarantine_total = store.quarantined()
    finally:
        if own:
            store.close()
    return report
