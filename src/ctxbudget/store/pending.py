"""Calls imported past the DuckDB store: ``<store>.pending``, folded in on the next open.

``report --from claude-code --by day`` on logs that only grew (see
:mod:`ctxbudget.analyze.summary`) reads the new lines and answers from the day summary
without opening DuckDB. What it imported waits in ``<store>.pending``:

* the Claude Code call rows it keeps (one per call key, each a copy that beats the
  stored one by the importer's rank, see :mod:`ctxbudget.sources.claude_code`),
* the ``imports`` rows of the files it read (where each was read up to),
* the day summary's state after them (opaque here).

The file is written atomically (a temporary file renamed into place) under the store's
write lock. :func:`~ctxbudget.store.db.open_store` folds it in before anything else
reads or writes the store: the rows and the ``imports`` rows in one transaction, then
the file is removed. A crash before the removal leaves it to fold again, which changes
nothing (a copy never replaces an equal one); a file lost or damaged before it was
folded loses nothing either: the store's ``imports`` rows still say where each log was
read up to, so the next import reads the same lines again.

:func:`store_signature` tells whether the DuckDB files changed since a summary was
made (size, modification time and inode of the store and of its write-ahead log).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PENDING_VERSION", "Pending", "drop_pending", "fold_pending", "pending_path",
           "read_pending", "store_signature", "write_atomically", "write_pending"]

#: Version of the ``.pending`` layout (another version is not folded: it is dropped and
#: the logs are read again from the store's ``imports`` offsets).
PENDING_VERSION = 1

#: The Claude Code row columns kept for each pending call (the scanner's columns
#: without ``file``; see :data:`ctxbudget.sources._claude_scan.COLUMNS`).
ROW_COLUMNS = ("key", "ts", "model", "sid", "input", "cache_read", "write_5m", "write_1h",
               "output", "reasoning", "tier", "side")


@dataclass(slots=True)
class Pending:
    """The content of a ``.pending`` file."""

    sig: list[int]
    """:func:`store_signature` of the store these calls come after."""
    base: str
    """Id of the day summary the ``state`` continues."""
    rows: dict[str, list[Any]] = field(default_factory=dict)
    """Claude Code calls by the scanner's key: the values of :data:`ROW_COLUMNS` after
    ``key`` (then what the summary derived from them, ignored here)."""
    files: dict[str, list[Any]] = field(default_factory=dict)
    """``imports`` rows by absolute path: [size read, mtime, lines, calls, tail hash]."""
    state: bytes = b""
    """The day summary's state after these calls (:mod:`ctxbudget.analyze.summary`)."""


def pending_path(db: Path) -> Path:
    return db.with_name(db.name + ".pending")


def store_signature(db: Path) -> list[int]:
    """(size, mtime ns, inode) of the store file and of its ``.wal`` (-1s when absent):
    any write through DuckDB changes one of them."""
    out: list[int] = []
    for p in (db, db.with_name(db.name + ".wal")):
        try:
            st = os.stat(p)
        except OSError:
            out += [-1, -1, -1]
        else:
            out += [st.st_size, st.st_mtime_ns, st.st_ino]
    return out


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place (mode 0600)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_pending(db: Path, p: Pending) -> None:
    """Replace ``<db>.pending`` with ``p`` (call it holding the store's write lock)."""
    import msgspec

    doc = {"v": PENDING_VERSION, "sig": p.sig, "base": p.base, "rows": p.rows,
           "files": p.files, "state": p.state}
    write_atomically(pending_path(db), msgspec.msgpack.encode(doc))


def read_pending(db: Path) -> Pending | None:
    """The ``.pending`` file of ``db``; ``None`` when there is none, or when it cannot be
    read as one (then it is removed, with a warning: the logs are read again)."""
    path = pending_path(db)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    import msgspec

    try:
        doc = msgspec.msgpack.decode(data)
        if not isinstance(doc, dict) or doc.get("v") != PENDING_VERSION:
            raise ValueError(f"version {doc.get('v') if isinstance(doc, dict) else '?'}")
        return Pending(sig=list(doc["sig"]), base=str(doc["base"]), rows=dict(doc["rows"]),
                       files=dict(doc["files"]), state=bytes(doc["state"]))
    except (msgspec.DecodeError, ValueError, KeyError, TypeError) as exc:
        import logging

        logging.getLogger(__name__).warning(
            "%s: unreadable (%s); removed: the logs it held are read again on the "
            "next import", path, exc)
        drop_pending(db)
        return None


def drop_pending(db: Path) -> None:
    pending_path(db).unlink(missing_ok=True)


def fold_pending(store: Any) -> int:
    """Fold ``<store>.pending`` into the open (writable) ``store``: its calls and its
    ``imports`` rows in one transaction, then remove the file. Returns the calls folded."""
    p = read_pending(store.path)
    if p is None:
        return 0
    from ..sources._runner import FileRead, record_imports
    from ..sources.claude_code import insert_rows

    files = [FileRead(Path(path), int(v[2]), int(v[3]), 0, size=int(v[0]), mtime=float(v[1]),
                      tail=None if v[4] is None else int(v[4]))
             for path, v in p.files.items()]
    cols: dict[str, list[Any]] = {name: [] for name in ROW_COLUMNS}
    for key, vals in p.rows.items():
        cols["key"].append(key)
        for name, v in zip(ROW_COLUMNS[1:], vals, strict=False):
            cols[name].append(v)
    with store.transaction():
        if p.rows:
            insert_rows(store.con, cols)
        record_imports(store, "claude-code", files)
    drop_pending(store.path)
    return len(p.rows)
