"""The background spool writer: the calling thread only appends to a queue.

Durability model (see ``docs/tracking.md``)
===========================================

* ``put`` appends the record object to a ``collections.deque`` (thread-safe, no
  lock) and, once ``batch_size`` records are pending, wakes the writer thread. No
  serialization, no I/O on the calling thread.
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

__all__ = ["SpoolWriter", "default_spool_dir"]

log = logging.getLogger("ctxbudget.track")
FsyncPolicy = Literal["interval", "always", "never"]


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
    ) -> None:
        if batch_size < 1 or max_pending < batch_size:
            raise ValueError("need batch_size >= 1 and max_pending >= batch_size")
        if fsync not in ("interval", "always", "never"):
            raise ValueError(f"fsync must be 'interval', 'always' or 'never', got {fsync!r}")
        self.directory = Path(directory) if directory is not None else default_spool_dir()
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self.max_pending = max_pending
        self._q: collections.deque[tuple[str, Any]] = collections.deque()
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
        self.written = 0
        self.batches = 0
        self.write_errors = 0
        self.dropped = 0
        self.serialize_errors = 0
        self.overflow_writes = 0

    # -- calling thread --------------------------------------------------------
    def put(self, item: tuple[str, Any]) -> None:
        """Enqueue ``("c", Call)`` or ``("t", (Task, meta))``. Never blocks on I/O unless
        ``max_pending`` records are already waiting. Never raises."""
        q = self._q
        q.append(item)
        if self._thread is None:
            self._start()
        n = len(q)
        if n >= self.batch_size:
            if n >= self.max_pending:
                self.overflow_writes += 1
                self.drain()
            else:
                self._wake.set()

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
                self.drain()
            except Exception:  # pragma: no cover - drain already guards itself
                log.exception("ctxbudget spool writer failed")

    def drain(self) -> int:
        """Write every pending record now (from whichever thread calls it)."""
        n = 0
        with self._io_lock:
            q = self._q
            while q:
                try:
                    stem = self._stem_or_open()
                except OSError as exc:
                    lost = len(q)
                    q.clear()
                    self._fail(lost, exc)
                    break
                batch: list[str] = []
                try:
                    while q and len(batch) < self.batch_size:
                        kind, obj = q.popleft()
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
                    n += self._write(batch)
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
        self.directory.mkdir(parents=True, exist_ok=True)
        self._stem = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        path = self.directory / f"{self._stem}.jsonl"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self.path = path
        self._seq = 0

    def _write(self, lines: list[str]) -> int:
        data = "".join(lines).encode("utf-8")
        try:
            if self._fd is None:
                self._open()
            assert self._fd is not None
            view = memoryview(data)
            while view:
                k = os.write(self._fd, view)
                if k <= 0:
                    raise OSError("os.write wrote nothing")
                view = view[k:]
        except OSError as exc:
            self._fail(len(lines), exc)
            self._close_fd()  # a torn tail stays at the end of that file; start a new one
            return 0
        self.written += len(lines)
        self.batches += 1
        self._dirty = True
        return len(lines)

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
        }


# --------------------------------------------------------------------------- process-wide


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
    ``max_pending``)."""
    global _writer
    with _writer_lock:
        old, _writer = _writer, None
        _config.clear()
        _config.update({k: v for k, v in options.items() if v is not None})
    if old is not None:
        old.close()
    return _new_writer()


def put_call(call: Call) -> None:
    (_writer or _new_writer()).put(("c", call))


def put_task(task: Task, meta: dict[str, Any] | None = None) -> None:
    (_writer or _new_writer()).put(("t", (task, meta)))


def flush() -> int:
    """Write every pending record of this process now. Returns records written."""
    w = _writer
    return w.flush() if w is not None else 0


def _at_exit() -> None:
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
