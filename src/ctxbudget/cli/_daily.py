"""``report --by day`` from the day summary (:mod:`ctxbudget.analyze.summary`), with
or without ``--from claude-code``: the daily run.

:func:`run` is called by the ``report`` command and, before the CLI framework is
even imported, by :func:`ctxbudget.cli.main.main` through :func:`fast_main` when the
command line holds only options it understands (anything else goes to typer, which
validates it). Either way the summary declines whatever it cannot answer exactly and
the command's SQL path answers.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["eligible", "fast_main", "render", "run"]

_UTC = ("UTC", "utc", "Etc/UTC")


def eligible(*, by: str, since: Any, until: Any, tz: str, data: Any, engine: str, prices: Any,
             html: Any, from_: str | None) -> bool:
    """Whether the options leave a report the summary can give."""
    return (by == "day" and since is None and until is None and tz in _UTC and data is None
            and engine == "duckdb" and not prices and html is None
            and from_ in (None, "claude-code"))


def run(*, db: Path | None, logs: list[Path] | None, out: str, limit: int,
        wasted: bool) -> bool:
    """Print the report from the summary; False (nothing printed) when it declines."""
    from ..analyze.summary import Decline, enabled

    if not enabled():
        return False
    from ..analyze._summary_run import summary_day_report
    from ..store._paths import default_db_path

    path = Path(db) if db is not None else default_db_path()
    try:
        rep, stats = summary_day_report(path, logs=logs, source=str(path), wasted=wasted,
                                        spool=db is None and logs is None)
    except Decline:
        return False
    if stats is not None and out == "table":
        grown = f", {stats.appended_files:,} grown" if stats.appended_files else ""
        sys.stderr.write(f"imported claude-code: {stats.accepted:,} calls from "
                         f"{stats.files:,} files read{grown}, {stats.unchanged_files:,} "
                         "unchanged\n")
    render(rep, out, limit)
    return True


def render(rep: Any, out: str, limit: int) -> None:
    """Print a report in the ``--format`` ``out`` (table: the first ``limit`` rows)."""
    if out == "json":
        from ..report.json import to_jsonable
        from ._console import print_json

        print_json(to_jsonable(rep))
    elif out == "csv":
        from ..report.formats import write_csv

        write_csv([r.as_dict() for r in rep.rows], sys.stdout)
    elif out == "markdown":
        from ..report.formats import grids_markdown, plain
        from ..report.terminal import report_grids, report_notes

        sys.stdout.write(grids_markdown(report_grids(rep, limit or None)))
        for n in report_notes(rep, limit or None):
            sys.stdout.write(plain(n) + "\n")
    else:
        from ..report.terminal import ReportView
        from ._console import console

        console().print(ReportView(rep, limit=limit or None))


_VALUE_OPTS = {"--from", "--by", "--db", "--format", "--limit", "--tz"}
_FLAGS = {"--json", "--waste", "--no-waste"}


def fast_main(argv: Sequence[str]) -> bool:
    """``ctxbudget report ...`` answered from the summary without typer; False when the
    command line is not one it handles (typer then runs it, summary or not)."""
    if not argv or argv[0] != "report":
        return False
    opts: dict[str, str] = {}
    flags: set[str] = set()
    args: list[str] = []
    it = iter(argv[1:])
    for a in it:
        name, eq, value = a.partition("=")
        if a.startswith("--") and name in _VALUE_OPTS:
            if not eq:
                value = next(it, "")
                if not value or value.startswith("-"):
                    return False
            if name in opts:
                return False
            opts[name] = value
        elif a in _FLAGS:
            flags.add(a)
        elif a.startswith("-"):
            return False  # --help, another option: typer
        else:
            args.append(a)
    if opts.get("--by") != "day" or len(args) > 1 or ("--waste" in flags and "--no-waste" in flags):
        return False
    from_ = opts.get("--from")
    if args and from_ is None:
        return False
    if not eligible(by="day", since=None, until=None, tz=opts.get("--tz", "UTC"), data=None,
                    engine="duckdb", prices=None, html=None, from_=from_):
        return False
    fmt = "json" if "--json" in flags else opts.get("--format", "table").strip().lower()
    fmt = "markdown" if fmt == "md" else fmt
    if fmt not in ("table", "json", "csv", "markdown"):
        return False
    try:
        limit = int(opts.get("--limit", "50"))
    except ValueError:
        return False
    if limit < 0:
        return False
    logs = None
    if from_ is not None:
        from ._logs import default_log_paths

        logs = [Path(args[0])] if args else default_log_paths(from_)
        if any(not p.exists() for p in logs):
            return False  # typer's path says which folder is missing
    db = opts.get("--db")
    return run(db=Path(db) if db else None, logs=logs, out=fmt, limit=limit,
               wasted="--no-waste" not in flags)
