"""``ctxbudget import FORMAT PATH...``: load external usage logs into the store."""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import typer

from ._common import EXIT_USER_ERROR, console, handles_errors, print_json

#: Inputs at least this large get a progress bar (on a terminal only).
PROGRESS_MIN_BYTES = 32 * 1024 * 1024


def import_(
    fmt: str = typer.Argument(..., metavar="FORMAT",
                              help="claude-code, codex, openai-batch, anthropic-batch, otel, "
                                   "litellm, langfuse, table (or a plugin's format)."),
    paths: list[str] | None = typer.Argument(
        None, metavar="PATH...", help="Files, folders (searched recursively) or '-' (not with "
        "--host / --url, which read from an API instead)."),
    db: Path | None = typer.Option(None, "--db", help="Store file (default "
                                   "$CTXBUDGET_HOME/usage.duckdb)."),
    strict: bool = typer.Option(False, "--strict",
                                help="Stop with exit 2 at the first rejected line (files "
                                     "already written stay imported; fix and re-run)."),
    reimport: bool = typer.Option(False, "--reimport",
                                  help="Read files again even if already imported unchanged."),
    mapping: str | None = typer.Option(None, "--map", help="table: FIELD=COLUMN,... "
                                       "(e.g. input_tokens=prompt_uncached,ts=timestamp)."),
    inclusive: bool = typer.Option(False, "--inclusive", help="table: the input column "
                                   "includes cache reads and writes."),
    provider: str | None = typer.Option(
        None, "--provider", help="openai-batch / anthropic-batch: the price-catalog provider "
        "(groq, mistral...; default: from the body's shape, else from the model)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    host: str | None = typer.Option(None, "--host", envvar="LANGFUSE_HOST",
                                    help="langfuse: read the Langfuse API at this URL."),
    public_key: str | None = typer.Option(None, "--public-key", envvar="LANGFUSE_PUBLIC_KEY",
                                          help="langfuse: public key."),
    secret_key: str | None = typer.Option(None, "--secret-key", envvar="LANGFUSE_SECRET_KEY",
                                          help="langfuse: secret key."),
    url: str | None = typer.Option(None, "--url", help="litellm: read the spend logs of the "
                                   "LiteLLM proxy at this URL."),
    key: str | None = typer.Option(None, "--key", envvar="LITELLM_MASTER_KEY",
                                   help="litellm: proxy admin key."),
    since: str | None = typer.Option(None, "--from", help="--host / --url: first start "
                                     "time to read (default: where the last pull stopped)."),
) -> None:
    """Import usage logs; idempotent (re-importing adds nothing), rejected lines listed
    as file:line. With --host (langfuse) or --url (litellm), read the system's API
    instead: paged, and incremental since the last pull."""
    from ..sources import StrictStop, get_importer, import_paths
    from ..store.db import open_store

    if host is not None or url is not None:
        _pull(fmt, paths, db, host, public_key, secret_key, url, key, since, as_json)
        return
    if not paths:
        raise typer.BadParameter("give files to import (or --host / --url to read an API)",
                                 param_hint="PATH...")

    options: dict[str, Any] = {}
    if mapping is not None or inclusive:
        if fmt != "table":
            raise typer.BadParameter("--map / --inclusive apply to the table format only")
        options = {"mapping": mapping, "inclusive": inclusive}
    if provider is not None:
        if fmt not in ("openai-batch", "anthropic-batch"):
            raise typer.BadParameter("--provider applies to openai-batch and anthropic-batch")
        options["provider"] = provider
    importer = get_importer(fmt, **options)
    with ExitStack() as stack:
        store = stack.enter_context(open_store(db))
        bar = _progress(stack)
        try:
            stats = import_paths(
                importer, [Path(p) for p in paths], store, strict=strict, reimport=reimport,
                progress=bar.advance if bar else None, on_total=bar.start if bar else None)
        except StrictStop as exc:
            sys.stderr.write(f"error: rejected {exc.rejection} (--strict)\n")
            raise typer.Exit(EXIT_USER_ERROR) from None
    _accepted_something(stats)
    if as_json:
        print_json(stats.as_dict())
        return
    _print_summary(stats)


