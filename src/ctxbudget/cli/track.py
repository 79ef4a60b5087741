"""``ctxbudget ingest``: fold the tracker's spool into the usage store.

Other read commands call :func:`ingest_before_read` first, so what an app tracked a
moment ago shows up in their output without an explicit ``ingest``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ._common import console, handles_errors, print_json


def ingest_before_read(db: Path | None, spool: Path | None = None) -> Any:
    """Fold the spool into ``db`` (default store) before a read command; returns the report.

    A store locked by another process (e.g. a running ``ctxbudget serve``) is not an error
    here: the read goes on with what is already ingested."""
    from ..errors import StoreError
    from ..store.spool import ingest_spool

    try:
        return ingest_spool(db, spool)
    except StoreError:
        return None


def ingest(
    db: Path | None = typer.Option(None, "--db", help="Usage store (default "
                                   "$CTXBUDGET_HOME/usage.duckdb)."),
    spool: Path | None = typer.Option(None, "--spool", help="Spool directory (default "
                                      "$CTXBUDGET_HOME/spool)."),
    keep: bool = typer.Option(False, "--keep", help="Do not rename fully ingested files of "
                              "finished processes to *.jsonl.done."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Fold tracked calls and tasks from the spool into the store (idempotent, incremental).

    Exit 0 even when some lines were rejected (they are listed with file:line);
    exit 2 when the store cannot be opened."""
    from ..store.db import default_db_path
    from ..store.spool import ingest_spool
    from ..track._writer import default_spool_dir

    report = ingest_spool(db, spool, retire=not keep)
    out = {"db": str(db or default_db_path()), "spool": str(spool or default_spool_dir()),
           **report.as_dict()}
    if as_json:
        print_json(out)
        return
    c = console()
    c.print(f"spool {out['spool']} -> {out['db']}")
    c.print(f"files {report.files}  calls {report.calls:,}  tasks {report.tasks:,}  "
            f"rejected {report.rejected}  retired {report.retired}"
            + (f"  torn bytes {report.torn_bytes}" if report.torn_bytes else ""))
    for where in report.rejected_at:
        c.print(f"  rejected {where}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("ingest")(handles_errors(ingest))
