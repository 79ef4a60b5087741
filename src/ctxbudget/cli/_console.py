"""Console and JSON output without the CLI framework (the day summary's fast path of
``report`` prints through these before typer is imported)."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["PIPE_WIDTH", "console", "dumps", "print_json"]


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return str(o)
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    as_dict = getattr(o, "as_dict", None)
    if callable(as_dict):
        return as_dict()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def dumps(obj: Any) -> str:
    """JSON with Decimals as strings (exact money), dates as ISO strings."""
    return json.dumps(obj, default=_default, indent=2, ensure_ascii=False)


def print_json(obj: Any) -> None:
    sys.stdout.write(dumps(obj) + "\n")


#: Width of the console when stdout is not a terminal (a pipe, a file, a CI log):
#: tables are drawn at their natural width, never folded to 80 columns.
PIPE_WIDTH = 100_000


def console() -> Any:
    """stdout console: the terminal's width on a terminal; otherwise as wide as the
    content, so a number is never split and no column dropped (``| cat``, ``> file``).

    No automatic highlighting (``highlight=False``): rich's regex highlighter is
    quadratic on long cells (a 200 kB model name from a bad log took minutes), and
    our tables style their own cells."""
    from rich.console import Console

    c = Console(highlight=False)
    if c.is_terminal:
        return c
    return Console(width=PIPE_WIDTH, soft_wrap=False, highlight=False)
