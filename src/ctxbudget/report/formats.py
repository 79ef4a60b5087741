"""Output for every consumer: tables that never cut a number, CSV, Markdown.

A view describes its tables as :class:`Grid` objects (formatted cells); this module
renders them:

- on a terminal wide enough, as rich tables;
- on a terminal narrower than a table, as *records* - one block per row, ``column
  value`` pairs wrapped at spaces, so a number is never split and no column dropped;
- when the output is not a terminal, the CLI's console is as wide as the content
  (:func:`ctxbudget.cli._common.console`), so the table is drawn at its full width;
- as GitHub-flavoured Markdown tables (:func:`grids_markdown`);
- CSV is written from the raw values, not the formatted cells (:func:`write_csv`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Column", "Fit", "Grid", "grids_markdown", "md_escape", "plain", "write_csv"]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    align: str = "right"
    """``left`` or ``right``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Grid:
    """A table of formatted cells (rich markup allowed in cells: stripped in Markdown)."""

    title: str
    columns: tuple[Column, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    bold_last: bool = False
    """The last row is a total."""

    def table(self) -> Any:
        from rich.table import Table

        t = Table(title=self.title)
        for c in self.columns:
            t.add_column(c.name, justify="left" if c.align == "left" else "right")
        for i, r in enumerate(self.rows):
            last = self.bold_last and i == len(self.rows) - 1
            t.add_row(*r, style="bold" if last else None)
        return t

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        yield Fit(self)


def plain(cell: str) -> str:
    """A cell without rich markup."""
    if "[" not in cell:
        return cell
    from rich.text import Text

    return Text.from_markup(cell).plain


@dataclass(frozen=True, slots=True)
class Fit:
    """A grid as a rich table when it fits the width, else as wrapped records."""

    grid: Grid

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.measure import Measurement

        table = self.grid.table()
        need = Measurement.get(console, options.update_width(10**6), table).maximum
        if need <= options.max_width:
            yield table
            return
        yield from _records(self.grid, options.max_width)

    def __rich_measure__(self, console: Any, options: Any) -> Any:
        from rich.measure import Measurement

        return Measurement.get(console, options, self.grid.table())


def _records(g: Grid, width: int) -> Iterator[Any]:
    from rich.text import Text

    if g.title:
        yield Text(g.title, style="bold")
    key_cols = [i for i, c in enumerate(g.columns) if c.align == "left"][:3] or [0]
    for r in g.rows:
        head = "  ".join(plain(r[i]) for i in key_cols if plain(r[i]))
        pairs = [f"{g.columns[i].name} {plain(v)}" for i, v in enumerate(r)
                 if i not in key_cols and plain(v) not in ("", "-")]
        yield Text(head, style="bold")
        # pairs packed greedily into lines: a "column value" pair is never split
        line = ""
        for p in pairs:
            if line and len(line) + 3 + len(p) > width:
                yield Text(line, no_wrap=True, overflow="ignore")
                line = ""
            line = f"{line}   {p}" if line else f"    {p}"
        if line:
            yield Text(line, no_wrap=True, overflow="ignore")


def md_escape(cell: str) -> str:
    """A Markdown table cell: markup stripped, pipes escaped, one line."""
    return plain(cell).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def grids_markdown(grids: Iterable[Grid], level: int = 3) -> str:
    """GitHub-flavoured Markdown: a heading and a table per grid."""
    out: list[str] = []
    for g in grids:
        if g.title:
            out += [f"{'#' * level} {md_escape(g.title)}", ""]
        out.append("| " + " | ".join(md_escape(c.name) for c in g.columns) + " |")
        out.append("|" + "|".join(":---" if c.align == "left" else "---:"
                                  for c in g.columns) + "|")
        for i, r in enumerate(g.rows):
            cells = [md_escape(v) for v in r]
            if g.bold_last and i == len(g.rows) - 1:
                cells = [f"**{c}**" if c else c for c in cells]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def _csv_value(v: Any) -> Any:
    from decimal import Decimal

    if v is None:
        return ""
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list | tuple | dict):
        import json

        return json.dumps(v, default=str)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def write_csv(rows: Sequence[Mapping[str, Any]], out: Any = None,
              columns: Sequence[str] | None = None) -> str:
    """Rows of raw values as CSV (exact money as decimal strings, lists as JSON).

    Returns the text; also writes it to ``out`` when given."""
    cols = list(columns) if columns is not None else list(
        dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _csv_value(r.get(k)) for k in cols})
    text = buf.getvalue()
    if out is not None:
        out.write(text)
    return text
