"""Worker processes that die with their parent.

A forked parser worker blocks reading its task queue; when the importing process is
killed (``SIGKILL``, OOM killer) the queue never closes — the worker holds copies of
its pipes — so it would wait forever, holding its memory and the caller's stdout.
:func:`die_with_parent`, run first in every worker (``ProcessPoolExecutor``'s
``initializer``), ends the worker when its parent goes:

* on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker the
  moment the parent exits, however it exits;
* everywhere, a daemon thread that polls ``os.getppid()`` once a second and exits
  the worker when it changes (the parent is gone and the worker was re-parented).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1
_POLL_S = 1.0


def die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process exit when ``parent_pid`` is no longer its parent."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the thread does it
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), name="ctxbudget-parent-watch",
                     daemon=True).start()


def _watch(parent_pid: int) -> None:
    while True:
        time.sleep(_POLL_S)
        if os.getppid() != parent_pid:
            os._exit(1)
