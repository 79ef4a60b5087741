"""``ctxbudget count``: tokens per file and in total, exact or estimated."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import console, fail, handles_errors, print_json

#: Above this many input bytes (or files), show a progress bar on a terminal.
PROGRESS_BYTES = 50_000_000
PROGRESS_FILES = 200
#: Files are read and counted in batches of about this many bytes.
BATCH_BYTES = 8_000_000


def _check(files: list[Path]) -> list[int]:
    """Sizes of ``files``; exit 2 naming the first one that is missing or not a file."""
    sizes = []
    for f in files:
        try:
            st = f.stat()
        except FileNotFoundError:
            fail(f"{f}: file not found")
        except OSError as exc:
            fail(f"{f}: cannot read ({exc.strerror})")
        if not f.is_file():
            fail(f"{f}: not a regular file")
        sizes.append(st.st_size)
    return sizes


def _read_text(f: Path) -> str:
    """The file as UTF-8 text; exit 2 naming it when it is binary or not UTF-8."""
    try:
        data = f.read_bytes()
    except OSError as exc:
        fail(f"{f}: cannot read ({exc.strerror})")
    if b"\x00" in data[:65536]:
        fail(f"{f}: binary file (NUL bytes); count reads UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail(f"{f}: not UTF-8 text (invalid byte at offset {exc.start})")
    raise AssertionError("unreachable")


def want_progress(total_bytes: int, n_files: int) -> bool:
    """A progress bar only on a terminal, and only for large inputs."""
    big = total_bytes > PROGRESS_BYTES or n_files > PROGRESS_FILES
    return big and sys.stderr.isatty()


def _batches(files: list[Path], sizes: list[int]) -> list[list[int]]:
    out: list[list[int]] = [[]]
    acc = 0
    for i, size in enumerate(sizes):
        if out[-1] and acc + size > BATCH_BYTES:
            out.append([])
            acc = 0
        out[-1].append(i)
        acc += size
    return out


def count(
    files: Annotated[list[Path], typer.Argument(metavar="FILE...",
                                                help="UTF-8 text files to count.")],
    model: Annotated[str, typer.Option("--model", "-m",
                                       help="Model, e.g. gpt-4o, claude-sonnet-4-5.")],
    provider: Annotated[str | None, typer.Option("--provider", "-p", help="Provider id.")] = None,
    tokenizer: Annotated[Path | None, typer.Option(
        "--tokenizer", help="A Hugging Face tokenizer.json (exact count).")] = None,
    calibration: Annotated[Path | None, typer.Option(
        "--calibration", help="Calibration JSON for the estimator.")] = None,
    threads: Annotated[int, typer.Option(
        "--threads", min=1,
        help="Encoding workers (processes for large tiktoken batches, else threads).")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Count tokens per file and in total; says whether exact and which tokenizer/estimator."""
    from ..tokens import Calibration, count_many

    cal = Calibration.load(calibration) if calibration is not None else None
    sizes = _check(files)
    total_bytes = sum(sizes)
    show = want_progress(total_bytes, len(files))
    rows: list[dict[str, Any]] = []
    progress: Any = None
    task: Any = None
    if show:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        from ._common import err_console

        progress = Progress(TextColumn("counting"), BarColumn(), DownloadColumn(),
                            TransferSpeedColumn(), TimeRemainingColumn(),
                            console=err_console(), transient=True)
        progress.start()
        task = progress.add_task("count", total=total_bytes)
    method = note = ""
    exact = True
    try:
        for batch in _batches(files, sizes):
            texts = [_read_text(files[i]) for i in batch]
            counts = count_many(texts, model, threads=threads, provider=provider,
                                tokenizer=tokenizer, calibration=cal)
            for i, text, c in zip(batch, texts, counts, strict=True):
                rows.append({"path": str(files[i]), "bytes": sizes[i], "chars": len(text),
                             "tokens": c.tokens, "exact": c.exact})
                method, note, exact = c.method, c.note, exact and c.exact
            if progress is not None:
                progress.advance(task, sum(sizes[i] for i in batch))
    finally:
        if progress is not None:
            progress.stop()
    from ..tokens import provider_for_model

    total = sum(r["tokens"] for r in rows)
    out = {"model": model, "provider": provider_for_model(model, provider), "method": method,
           "exact": exact, "note": note, "files": rows, "total_tokens": total,
           "total_bytes": total_bytes}
    if as_json:
        print_json(out)
        return
    from rich.table import Table

    kind = "exact" if exact else "estimate"
    t = Table(title=f"{model}: {method} ({kind})", caption=note or None)
    t.add_column("file")
    t.add_column("bytes", justify="right")
    t.add_column("tokens", justify="right")
    for r in rows:
        t.add_row(r["path"], f"{r['bytes']:,}", f"{r['tokens']:,}")
    if len(rows) > 1:
        t.add_row("total", f"{total_bytes:,}", f"{total:,}", style="bold")
    console().print(t)


def register(app: typer.Typer) -> None:
    app.command("count")(handles_errors(count))
