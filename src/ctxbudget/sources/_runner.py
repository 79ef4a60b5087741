"""The generic (Python, line-by-line) import loop shared by every importer.

Streams each file record by record, converts, de-duplicates by ``call_key`` and
writes batches to the store with ``INSERT OR REPLACE``. Batches are flushed only
at file boundaries, so every copy of a call written within one file (streaming
copies in a Claude Code log) meets the others in memory and the importer's
:meth:`~Importer.rank` picks the final one; across batches the later file wins.
Memory is bounded by one batch plus one 8-byte hash per distinct call (to count
duplicates).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import InputFormatError, UsageError
from ..usage import Call
from ._base import STDIN, Importer, ImportStats, Rejection, Skip

__all__ = ["FLUSH_CALLS", "StrictStop", "file_signature", "import_files", "imported_signatures",
           "record_imports"]

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
) -> None:
    """Import ``files`` with the Python path, updating ``stats`` and the store."""
    from ..store.db import call_key

    batch = _Batch(importer)
    seen: set[int] = set()
    per_file: list[tuple[Path, int, int, int]] = []

    def flush() -> None:
        if batch.calls:
            store.insert_calls([c for _, c in batch.calls.values()])
            batch.calls.clear()
        record_imports(store, importer.name, per_file)
        per_file.clear()

    for path in files:
        stats.files += 1
        f_lines = f_calls = f_rej = 0
        for rec in importer.records(path):
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
                    key = call_key(out)
                    stats.calls += 1
                    f_calls += 1
                    h = hash(key)
                    if h in seen:
                        stats.duplicates += 1
                    else:
                        seen.add(h)
                    batch.add(key, out)
            except (InputFormatError, UsageError, ValueError, TypeError, KeyError) as exc:
                reason = _reason(exc)
                if rec.item is not None:
                    reason = f"item {rec.item}: {reason}"
                r = Rejection(path=str(path), line=rec.line, reason=reason)
                if strict:
                    raise StrictStop(r) from None
                stats.reject(r)
                f_rej += 1
        per_file.append((path, f_lines, f_calls, f_rej))
        if len(batch.calls) >= FLUSH_CALLS:
            flush()
    flush()
    stats.accepted = stats.calls - stats.duplicates


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    msg = str(exc) or type(exc).__name__
    return msg.splitlines()[0]


def file_signature(path: Path) -> tuple[int, float] | None:
    """(size, mtime) of a file, ``None`` for stdin or a vanished file."""
    if path == STDIN:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime


def imported_signatures(store: Any, fmt: str) -> dict[str, tuple[int, float]]:
    """Files the ``imports`` table holds for ``fmt`` without rejected lines:
    absolute path -> (size, mtime) when imported."""
    rows = store.con.execute(
        "SELECT path, size_bytes, mtime FROM imports WHERE format = ? AND rejected = 0",
        [fmt]).fetchall()
    return {p: (int(s), float(m)) for p, s, m in rows}


def record_imports(store: Any, fmt: str,
                   files: Sequence[tuple[Path, int, int, int]]) -> None:
    """Remember imported files: (path, lines, calls, rejected) each, one row per file
    and format (a re-import replaces the row)."""
    rows = []
    now = datetime.now(UTC)
    for path, lines, calls, rejected in files:
        sig = file_signature(path)
        if sig is not None:
            key = path if path.is_absolute() else path.resolve()
            rows.append((str(key), fmt, sig[0], sig[1], lines, calls, rejected, now))
    if not rows:
        return
    # list parameters + unnest: no Arrow registration (which would import pandas)
    cols = [list(c) for c in zip(*rows, strict=True)]
    params = {"p": cols[0], "s": cols[2], "m": cols[3], "l": cols[4], "a": cols[5],
              "r": cols[6]}
    store.con.execute("DELETE FROM imports WHERE format = $f AND path IN (SELECT unnest($p))",
                      {"f": fmt, "p": cols[0]})
    store.con.execute(
        "INSERT INTO imports (path, format, size_bytes, mtime, lines, accepted, rejected, "
        "imported_at) SELECT unnest($p), $f, unnest($s), unnest($m), unnest($l), unnest($a), "
        "unnest($r), $t", {**params, "f": fmt, "t": now})
