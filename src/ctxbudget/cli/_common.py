"""Shared CLI plumbing: JSON output, error → exit code mapping, console."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import typer

from ..errors import BudgetExceeded, CtxBudgetError
from ._console import PIPE_WIDTH as PIPE_WIDTH
from ._console import console as console
from ._console import dumps as dumps
from ._console import print_json as print_json

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USER_ERROR = 2
#: The command did its job (a check passed or failed) but a side effect failed: a
#: webhook could not be delivered, a summary file could not be written.
EXIT_SIDE_EFFECT_FAILED = 3


def _flags_without_placeholder() -> None:
    """Typer's rich help prints a ``<bool>`` type after every flag (``--json <bool>``),
    which reads as if the flag took a value: a flag's type column is left empty."""
    from typer.core import TyperOption

    if getattr(TyperOption, "_ctxbudget_flags", False):
        return
    original = TyperOption.display_type_rich

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if self.is_flag and self.metavar is None:
            return None
        result: str | None = original(self, ctx)
        return result

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
    TyperOption._ctxbudget_flags = True  # type: ignore[attr-defined]


_flags_without_placeholder()


#: ``--format`` values of the reading commands (``--json`` is ``--format json``).
FORMATS = ("table", "json", "csv", "markdown")
FORMAT_HELP = "Output: table (terminal), json, csv or markdown."


#: The time range and engine options every reading command takes (one spelling, one help).
SINCE_HELP = "First day or time to include (UTC, ISO 8601)."
UNTIL_HELP = "Last day to include (a date includes that whole day; a time is exclusive)."
ENGINES = ("duckdb", "spark")


def since_option() -> Any:
    return typer.Option(None, "--since", help=SINCE_HELP)


def until_option() -> Any:
    return typer.Option(None, "--until", help=UNTIL_HELP)


def engine_option(duckdb_only: bool = False) -> Any:
    return typer.Option("duckdb", "--engine", help="duckdb (this command runs on DuckDB "
                        "only)." if duckdb_only else "duckdb (default) or spark.")


def parse_when(value: str | None, option: str, *, end: bool = False) -> datetime | None:
    """``--since`` / ``--until``: a date (YYYY-MM-DD; ``end``: the next day's midnight, so
    the whole day is included) or an ISO 8601 time (UTC unless it says), as aware UTC."""
    from datetime import UTC, timedelta

    if value is None:
        return None
    try:
        if len(value) == 10:
            d = datetime.fromisoformat(value).replace(tzinfo=UTC)
            return d + timedelta(days=1) if end else d
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option}: {value!r} is not a date or time (YYYY-MM-DD or ISO 8601)")
        raise AssertionError from None  # unreachable: fail exits
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def time_range(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """The parsed ``--since`` / ``--until`` (exit 2 on a bad value or an empty range)."""
    lo, hi = parse_when(since, "--since"), parse_when(until, "--until", end=True)
    if lo is not None and hi is not None and hi <= lo:
        fail(f"--until {until} is not after --since {since}: the range is empty")
    return lo, hi


def check_engine(engine: str, command: str | None = None) -> None:
    """Exit 2 on an unknown ``--engine``; ``command`` given: it runs on DuckDB only, so
    ``spark`` is refused too (one line saying which commands take it)."""
    if engine not in ENGINES:
        fail(f"--engine: {engine!r} is not one of {', '.join(ENGINES)}")
    if command is not None and engine != "duckdb":
        fail(f"--engine {engine}: {command} runs on DuckDB only (--engine spark applies to "
             "report, signals, check and baseline save)")


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by its owner only (0600; a new folder
    0700): reports hold costs, task ids and model names."""
    import os

    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def output_format(fmt: str, as_json: bool = False) -> str:
    """The ``--format`` value (``--json`` wins); exit 2 on an unknown one."""
    if as_json:
        return "json"
    f = fmt.strip().lower()
    if f == "md":
        f = "markdown"
    if f not in FORMATS:
        fail(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    return f


def one_line_usage_errors() -> type:
    """The root group class of the CLI: a usage error (an unknown option, a value of the
    wrong type, a missing argument) is one line on stderr and exit 2, like every other
    user error, instead of click's boxed usage text."""
    from typer.core import TyperGroup

    try:  # recent typers vendor click: its exceptions are typer's own copies
        from typer._click import exceptions as click
    except ImportError:  # pragma: no cover - typer using the click package
        from click import exceptions as click  # type: ignore[no-redef]

    class OneLineGroup(TyperGroup):
        def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
                 complete_var: str | None = None, standalone_mode: bool = True,
                 windows_expand_args: bool = True, **extra: Any) -> Any:
            if not standalone_mode:
                return super().main(args, prog_name, complete_var, standalone_mode,
                                    windows_expand_args, **extra)
            try:
                rv = super().main(args, prog_name, complete_var, False, windows_expand_args,
                                  **extra)
            except click.UsageError as exc:
                if type(exc).__name__ == "NoArgsIsHelpError":  # the help is the message
                    exc.show()
                    sys.exit(exc.exit_code)
                msg = " ".join(exc.format_message().split())
                where = exc.ctx.command_path if exc.ctx is not None else "ctxbudget"
                sys.stderr.write(f"error: {msg} (see: {where} --help)\n")
                sys.exit(EXIT_USER_ERROR)
            except click.ClickException as exc:
                exc.show()
                sys.exit(exc.exit_code)
            except typer.Abort:
                sys.stderr.write("Aborted!\n")
                sys.exit(1)
            sys.exit(rv if isinstance(rv, int) else EXIT_OK)

    return OneLineGroup


