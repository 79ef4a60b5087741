"""The background spool writer: the calling thread only appends to a queue.

Durability model (see ``docs/tracking.md``)
===========================================

* ``put`` appends the record object to a ``collections.deque`` (thread-safe, no
  lock) and, once ``batch_size`` records are pending, wakes the writer thread. No
  serialization, no I/O on the calling thread — unless the writer is late (below).
* A daemon thread wakes every ``flush_interval`` seconds (or when woken), takes
  up to ``batch_size`` records at a time, serializes them and appends them to this
  process's own spool file ``<dir>/<pid>-<random>.jsonl`` with **one** ``os.write``
  of complete ``\\n``-terminated lines (``O_APPEND``; the loop only continues on a
  short write). One file per writer means no two writers ever interleave bytes.
* A record is safe from a process crash (``SIGKILL``, ``os._exit``) once written to
  the page cache. ``SIGKILL`` therefore loses at most the records enqueued since
  the last write: in steady state those of the last ``flush_interval`` seconds,
  and never more than ``max_pending + batch_size`` (+1 per thread calling at that
  instant): when ``max_pending`` records are waiting, the calling thread writes them
  itself (counted as ``overflow_writes``) instead of letting the queue grow.
* **The writer thread cannot be starved.** A busy application thread holds the GIL
  for most of every 5 ms switch interval, so a background thread may fall seconds
  behind (the queue, not the disk, is the bottleneck). Every ``put`` compares the time
  since the last drain started with ``max_lag`` (default ``2 * flush_interval``);
  when it is older, the calling thread writes the queue itself (if no other thread is
  writing at that instant; counted as ``lag_writes``). So while the app keeps calling,
  no record waits longer than ``max_lag`` plus one batch's write
  (``bench/bench_track.py --crash`` measures it under CPU-bound threads).
* **The spool folder may be deleted or replaced under a live writer.** Before each
  write the writer checks that its open file is still the file at its path (``fstat``
  vs ``stat``), and after it that the file still has a link; if not, it re-creates
  the folder and a new file, writes the batch there, counts it
  (``spool_recreated``, and as a ``write_errors``) and logs one warning per writer.
  Nothing enqueued after the folder is gone is lost.
* Folders are created ``0700`` and spool files ``0600``: records name models, tasks
  and spend.
* ``fsync`` policy (protection against power loss / kernel crash, not needed for
  process crashes): ``"interval"`` (default) fsyncs at most every
  ``fsync_interval`` seconds and on flush/exit; ``"always"`` after every batch;
  ``"never"`` leaves it to the OS.
* A torn last line (a write cut short) is ignored by the reader until completed.
* Exit: ``atexit`` (and multiprocessing's exit finalizers in forked children) flush
  the queue. After ``fork`` the child starts a new, empty writer and file.
* Errors (disk full, directory removed, unserializable meta) are logged and
  counted in :func:`stats`; they never raise into the application.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from ..usage import Call, Task
from ._spoolfmt import call_to_line, task_to_line

__all__ = ["SpoolWriter", "default_spool_dir", "make_private_dirs"]

log = logging.getLogger("ctxbudget.track")
FsyncPolicy = Literal["interval", "always", "never"]


def make_private_dirs(directory: Path) -> None:
    """``mkdir -p`` where every folder this creates is ``0700`` (existing ones are left
    as they are)."""
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        if not directory.is_dir():
            raise
    except FileNotFoundError:
        if directory.parent == directory:
            raise
        make_private_dirs(directory.parent)
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)


def default_spool_dir() -> Path:
    """``$CTXBUDGET_HOME/spool`` (``~/.ctxbudget/spool`` by default)."""
    home = os.environ.get("CTXBUDGET_HOME") or str(Path.home() / ".ctxbudget")
    return Path(home) / "spool"


class SpoolWriter:
    """Batches records from any thread into one append-only spool file per writer."""

    def __init__(
        self,
        directory: Path | str | None = None,
        *,
        batch_size: int = 512,
        flush_interval: float = 0.2,
        fsync: FsyncPolicy = "interval",
        fsync_interval: float = 1.0,
        max_pending: int = 50_000,
        max_lag: float | None = None,
    ) -> None:
        if batch_size < 1 or max_pending < batch_size:
            raise ValueError("need batch_size >= 1 and max_pending >= batch_size")
        if max_lag is not None and not max_lag > 0:
            raise ValueError(f"max_lag must be > 0 seconds (math.inf: never), got {max_lag!r}")
        if fsync not in ("interval", "always", "never"):
            raise ValueError(f"fsync must be 'interval', 'always' or 'never', got {fsync!r}")
        self.directory = Path(directory) if directory is not None else default_spool_dir()
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self.max_pending = max_pending
        self.max_lag = max_lag if max_lag is not None else 2 * flush_interval
        #: (kind, record, monotonic enqueue time)
        self._q: collections.deque[tuple[str, Any, float]] = collections.deque()
        self._wake = threading.Event()
        self._io_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._fd: int | None = None
        self.path: Path | None = None
        self._stem = ""
        self._seq = 0
        self._last_fsync = 0.0
        self._last_error_log = -1e9
        self._dirty = False
        self._warned_recreate = False
        self.written = 0
        self.batches = 0
        self.write_errors = 0
        self.dropped = 0
        self.serialize_errors = 0
        self.overflow_writes = 0
        self.lag_writes = 0
        self.spool_recreated = 0
        #: the longest a record waited between ``put`` and the end of its ``os.write``
        self.max_write_lag = 0.0

    # -- calling thread --------------------------------------------------------
    def put(self, kind: str, obj: Any) -> None:
        """Enqueue ``("c", Call)`` or ``("t", (Task, meta))``. Never raises. Never blocks on
        I/O unless ``max_pending`` records are already waiting or the oldest waiting record
        is older than ``max_lag`` (the writer thread is starved)."""
        q = self._q
        now = time.monotonic()
        q.append((kind, obj, now))
        if self._thread is None:
            self._start()
        n = len(q)
        if n >= self.batch_size:
            if n >= self.max_pending:
                self.overflow_writes += 1
                self.drain()
                return
            self._wake.set()
        try:
            oldest = q[0][2]
        except IndexError:  # drained meanwhile
            return
        if now - oldest > self.max_lag:
            self._lag_write()

    def _lag_write(self) -> None:
        """The writer thread is late (starved of the GIL by busy application threads):
        write the queue from this thread. Waiting for the lock (at most ``max_lag``) hands
        the GIL to a writer that is mid-batch, so it finishes."""
        if not self._io_lock.acquire(timeout=self.max_lag):
            return
        try:
            if self._q:
                self.lag_writes += 1
                self._drain_locked()
        except Exception as exc:  # pragma: no cover - _drain_locked guards its I/O
            log.warning("ctxbudget: spool write from the calling thread failed: %r", exc)
        finally:
            self._io_lock.release()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._closed:
                return
            t = threading.Thread(target=self._run, name="ctxbudget-spool-writer", daemon=True)
            t.start()
            self._thread = t

    @property
    def pending(self) -> int:
        return len(self._q)

    # -- writer thread ---------------------------------------------------------
    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                if before_drain:
                    _run_before_drain()
                self.drain()
            except Exception:  # pragma: no cover - drain already guards itself
                log.exception("ctxbudget spool writer failed")

    def drain(self) -> int:
        """Write every pending record now (from whichever thread calls it)."""
        with self._io_lock:
            return self._drain_locked()

    def _drain_locked(self) -> int:
        n = 0
        q = self._q
        if q and self._fd is not None:
            try:
                if self._file_gone():  # one check per drain, not per batch: each syscall
                    self._recreate("was deleted or its folder replaced")  # yields the GIL
            except OSError as exc:
                self._fail(0, exc)
                self._close_fd()
        sent: list[tuple[bytes, int]] = []  # (bytes, lines) re-written if the file vanishes
        while q:
            try:
                stem = self._stem_or_open()
            except OSError as exc:
                lost = len(q)
                q.clear()
                self._fail(lost, exc)
                break
            batch: list[str] = []
            oldest = math.inf
            try:
                while q and len(batch) < self.batch_size:
                    kind, obj, t = q.popleft()
                    oldest = min(oldest, t)
                    try:
                        if kind == "c":
                            batch.append(call_to_line(obj, f"{stem}:{self._seq}"))
                            self._seq += 1
                        else:
                            batch.append(task_to_line(*obj))
                    except Exception as exc:
                        self.serialize_errors += 1
                        log.warning("ctxbudget: dropped an unserializable record: %s", exc)
            except IndexError:  # raced with another drainer
                pass
            if batch:
                k = self._write(batch, sent)
                n += k
                if k:
                    self.max_write_lag = max(self.max_write_lag, time.monotonic() - oldest)
        if sent:
            self._check_after_write(sent)
        if self._dirty and (self.fsync == "always" or (
                self.fsync == "interval"
                and time.monotonic() - self._last_fsync >= self.fsync_interval)):
            self._do_fsync()
        return n

    def _stem_or_open(self) -> str:
        if self._fd is None:
            self._open()
        return self._stem

    def _open(self) -> None:
        make_private_dirs(self.directory)
        self._stem = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        path = self.directory / f"{self._stem}.jsonl"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self.path = path
        self._seq = 0

    def _file_gone(self) -> bool:
        """True when our open file is no longer the file at ``self.path``: unlinked (its
        folder deleted) or its folder moved / replaced."""
        assert self._fd is not None and self.path is not None
        mine = os.fstat(self._fd)
        if mine.st_nlink == 0:
            return True
        try:
            there = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (there.st_ino, there.st_dev) != (mine.st_ino, mine.st_dev)

    def _recreate(self, why: str) -> None:
        """Our file was deleted or moved away: count it, warn once, start a new file (its
        records get new rids: the old file, if it still exists somewhere, keeps its own)."""
        self.spool_recreated += 1
        self.write_errors += 1
        old = self.path
        self._close_fd()
        if not self._warned_recreate:
            self._warned_recreate = True
            log.warning("ctxbudget: the spool file %s %s; re-creating %s and writing to a new "
                        "file (records written to the old file before that are not in this "
                        "folder; counted in stats()['spool_recreated'])", old, why,
                        self.directory)
        self._open()

    def _write(self, lines: list[str], sent: list[tuple[bytes, int]]) -> int:
        data = "".join(lines).encode("utf-8")
        try:
            if self._fd is None:
                self._open()
            self._write_all(data)
        except OSError as exc:
            self._fail(len(lines), exc)
            self._close_fd()  # a torn tail stays at the end of that file; start a new one
            return 0
        sent.append((data, len(lines)))
        self.written += len(lines)
        self.batches += 1
        self._dirty = True
        return len(lines)

    def _check_after_write(self, sent: list[tuple[bytes, int]]) -> None:
        """If the file lost its last link while this drain wrote to it (the folder was
        deleted), write this drain's records again into a new file."""
        try:
            if self._fd is None or os.fstat(self._fd).st_nlink > 0:
                return
            self._recreate("was deleted while being written")
            self._write_all(b"".join(d for d, _ in sent))
        except OSError as exc:
            lost = sum(k for _, k in sent)
            self.written -= lost
            self._fail(lost, exc)
            self._close_fd()

    def _write_all(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            k = os.write(self._fd, view)
            if k <= 0:
                raise OSError("os.write wrote nothing")
            view = view[k:]

    def _fail(self, lost: int, exc: BaseException) -> None:
        self.write_errors += 1
        self.dropped += lost
        now = time.monotonic()
        if now - self._last_error_log >= 60.0:  # at most one log line a minute
            self._last_error_log = now
            log.error("ctxbudget: could not write %d tracked records to %s: %s (%d dropped "
                      "so far)", lost, self.path or self.directory, exc, self.dropped)

    def _do_fsync(self) -> None:
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self.write_errors += 1
            log.error("ctxbudget: fsync of %s failed: %s", self.path, exc)
        self._last_fsync = time.monotonic()
        self._dirty = False

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- lifecycle -------------------------------------------------------------
    def flush(self) -> int:
        """Write everything pending and fsync (unless the policy is ``never``)."""
        try:
            n = self.drain()
            if self.fsync != "never":
                with self._io_lock:
                    if self._dirty:
                        self._do_fsync()
            return n
        except Exception:
            log.exception("ctxbudget: flush failed")
            return 0

    def close(self) -> None:
        """Flush, stop the thread and close the file. Further ``put`` calls are still
        accepted and written by :meth:`flush`/exit, never raised on."""
        self.flush()
        self._closed = True
        self._wake.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5)
        self.flush()
        with self._io_lock:
            self._close_fd()

    def stats(self) -> dict[str, Any]:
        return {
            "spool_file": str(self.path) if self.path else None,
            "written": self.written,
            "pending": len(self._q),
            "batches": self.batches,
            "write_errors": self.write_errors,
            "dropped": self.dropped,
            "serialize_errors": self.serialize_errors,
            "overflow_writes": self.overflow_writes,
            "lag_writes": self.lag_writes,
            "spool_recreated": self.spool_recreated,
            "max_write_lag_s": round(self.max_write_lag, 6),
        }


