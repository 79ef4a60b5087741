"""The generic (Python, line-by-line) import loop shared by every importer.

Streams each file record by record, converts, de-duplicates by ``call_key`` and
writes batches to the store with ``INSERT OR REPLACE``. Batches are flushed only
at file boundaries, so every copy of a call written within one file (streaming
copies in a Claude Code log) meets the others in memory and the importer's
:meth:`~Importer.rank` picks the final one; across batches the later file wins.
Memory is bounded by one batch plus one 8-byte hash per distinct call (to count
duplicates).

Append-aware reading: an importer whose format is append-only JSON Lines
(``appendable = True``: Claude Code, Codex) is read from where the last import
stopped. The ``imports`` table keeps, per file, the byte offset read up to
(``size_bytes``), a fingerprint of the bytes just before it (:func:`tail_hash`) and,
for a stateful reader, its state there (:meth:`Importer.file_state`). A file that
grew and still has the same bytes before the offset is read from the offset; one
whose fingerprint differs (truncated, rewritten) is read whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import InputFormatError, UsageError
from ..usage import Call, check_sane
from ._base import STDIN, Importer, ImportStats, Record, Rejection, Skip, decode_json_line
from ._tail import TAIL_BYTES, tail_hash

__all__ = ["FLUSH_CALLS", "TAIL_BYTES", "FileRead", "Imported", "StrictStop", "file_signature",
           "import_files", "imported_signatures", "record_imports", "resume_offset", "tail_hash"]



@dataclass(frozen=True, slots=True)
class Imported:
    """What the ``imports`` table remembers of a file."""

    size: int
    """Bytes read (the offset the next import reads on from)."""
    mtime: float
    lines: int
    calls: int
    tail: int | None
    """:func:`tail_hash` at ``size`` (``None``: written before append-aware imports)."""
    state: Any = None
    """The reader's state at ``size`` (stateful formats), decoded JSON."""


@dataclass(slots=True)
class FileRead:
    """One file an import read: counts, and where it stopped (for the next import)."""

    path: Path
    lines: int
    calls: int
    rejected: int
    size: int | None = None
    """Offset read up to (``None``: the file's size after the import, when the reader
    cannot tell)."""
    mtime: float | None = None
    tail: int | None = None
    state: Any = None

#: Calls kept in memory before a flush at the next file boundary.
FLUSH_CALLS = 50_000

Progress = Callable[[int], None]