def err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def fail(message: str, code: int = EXIT_USER_ERROR) -> None:
    """Print one line to stderr and exit with ``code``."""
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


@contextmanager
def user_errors(prefix: str = "") -> Iterator[None]:
    """Map ctxbudget errors to one line on stderr and exit code 2 (1 for a breached budget).

    ``prefix`` (e.g. ``"FILE: "``) is put before the message.
    """
    try:
        yield
    except BudgetExceeded as exc:
        sys.stderr.write(f"budget exceeded: {exc}\n")
        raise typer.Exit(EXIT_CHECK_FAILED) from None
    except CtxBudgetError as exc:
        sys.stderr.write(f"error: {prefix}{exc}\n")
        raise typer.Exit(EXIT_USER_ERROR) from None
    except FileNotFoundError as exc:
        sys.stderr.write(f"error: {exc.filename or exc}: file not found\n")
        raise typer.Exit(EXIT_USER_ERROR) from None
    except BrokenPipeError:
        raise typer.Exit(EXIT_OK) from None
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        sys.stderr.write(f"error: {prefix}this needs the '{extra}' extra ({exc.name} is not "
                         f"installed): pip install 'ctxbudget[{extra}]'\n")
        raise typer.Exit(EXIT_USER_ERROR) from None
    except Exception as exc:
        if type(exc).__name__ != "IOException" or "duckdb" not in type(exc).__module__:
            raise
        # the store (or a file DuckDB reads) failed under a query: damaged, or a full disk
        from ..store.db import default_db_path, store_error

        where = getattr(exc, "filename", None) or _duckdb_file(str(exc)) or default_db_path()
        sys.stderr.write(f"error: {store_error(Path(where), exc, 'could not read')}\n")
        raise typer.Exit(EXIT_USER_ERROR) from None


#: Optional packages -> the extra that installs them (the base install is slim:
#: pyproject.toml). A command that meets a missing one says which extra to install.
EXTRAS: dict[str, str] = {
    "duckdb": "analyze", "pyarrow": "analyze", "numpy": "analyze", "plotly": "analyze",
    "pandas": "analyze", "scipy": "analyze", "httpx": "analyze",
    "pyspark": "spark", "sqlglot": "spark",
    "anthropic": "anthropic", "openai": "openai", "tokenizers": "hf",
    "opentelemetry": "otel", "starlette": "gateway", "uvicorn": "gateway",
    "redis": "gateway", "httptools": "gateway",
    "google": "genai", "boto3": "bedrock", "botocore": "bedrock", "litellm": "litellm",
    "numba": "sim",
}


def _duckdb_file(msg: str) -> str | None:
    import re

    m = re.search(r'file "([^"]+)"', msg)
    return m.group(1) if m else None


def handles_errors(fn: F) -> F:
    """Decorator form of :func:`user_errors` for typer commands."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with user_errors():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option}: {value!r} is not a date (YYYY-MM-DD)")
    return None
