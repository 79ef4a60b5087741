"""Helpers shared by the track tests (importable: tests/track is put on sys.path by conftest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ctxbudget.track as tr
from ctxbudget.store.spool import read_spool
from ctxbudget.usage import Call, Task


def recorded(spool_dir: Path) -> tuple[list[Call], list[Task]]:
    """Flush this process's writer and read every record back from the spool."""
    tr.flush()
    calls, tasks, report = read_spool(spool_dir)
    assert report.rejected == 0, report.rejected_at
    return calls, tasks


#: Sync SDK clients created by a test; closed by the autouse fixture in conftest
#: (an unclosed client's socket would raise a ResourceWarning in a later test).
OPEN_CLIENTS: list[Any] = []


def closing(client: Any) -> Any:
    OPEN_CLIENTS.append(client)
    return client


def close_all() -> None:
    while OPEN_CLIENTS:
        OPEN_CLIENTS.pop().close()