class StrictStop(InputFormatError):
    """``--strict``: the first rejected record stops the import (nothing is written
    from the batch that held it)."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(str(rejection))
        self.rejection = rejection


class _Batch:
    """Calls of the current batch keyed by ``call_key`` with their rank."""

    def __init__(self, importer: Importer) -> None:
        self.importer = importer
        self.calls: dict[str, tuple[Any, Call]] = {}

    def add(self, key: str, call: Call) -> None:
        rank = self.importer.rank(call)
        old = self.calls.get(key)
        if old is None or rank >= old[0]:
            self.calls[key] = (rank, call)


def import_files(
    importer: Importer,
    files: Sequence[Path],
    store: Any,
    stats: ImportStats,
    *,
    strict: bool = False,
    progress: Progress | None = None,
    starts: dict[Path, Imported] | None = None,
) -> None:
    """Import ``files`` with the Python path, updating ``stats`` and the store
    (``starts``: files read on from a previous import's offset)."""
    from ..store.db import call_key

    batch = _Batch(importer)
    seen: set[int] = set()
    per_file: list[FileRead] = []

    def flush() -> None:
        if batch.calls:
            store.insert_calls([c for _, c in batch.calls.values()])
            batch.calls.clear()
        record_imports(store, importer.name, per_file)
        per_file.clear()

    for path in files:
        stats.files += 1
        f_lines = f_calls = f_rej = 0
        prev = (starts or {}).get(path)
        read = FileRead(path, 0, 0, 0)
        if importer.appendable and path != STDIN:
            if prev is not None:
                importer.resume(path, prev.state)
            records: Iterator[Record] = _jsonl_from(path, prev, read)
        else:
            records = iter(importer.records(path))
        for rec in records:
            stats.lines += 1
            f_lines += 1
            if progress is not None and rec.nbytes:
                progress(rec.nbytes)
            try:
                if isinstance(rec.value, Exception):
                    raise rec.value
                for out in importer.convert(rec):
                    if isinstance(out, Skip):
                        stats.skip(out.reason)
                        continue
                    check_sane(out)
                    key = call_key(out)
                    stats.calls += 1
                    f_calls += 1
                    h = hash(key)
                    if h in seen:
                        stats.duplicates += 1
                    else:
                        seen.add(h)
                    batch.add(key, out)
            except (InputFormatError, UsageError, ValueError, TypeError, KeyError,
                    OverflowError, RecursionError) as exc:
                reason = _reason(exc)
                if rec.item is not None:
                    reason = f"item {rec.item}: {reason}"
                r = Rejection(path=str(path), line=rec.line, reason=reason)
                if strict:
                    raise StrictStop(r) from None
                stats.reject(r)
                f_rej += 1
        read.lines, read.calls, read.rejected = f_lines, f_calls, f_rej
        if prev is not None:
            read.lines += prev.lines
            read.calls += prev.calls
        if importer.appendable:
            read.state = importer.file_state(path)
        per_file.append(read)
        if len(batch.calls) >= FLUSH_CALLS:
            flush()
    flush()
    stats.accepted = stats.calls - stats.duplicates


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    msg = str(exc) or type(exc).__name__
    return msg.splitlines()[0]


def _jsonl_from(path: Path, prev: Imported | None, read: FileRead) -> Iterator[Record]:
    """The JSON Lines records of ``path`` from ``prev``'s offset (else the start) to the
    size it has now, recording in ``read`` where it stopped. Line numbers count from
    the file's start (the lines before the offset are counted, not parsed)."""
    with path.open("rb") as fh:
        st = os.fstat(fh.fileno())
        start = prev.size if prev is not None else 0
        no = _count_newlines(fh, start) if start else 0
        fh.seek(start)
        left = st.st_size - start
        pos = start
        while left > 0:
            raw = fh.readline(left)
            if not raw:
                break
            left -= len(raw)
            pos += len(raw)
            no += 1
            text = raw.strip()
            if text:
                yield Record(path=path, line=no, value=decode_json_line(text), nbytes=len(raw))
        read.size, read.mtime = pos, st.st_mtime
        read.tail = tail_hash(fh, pos)


def _count_newlines(fh: Any, end: int) -> int:
    fh.seek(0)
    n, left = 0, end
    while left > 0:
        block = fh.read(min(left, 1 << 20))
        if not block:
            break
        n += block.count(b"\n")
        left -= len(block)
    return n


def file_signature(path: Path) -> tuple[int, float] | None:
    """(size, mtime) of a file, ``None`` for stdin or a vanished file."""
    if path == STDIN:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime


def imported_signatures(store: Any, fmt: str) -> dict[str, Imported]:
    """Files the ``imports`` table holds for ``fmt`` without rejected lines, by
    absolute path."""
    rows = store.con.execute(
        "SELECT path, size_bytes, mtime, lines, accepted, tail_hash, state FROM imports "
        "WHERE format = ? AND rejected = 0", [fmt]).fetchall()
    return {p: Imported(int(s), float(m), int(n or 0), int(a or 0),
                        None if t is None else int(t), None if st is None else json.loads(st))
            for p, s, m, n, a, t, st in rows}


def resume_offset(path: Path, prev: Imported) -> int | None:
    """Where to read ``path`` on from: ``prev.size`` when the file grew and its bytes
    before that offset are the ones read then; ``None`` (read it whole) otherwise."""
    if prev.tail is None:
        return None
    try:
        with path.open("rb") as fh:
            if os.fstat(fh.fileno()).st_size <= prev.size:
                return None
            return prev.size if tail_hash(fh, prev.size) == prev.tail else None
    except OSError:
        return None


def record_imports(store: Any, fmt: str,
                   files: Sequence[FileRead | tuple[Path, int, int, int]]) -> None:
    """Remember imported files, one row per file and format (a re-import replaces the
    row): a :class:`FileRead`, or (path, lines, calls, rejected) for a reader that
    cannot tell where it stopped (the file's size and mtime now are recorded)."""
    rows = []
    now = datetime.now(UTC)
    for f in files:
        read = f if isinstance(f, FileRead) else FileRead(*f)
        path = read.path
        if path == STDIN:
            continue
        if read.size is None or read.mtime is None:
            sig = file_signature(path)
            if sig is None:
                continue
            size, mtime = sig
        else:
            size, mtime = read.size, read.mtime
        key = path if path.is_absolute() else path.resolve()
        state = None if read.state is None else json.dumps(read.state, sort_keys=True)
        rows.append((str(key), size, mtime, read.lines, read.calls, read.rejected, read.tail,
                     state))
    if not rows:
        return
    # list parameters + unnest: no Arrow registration (which would import pandas)
    cols = [list(c) for c in zip(*rows, strict=True)]
    params = {"p": cols[0], "s": cols[1], "m": cols[2], "l": cols[3], "a": cols[4],
              "r": cols[5], "h": cols[6], "st": cols[7]}
    store.con.execute("DELETE FROM imports WHERE format = $f AND path IN (SELECT unnest($p))",
                      {"f": fmt, "p": cols[0]})
    store.con.execute(
        "INSERT INTO imports (path, format, size_bytes, mtime, lines, accepted, rejected, "
        "imported_at, tail_hash, state) SELECT unnest($p), $f, unnest($s), unnest($m), "
        "unnest($l), unnest($a), unnest($r), $t, unnest($h::BIGINT[]), "
        "unnest($st::VARCHAR[])", {**params, "f": fmt, "t": now})