def _accepted_something(stats: Any) -> None:
    """An import that read lines, rejected some and accepted none is a user error (a wrong
    format, a mapping that matches nothing): one line naming the first rejection, exit 2,
    instead of a rejection per line. Lines that were all *skipped* (not API calls: a log
    with no model reply yet) are not an error; a warning says so when no file was read
    from a previous offset."""
    if stats.accepted or not stats.lines:
        return
    fmt = stats.format
    if stats.rejected:
        first = stats.rejections[0] if stats.rejections else None
        where = f"; first: {first}" if first is not None else ""
        sys.stderr.write(
            f"error: nothing imported as {fmt}: {stats.rejected:,} of {stats.lines:,} "
            f"lines rejected{where} (is {fmt} the right format? `ctxbudget import --help` "
            "lists the formats)\n")
        raise typer.Exit(EXIT_USER_ERROR)
    if not stats.appended_files and stats.skipped:
        reasons = ", ".join(f"{r} ({n:,})" for r, n in sorted(stats.skipped.items()))
        sys.stderr.write(f"warning: nothing imported as {fmt}: every line was skipped "
                         f"({reasons}); is {fmt} the right format?\n")


def _pull(fmt: str, paths: list[str] | None, db: Path | None, host: str | None,
          public_key: str | None, secret_key: str | None, url: str | None, key: str | None,
          since: str | None, as_json: bool) -> None:
    from ..sources.pull import pull_langfuse, pull_litellm
    from ..store.db import open_store

    if paths:
        raise typer.BadParameter("PATH... and --host / --url exclude each other")
    if host is not None:
        if fmt != "langfuse":
            raise typer.BadParameter("--host reads the Langfuse API: use format langfuse")
        if not public_key or not secret_key:
            raise typer.BadParameter("--host needs --public-key and --secret-key (or "
                                     "LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY)")
        with open_store(db) as store:
            stats = pull_langfuse(store, host=host, public_key=public_key,
                                  secret_key=secret_key, since=since)
    else:
        if fmt != "litellm":
            raise typer.BadParameter("--url reads a LiteLLM proxy: use format litellm")
        if not key:
            raise typer.BadParameter("--url needs --key (or LITELLM_MASTER_KEY)")
        with open_store(db) as store:
            stats = pull_litellm(store, url=str(url), key=key, since=since)
    if as_json:
        print_json(stats.as_dict())
    else:
        _print_summary(stats)


class _Bar:
    def __init__(self, stack: ExitStack) -> None:
        self.stack = stack
        self.progress: Any = None
        self.task: Any = None
        self.shown = 0.0

    def start(self, total: int) -> None:
        if total < PROGRESS_MIN_BYTES:
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        from ._common import err_console

        # no refresh thread (auto_refresh): the claude-code fast path forks its
        # parser workers only while this process runs a single thread
        self.progress = self.stack.enter_context(Progress(
            TextColumn("importing"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=err_console(), transient=True, auto_refresh=False))
        self.task = self.progress.add_task("import", total=total)
        self.progress.refresh()

    def advance(self, n: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, n)
            now = time.monotonic()
            if now - self.shown >= 0.1:
                self.progress.refresh()
                self.shown = now


def _progress(stack: ExitStack) -> _Bar | None:
    return _Bar(stack) if sys.stderr.isatty() else None


def _print_summary(stats: Any) -> None:
    out = sys.stderr
    for r in stats.rejections:
        out.write(f"rejected {r}\n")
    if stats.rejected > len(stats.rejections):
        out.write(f"... and {stats.rejected - len(stats.rejections)} more rejected lines\n")
    from rich.table import Table

    t = Table(title=f"import {stats.format}", show_header=False)
    t.add_column("what")
    t.add_column("count", justify="right")
    t.add_row("files read", f"{stats.files:,}")
    if stats.unchanged_files:
        t.add_row("files unchanged (skipped)", f"{stats.unchanged_files:,}")
    if stats.appended_files:
        t.add_row("files grown (new lines read)", f"{stats.appended_files:,}")
    t.add_row("lines", f"{stats.lines:,}")
    t.add_row("calls accepted", f"{stats.accepted:,}")
    t.add_row("duplicates collapsed", f"{stats.duplicates:,}")
    for reason, n in sorted(stats.skipped.items()):
        t.add_row(f"skipped: {reason}", f"{n:,}")
    t.add_row("rejected", f"{stats.rejected:,}", style="bold red" if stats.rejected else None)
    console().print(t)


def register(app: typer.Typer) -> None:
    app.command("import")(handles_errors(import_))
