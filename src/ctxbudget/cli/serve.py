"""``ctxbudget serve``: the live dashboard (read-only) over a store or a calls Parquet file."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import typer

from ._common import (
    check_engine,
    engine_option,
    err_console,
    fail,
    handles_errors,
    since_option,
    time_range,
    until_option,
)


def serve(
    db: Path | None = typer.Option(None, "--db", help="Usage store (default: yours, plus "
                                   "the tracker's spool records not yet ingested)."),
    data: Path | None = typer.Option(None, "--data", help="Read calls from a Parquet file."),
    spool: Path | None = typer.Option(None, "--spool", help="Also show the records of this "
                                      "tracker spool folder not yet ingested."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind."),
    port: int = typer.Option(8788, "--port", min=0, max=65535, help="Port (0: any free)."),
    token: str | None = typer.Option(None, "--token", envvar="CTXBUDGET_SERVE_TOKEN",
                                     help="Require this access token on every request."),
    tz: str = typer.Option("UTC", "--tz", help="Time zone of the day buckets (IANA name)."),
    since: str | None = since_option(), until: str | None = until_option(),
    engine: str = engine_option(duckdb_only=True),
    prices: list[Path] | None = typer.Option(None, "--prices",
                                             help="Price overrides YAML (repeatable)."),
    refresh: float = typer.Option(2.0, "--refresh", min=0.2,
                                  help="Seconds between checks for new data."),
    gateway: list[str] | None = typer.Option(
        None, "--gateway", help="Base URL of a running 'ctxbudget gateway' whose budgets "
        "the overview shows (repeatable: one per replica)."),
) -> None:
    """Serve a live dashboard: spend per day and task type, drill-down to one call and
    why its cache missed, what-if re-pricing. Read-only; binds to 127.0.0.1 by default."""
    try:
        import duckdb  # noqa: F401
        import scipy  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        fail(f"ctxbudget serve needs the 'serve' extra ({exc.name} is not installed): "
             "pip install 'ctxbudget[serve]'")
    from ..prices import PriceBook, default_pricebook
    from ..serve.dashboard import Dataset, create_app

    check_engine(engine, "serve")
    lo, hi = time_range(since, until)

    if db is not None and data is not None:
        fail("give --db or --data, not both")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not token:
        err_console().print(f"warning: serving on {host} without --token: anyone who can "
                            "reach this port can read your usage data")
    book = PriceBook(overrides=tuple(prices)) if prices else default_pricebook()
    ds = Dataset(db=db, data=data, spool=spool, book=book, tz=tz, refresh_s=refresh,
                 since=lo, until=hi)
    err_console().print(f"computing the dashboard over {ds.label} ...")
    snap = ds.snapshot()
    assert snap is not None
    err_console().print(f"ready in {snap.build_s:.2f} s; serving http://{host}:{port}/ "
                        "(Ctrl-C stops)")
    ds.start_refresher()
    for g in gateway or ():
        if not g.startswith(("http://", "https://")):
            fail(f"--gateway: {g!r} is not an http(s) URL")
    app = create_app(ds, token=token, gateways=tuple(gateway or ()))
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        ds.close()
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("serve")(handles_errors(serve))


__all__ = ["register"]
