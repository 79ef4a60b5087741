"""``ctxbudget export --out DIR``: the store as Parquet partitioned by day."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import (
    check_engine,
    console,
    engine_option,
    fail,
    handles_errors,
    print_json,
    since_option,
    time_range,
    until_option,
)


def export(
    out: Path | None = typer.Option(None, "--out", metavar="DIR",
                                    help="Write DIR/calls/day=YYYY-MM-DD/*.parquet and "
                                         "DIR/tasks.parquet (replacing an earlier export)."),
    db: Path | None = typer.Option(None, "--db", help="Store file (default "
                                   "$CTXBUDGET_HOME/usage.duckdb)."),
    since: str | None = since_option(), until: str | None = until_option(),
    engine: str = engine_option(duckdb_only=True),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Export the store as Parquet partitioned by day, for a data lake or a cluster
    (``report --engine spark --data DIR`` reads it). --since / --until export the calls
    of that range and their tasks."""
    check_engine(engine, "export")
    lo, hi = time_range(since, until)
    if out is None:
        fail("give --out DIR")
        return
    from ..analyze.source import open_source, restrict
    from ..store.export import export_parquet

    with open_source(db=db) as src:
        done = export_parquet(restrict(src, lo, hi).con, out)
    if as_json:
        print_json(done)
        return
    console().print(f"exported {done['calls']:,} calls ({done['days']} days"
                    + (f", {done['first_day']} .. {done['last_day']}" if done["days"] else "")
                    + f") and {done['tasks']:,} tasks to {done['dir']} "
                    f"({done['bytes'] / 2**20:.1f} MiB)")


def register(app: typer.Typer) -> None:
    app.command("export")(handles_errors(export))
