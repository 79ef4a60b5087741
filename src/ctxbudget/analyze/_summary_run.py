"""``report --by day`` (and ``--from claude-code``) answered from the day summary.

:func:`summary_day_report` takes the store's lock (exclusive when it imports), loads the
summary (:mod:`.summary`), and with ``logs``: finds the Claude Code logs, keeps only
new files and files that grew by an append (the summary's copy of the ``imports``
rows and the fingerprint of the bytes before each offset say so), parses the new bytes
with the Claude Code scanner, applies them, and writes ``<store>.pending``. It raises
:class:`~.summary.Decline` whenever the full path must answer instead; nothing is
written then.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .summary import Decline, enabled, load_summary

__all__ = ["DailyStats", "summary_day_report"]

#: New log bytes above this go to the full path (which parses them in parallel).
MAX_NEW_BYTES = 48 * 1024 * 1024
#: Pending calls above this, or above a quarter of the summary's calls, go to the full
#: path (which folds them into the store and writes a new summary): the ``.pending``
#: file, read and written whole by every run, stays small.
MAX_PENDING_CALLS = 50_000


@dataclass(slots=True)
class DailyStats:
    """What the import part did (the numbers ``import`` prints)."""

    files: int = 0
    appended_files: int = 0
    unchanged_files: int = 0
    accepted: int = 0


def summary_day_report(db: Path, *, logs: list[Path] | None, source: str, wasted: bool = True,
                       spool: bool = False) -> tuple[Any, DailyStats | None]:
    """The ``--by day`` report of the store ``db`` from its summary, after importing what is
    new in the Claude Code ``logs`` (when given). ``spool``: the default store, whose
    reads fold the tracker's spool in first (new spool lines decline)."""
    from ..store._lock import StoreLock, lock_timeout

    if not enabled():
        raise Decline("turned off (CTXBUDGET_NO_SUMMARY)")
    if not db.exists():
        raise Decline("no store")
    lock = StoreLock.acquire(db, exclusive=logs is not None, timeout=lock_timeout())
    try:
        s = load_summary(db)
        if spool:
            _check_spool(s.spool)
        stats = None
        if logs is not None:
            stats = _import_logs(s, logs)
        if s.quarantined and logs is None:  # (as open_source warns; not --from)
            import logging

            logging.getLogger("ctxbudget.analyze.source").warning(
                "%s: %d record(s) quarantined (not counted here); list them with "
                "`ctxbudget ingest --quarantine`", db, s.quarantined)
        return s.report(source=source, wasted=wasted), stats
    finally:
        lock.release()


def _check_spool(offsets: Any) -> None:
    """Decline when the tracker's spool holds lines the store has not folded in."""
    from ..track._writer import default_spool_dir

    d = default_spool_dir()
    if not d.is_dir():
        return
    known = offsets or {}
    for p in d.glob("*.jsonl"):
        try:
            size = p.stat().st_size
        except OSError:
            continue
        if size != known.get(p.name, 0):
            raise Decline("the tracker's spool has new lines")


def _import_logs(s: Any, logs: list[Path]) -> DailyStats:
    from ..sources import _claude_scan
    from ..store.pending import write_pending

    stats = DailyStats()
    todo: list[tuple[str, int, list[Any] | None]] = []
    seen: set[str] = set()
    new_bytes = 0
    for arg in logs:
        found = _claude_scan.walk(Path(arg).resolve())
        if found is None:
            raise Decline(f"{arg}: no such file or folder")
        for f in found:
            if f in seen:
                continue
            seen.add(f)
            try:
                st = os.stat(f)
            except OSError:
                raise Decline(f"{f}: cannot stat") from None
            prev = s.imported(f)
            if prev is None:
                todo.append((f, 0, None))
                new_bytes += st.st_size
                continue
            if st.st_size == prev[0] and st.st_mtime == prev[1]:
                stats.unchanged_files += 1
                continue
            if prev[4] is None or st.st_size <= prev[0] or _tail(f, prev[0]) != prev[4]:
                raise Decline(f"{f}: changed other than by an append")
            todo.append((f, int(prev[0]), prev))
            stats.appended_files += 1
            new_bytes += st.st_size - prev[0]
    if new_bytes > MAX_NEW_BYTES:
        raise Decline("too many new bytes (the full path reads them in parallel)")
    files: dict[str, list[Any]] = {}
    if todo:
        chunk = _claude_scan.parse_files([t[0] for t in todo], 0,
                                         starts=[t[1] for t in todo])
        if chunk.left:
            raise Decline("a log needs the line-by-line reader")
        stats.accepted = s.apply(chunk.cols)
        for n, fi in enumerate(chunk.files):
            path, _start, prev = todo[fi]
            lines, calls = chunk.lines[n], chunk.calls[n]
            if prev is not None:
                lines += int(prev[2])
                calls += int(prev[3])
            files[path] = [chunk.ends[n], chunk.mtimes[n], lines, calls, chunk.tails[n]]
        stats.files = len(chunk.files)
        if len(s.rows) > max(MAX_PENDING_CALLS, s.base.n // 4):
            raise Decline("many calls pending: the full path folds them into the store")
        write_pending(s.db, s.pending(files))
    return stats


def _tail(path: str, offset: int) -> int | None:
    from ..sources._tail import tail_hash

    try:
        with open(path, "rb") as fh:
            return int(tail_hash(fh, offset))
    except OSError:
        return None
