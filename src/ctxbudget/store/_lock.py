"""The store's inter-process lock: writers serialize, readers share, nobody starves.

DuckDB lets one process write a database file, and no other process open it at the
same time, not even to read; a second opener fails at once ("Could not set lock").
Every ctxbudget command therefore takes this lock before opening the store and
holds it until it closes the store:

* ``<store>.lock`` — ``flock`` shared by readers, exclusive for a writer; the writer
  records its pid, command line and start time in it, so a waiting command can say
  who holds the store;
* ``<store>.lock.turn`` — a turnstile taken briefly before the main lock, and held by a
  waiting writer until it gets in, so a stream of readers cannot starve a writer.

Waits poll with a deadline (``timeout``) and end in a :class:`~ctxbudget.errors.StoreError`
naming the holder. Within a process one lock per store is shared (a count), so
nested opens do not deadlock; a forked child drops its copies.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import StoreError

__all__ = ["LOCK_TIMEOUT_S", "StoreLock", "holder", "lock_timeout"]

#: Seconds a command waits for another one holding the store (``$CTXBUDGET_LOCK_TIMEOUT``).
LOCK_TIMEOUT_S = 60.0


def lock_timeout() -> float:
    """Seconds a command waits for the store: ``$CTXBUDGET_LOCK_TIMEOUT`` or 60."""
    v = os.environ.get("CTXBUDGET_LOCK_TIMEOUT")
    try:
        return max(0.0, float(v)) if v else LOCK_TIMEOUT_S
    except ValueError:
        return LOCK_TIMEOUT_S

_POLL_S = 0.02


@dataclass
class _Held:
    fd: int
    exclusive: bool
    count: int


_mu = threading.RLock()
_held: dict[str, _Held] = {}


def _after_fork_in_child() -> None:
    global _mu
    _mu = threading.RLock()
    for h in _held.values():
        with contextlib.suppress(OSError):
            os.close(h.fd)  # the parent's flock stays with the parent
    _held.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _open(path: Path) -> int:
    from ._paths import private_dir

    private_dir(path.parent)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StoreError(f"{path}: cannot open the store's lock file: "
                         f"{exc.strerror or exc}") from exc


def holder(db: Path) -> str:
    """Who holds ``db`` for writing, as the writer recorded it ('' if unknown)."""
    try:
        text = Path(str(db) + ".lock").read_text(errors="replace").strip()
    except OSError:
        return ""
    parts = text.split("\t", 2)
    if len(parts) != 3:
        return ""
    pid, since, cmd = parts
    try:
        age = f" for {time.time() - float(since):.0f} s"
    except ValueError:
        age = ""
    return f"pid {pid} ({cmd[:80]}){age}"


def _flock(fd: int, op: int, deadline: float, db: Path, wait: float) -> None:
    while True:
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        except OSError as exc:  # e.g. a file system without flock: go on unlocked
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP):
                return
            raise
        if time.monotonic() >= deadline:
            who = holder(db)
            raise StoreError(
                f"{db}: the store is busy" + (f": held by {who}" if who else "")
                + f"; gave up after {wait:g} s (wait longer with CTXBUDGET_LOCK_TIMEOUT=SECONDS)")
        time.sleep(_POLL_S)


class StoreLock:
    """A held lock on one store; :meth:`release` once."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.released = False

    @classmethod
    def acquire(cls, db: Path, *, exclusive: bool, timeout: float) -> StoreLock:
        key = str(db.absolute())
        deadline = time.monotonic() + timeout
        with _mu:
            h = _held.get(key)
            if h is not None and (h.exclusive or not exclusive):
                h.count += 1
                return cls(key)
            turn = _open(Path(key + ".lock.turn"))
            try:
                _flock(turn, fcntl.LOCK_EX, deadline, db, timeout)
                if h is not None:  # upgrade this process's shared lock
                    _flock(h.fd, fcntl.LOCK_EX, deadline, db, timeout)
                    h.exclusive = True
                    h.count += 1
                    fd = h.fd
                else:
                    fd = _open(Path(key + ".lock"))
                    try:
                        _flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, deadline,
                               db, timeout)
                    except BaseException:
                        os.close(fd)
                        raise
                    _held[key] = _Held(fd=fd, exclusive=exclusive, count=1)
            finally:
                os.close(turn)  # releases the turnstile
            if exclusive:
                _note_holder(fd)
            return cls(key)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        with _mu:
            h = _held.get(self.key)
            if h is None:
                return
            h.count -= 1
            if h.count <= 0:
                del _held[self.key]
                if h.exclusive:
                    with contextlib.suppress(OSError):
                        os.ftruncate(h.fd, 0)
                os.close(h.fd)


def _note_holder(fd: int) -> None:
    cmd = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "python"
    text = f"{os.getpid()}\t{time.time():.3f}\t{cmd}\n".encode(errors="replace")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)
    except OSError:  # a full disk must not stop the holder; waiters just say less
        pass