# --------------------------------------------------------------------------- process-wide


#: Called (in order, errors logged) by the writer thread before each drain, and by
#: ``flush`` / exit: the tracker settles dropped streams here.
before_drain: list[Callable[[], None]] = []


def _run_before_drain() -> None:
    for hook in before_drain:
        try:
            hook()
        except Exception:  # pragma: no cover - hooks guard themselves
            log.exception("ctxbudget: spool writer hook failed")


_config: dict[str, Any] = {}
_writer: SpoolWriter | None = None
_writer_lock = threading.Lock()
_forked = False


def get_writer() -> SpoolWriter:
    w = _writer
    if w is None:
        w = _new_writer()
    return w


def _new_writer() -> SpoolWriter:
    global _writer, _forked
    with _writer_lock:
        if _writer is None:
            _writer = SpoolWriter(**_config)
            if _forked:
                _forked = False
                mp = sys.modules.get("multiprocessing.util")
                if mp is not None:  # forked multiprocessing children leave through os._exit
                    finalize: Callable[..., Any] = mp.Finalize
                    finalize(None, _at_exit, exitpriority=100)
        return _writer


def configure_writer(**options: Any) -> SpoolWriter:
    """Flush and replace the process's writer with one built from ``options``
    (``directory``, ``batch_size``, ``flush_interval``, ``fsync``, ``fsync_interval``,
    ``max_pending``, ``max_lag``)."""
    global _writer
    with _writer_lock:
        old, _writer = _writer, None
        _config.clear()
        _config.update({k: v for k, v in options.items() if v is not None})
    if old is not None:
        old.close()
    return _new_writer()


def put_call(call: Call) -> None:
    (_writer or _new_writer()).put("c", call)


def put_task(task: Task, meta: dict[str, Any] | None = None) -> None:
    (_writer or _new_writer()).put("t", (task, meta))


def flush() -> int:
    """Write every pending record of this process now. Returns records written."""
    _run_before_drain()
    w = _writer
    return w.flush() if w is not None else 0


def _at_exit() -> None:
    _run_before_drain()
    w = _writer
    if w is not None:
        w.close()


def _after_fork_in_child() -> None:
    # The parent's queue and file belong to the parent: start empty, with a new file.
    # (multiprocessing clears its finalizers after the fork, so the exit hook for
    # os._exit-ing children is registered when the child creates its writer.)
    global _writer, _writer_lock, _forked
    _writer_lock = threading.Lock()
    _writer = None
    _forked = True


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
