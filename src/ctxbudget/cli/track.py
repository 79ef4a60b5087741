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
    redo: bool = typer.Option(False, "--redo", help="Also read retired *.jsonl.done files "
                              "this store has no record of (after replacing a lost or "
                              "damaged store); nothing is counted twice."),
    quarantine: bool = typer.Option(False, "--quarantine", help="List the records kept "
                                    "aside (file:line: reason) instead of ingesting."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Fold tracked calls and tasks from the spool into the store (idempotent, incremental).

    A record that cannot be stored is quarantined (kept in the store with its file, line
    and reason, listed with --quarantine) and every other record lands. Exit 0 even when
    some lines were quarantined; exit 2 when the store cannot be opened or written."""
    from ..store.db import default_db_path, refuse_parquet
    from ..store.spool import ingest_spool
    from ..track._writer import default_spool_dir

    if db is not None:
        refuse_parquet(db)  # also when the spool is empty and the store is never opened
    if quarantine:
        _list_quarantine(db, as_json)
        return
    report = ingest_spool(db, spool, retire=not keep, redo=redo)
    out = {"db": str(db or default_db_path()), "spool": str(spool or default_spool_dir()),
           **report.as_dict()}
    if as_json:
        print_json(out)
        return
    c = console()
    c.print(f"spool {out['spool']} -> {out['db']}", markup=False)
    c.print(f"files {report.files}  calls {report.calls:,}  tasks {report.tasks:,}  "
            f"quarantined {report.quarantined}  retired {report.retired}"
            + (f"  torn bytes {report.torn_bytes}" if report.torn_bytes else ""))
    for where in report.rejected_at:
        c.print(f"  quarantined {where}", markup=False)
    if report.quarantine_total:
        c.print(f"{report.quarantine_total} record(s) in quarantine in all "
                "(ctxbudget ingest --quarantine lists them)")


def _list_quarantine(db: Path | None, as_json: bool) -> None:
    from ..store.db import open_store

    with open_store(db, read_only=(db or _default()).exists()) as st:
        rows = st.con.execute(
            "SELECT source, file, line, reason, record, quarantined_at FROM quarantine "
            "ORDER BY quarantined_at, file, line").fetchall()
    if as_json:
        print_json([{"source": r[0], "file": r[1], "line": r[2], "reason": r[3],
                     "record": r[4], "quarantined_at": r[5]} for r in rows])
        return
    c = console()
    for r in rows:
        c.print(f"{r[1]}:{r[2]}: {r[3]}", markup=False)
    c.print(f"{len(rows)} record(s) in quarantine")


def _default() -> Path:
    from ..store.db import default_db_path

    return default_db_path()


def register(app: typer.Typer) -> None:
    app.command("ingest")(handles_errors(ingest))
