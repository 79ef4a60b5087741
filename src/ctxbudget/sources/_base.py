"""The importer contract: records in, :class:`~ctxbudget.usage.Call` records out.

An importer knows one external format. It names the files it reads under a folder
(:meth:`Importer.discover`), splits a file into records with their line numbers
(:meth:`Importer.records`, streaming), and converts one record into zero or more
``Call`` objects (:meth:`Importer.convert`). A record that is not an API call by
design (a user line in a Claude Code log, a span without ``gen_ai.*`` usage) is
*skipped* with a reason (:class:`Skip`); a record that should be a call but is
malformed raises :class:`~ctxbudget.errors.InputFormatError` or
:class:`~ctxbudget.errors.UsageError` and is *rejected* (reported as file:line).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, ClassVar

from ..errors import InputFormatError

__all__ = [
    "STDIN",
    "ImportStats",
    "Importer",
    "Record",
    "Rejection",
    "Skip",
    "csv_records",
    "decode_json_line",
    "json_or_csv_records",
    "json_records",
    "jsonl_records",
    "open_binary",
    "parse_ts",
    "short_repr",
]

#: The path that means "read standard input".
STDIN = Path("-")


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One raw record and where it came from."""

    path: Path
    line: int
    """1-based line number of the record's first line (1 for a whole-file document)."""
    value: Any
    """The decoded record (a dict for JSON / CSV), or an :class:`Exception` when the
    line could not even be decoded (it is then rejected with that reason)."""
    nbytes: int = 0
    """Bytes of input this record consumed (for progress bars)."""
    item: int | None = None
    """0-based index in a JSON array document (rejections then say ``item N``)."""


@dataclass(frozen=True, slots=True)
class Skip:
    """A record that is not an API call by design, with the reason it is skipped."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """A malformed record: ``file:line: reason``."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass(kw_only=True)
class ImportStats:
    """What one import did. Every input line is in exactly one of ``records`` (as
    accepted, duplicate or skipped) or ``rejected``."""

    format: str
    files: int = 0
    """Input files read (unchanged files skipped thanks to the ``imports`` table excluded)."""
    unchanged_files: int = 0
    """Files skipped because the ``imports`` table shows them already imported unchanged."""
    appended_files: int = 0
    """Files that grew since the last import, read from where it stopped (only the
    new bytes are read; they are counted in :attr:`files` too)."""
    lines: int = 0
    """Input lines (or records for whole-file formats) read."""
    calls: int = 0
    """Call records parsed, before de-duplication."""
    accepted: int = 0
    """Distinct calls written to the store (inserted or replaced by ``call_key``)."""
    duplicates: int = 0
    """Call records collapsed into another copy of the same call (``calls - accepted``)."""
    rejected: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    """Records that are not API calls by design, per reason."""
    rejections: list[Rejection] = field(default_factory=list)
    """The first rejected records (up to :attr:`max_listed`), in input order."""
    max_listed: int = 50
    engine: str = ""
    """The parser that read the files: an importer's fast path (``msgspec`` for
    ``claude-code``), ``python`` (line by line), or ``<fast>+python`` when both did."""

    def skip(self, reason: str, n: int = 1) -> None:
        if n:
                self.skipped[reason] = self.skipped.get(reason, 0) + n

    def reject(self, r: Rejection) -> None:
        self.rejected += 1
        if len(self.rejections) < self.max_listed:
            self.rejections.append(r)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "files": self.files,
            "unchanged_files": self.unchanged_files,
            "appended_files": self.appended_files,
            "lines": self.lines,
            "calls": self.calls,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "skipped": dict(sorted(self.skipped.items())),
            "rejections": [
                {"path": r.path, "line": r.line, "reason": r.reason} for r in self.rejections
            ],
            "engine": self.engine,
        }


class Importer:
    """Base class of every importer; subclasses set :attr:`name` and override
    :meth:`convert` (and :meth:`records` / :meth:`discover` when needed)."""

    name: ClassVar[str] = ""
    """The FORMAT argument of ``ctxbudget import``."""
    description: ClassVar[str] = ""
    patterns: ClassVar[tuple[str, ...]] = ("*.jsonl",)
    """Globs matched recursively under a folder argument."""
    source: ClassVar[str] = ""
    """``Call.source`` of the calls (the ``call_key`` prefix); defaults to :attr:`name`."""
    appendable: ClassVar[bool] = False
    """Files are append-only JSON Lines (read by :func:`jsonl_records`): a file that
    grew is read on from where the last import stopped (see ``sources._runner``)."""

    def __init__(self, **options: Any) -> None:
        if options:
            raise InputFormatError(
                f"import {self.name}: unknown option(s) {', '.join(sorted(options))}")

    # -- files -------------------------------------------------------------
    def discover(self, path: Path) -> list[Path]:
        """The files to read for a path argument: the file itself, or the matching
        files under a folder (recursive, sorted)."""
        if path == STDIN or path.is_file():
            return [path]
        if not path.exists():
            raise InputFormatError(f"{path}: no such file or folder")
        found: set[Path] = set()
        for pat in self.patterns:
            found.update(p for p in path.rglob(pat) if p.is_file())
        return sorted(found)

    # -- records -----------------------------------------------------------
    def records(self, path: Path) -> Iterator[Record]:
        """The records of one file, streaming (JSON Lines by default)."""
        return jsonl_records(path)

    def convert(self, rec: Record) -> Iterable[Any]:
        """Yield :class:`~ctxbudget.usage.Call` and/or :class:`Skip` for one record;
        raise ``InputFormatError`` / ``UsageError`` for a malformed one."""
        raise NotImplementedError

    def file_state(self, path: Path) -> Any:
        """(Appendable, stateful formats) what reading ``path`` on from where it
        stopped needs, as JSON-able data; ``None`` when each line stands alone."""
        return None

    def resume(self, path: Path, state: Any) -> None:
        """(Appendable formats) restore :meth:`file_state` before reading ``path`` on."""

    def rank(self, call: Any) -> Any:
        """Among copies of one call (same ``call_key``) the one with the greatest rank
        is kept; ties keep the later copy. Default: always the later copy."""
        return 0

    @property
    def call_source(self) -> str:
        return self.source or self.name


# -- readers -----------------------------------------------------------------


def open_binary(path: Path) -> IO[bytes]:
    if path == STDIN:
        return sys.stdin.buffer
    return path.open("rb")


def jsonl_records(path: Path) -> Iterator[Record]:
    """One record per non-blank line; undecodable lines yield the exception."""
    with open_binary(path) as fh:
        for no, raw in enumerate(fh, 1):
            n = len(raw)
            text = raw.strip()
            if not text:
                continue
            yield Record(path=path, line=no, value=decode_json_line(text), nbytes=n)


def decode_json_line(text: bytes) -> Any:
    """One JSON Lines record, or the :class:`InputFormatError` saying why it is not
    (malformed JSON, bytes that are not UTF-8, an integer too long for Python's
    int-from-string limit, nesting too deep to decode)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        return _json_error(exc)


def _json_error(exc: BaseException) -> InputFormatError:
    if isinstance(exc, json.JSONDecodeError):
        msg = exc.msg
    elif isinstance(exc, RecursionError):
        msg = "nested too deeply"
    else:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return InputFormatError(f"not valid JSON ({msg})")


def json_records(path: Path, list_key: str | None = None) -> Iterator[Record]:
    """A file holding either one JSON document, a JSON array of records, or JSON
    Lines. An array (or the array under ``list_key``) yields one record per item;
    items carry the line number of the document's start."""
    with open_binary(path) as fh:
        head = fh.read(1 << 16)
        first = head.lstrip()[:1]
        if first == b"[" or (first == b"{" and not _looks_like_jsonl(head)):
            data = head + fh.read()
            try:
                doc = json.loads(data)
            except (ValueError, RecursionError) as exc:  # + UnicodeDecodeError, int limit
                line = exc.lineno if isinstance(exc, json.JSONDecodeError) else 1
                yield Record(path=path, line=line, value=_json_error(exc), nbytes=len(data))
                return
            items = doc
            if list_key is not None and isinstance(doc, Mapping) and isinstance(
                    doc.get(list_key), list):
                items = doc[list_key]
            if isinstance(items, list):
                share = len(data) // max(1, len(items))
                for n, item in enumerate(items):
                    yield Record(path=path, line=1, value=item, nbytes=share, item=n)
            else:
                yield Record(path=path, line=1, value=doc, nbytes=len(data))
            return
        if path == STDIN:  # cannot be reopened: continue after the bytes already read
            yield from _jsonl_from_lines(path, _lines(head, fh))
            return
    yield from jsonl_records(path)


def _lines(head: bytes, fh: IO[bytes]) -> Iterator[bytes]:
    parts = head.split(b"\n")
    tail = parts.pop()
    for p in parts:
        yield p + b"\n"
    first = tail + fh.readline()
    if first:
        yield first
    yield from fh


def _jsonl_from_lines(path: Path, lines: Iterator[bytes]) -> Iterator[Record]:
    for no, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text:
            continue
        yield Record(path=path, line=no, value=decode_json_line(text), nbytes=len(raw))


def _looks_like_jsonl(head: bytes) -> bool:
    """True when the first line is a complete JSON value and more lines follow."""
    nl = head.find(b"\n")
    if nl < 0:
        return False
    try:
        json.loads(head[:nl])
    except (ValueError, RecursionError):  # not JSON, not UTF-8, an int past the limit
        return False
    return bool(head[nl + 1:].strip())


def csv_records(path: Path) -> Iterator[Record]:
    """One record (a dict of strings, empty cells as ``None``) per CSV row. A row the
    reader cannot read (a field over the csv module's 128 KiB limit, bytes that are not
    UTF-8) is an :class:`InputFormatError` record naming its line; reading goes on
    with the next line."""
    with open_binary(path) as fb:
        # bytes that are not UTF-8 decode to lone surrogates: the row holding one is
        # rejected, its neighbours read (a decoding TextIOWrapper fails a whole block)
        lines = (raw.decode("utf-8", "surrogateescape") for raw in fb)
        reader = csv.DictReader(lines)
        rows = iter(reader)
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:  # (the failing line is not counted in line_num)
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                yield Record(path=path, line=reader.line_num + 1, value=InputFormatError(
                    f"not valid CSV ({msg})"))
                continue
            value: Any = {k: (v if v != "" else None) for k, v in row.items() if k is not None}
            if not all(_utf8(v) for v in value.values()):
                value = InputFormatError("not UTF-8 text")
            yield Record(path=path, line=reader.line_num, value=value,
                         nbytes=sum(len(v or "") + 1 for v in row.values()
                                    if isinstance(v, str)))


def _utf8(v: Any) -> bool:
    """False for a cell holding a byte that was not UTF-8 (a lone surrogate)."""
    if not isinstance(v, str) or v.isascii():
        return True
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_ts(value: Any, what: str) -> datetime:
    """An ISO-8601 string, epoch seconds / milliseconds / nanoseconds, or a datetime,
    as timezone-aware UTC (naive values are taken as UTC)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool) or value is None or value == "":
        raise InputFormatError(f"{what}: missing timestamp")
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        try:
            x = float(value)
            if x > 1e17:
                x /= 1e9
            elif x > 1e14:
                x /= 1e6
            elif x > 1e11:
                x /= 1e3
            return datetime.fromtimestamp(x, UTC)
        except (OverflowError, OSError, ValueError):  # inf, NaN, past year 9999
            raise InputFormatError(f"{what}: {short_repr(value)} is not a timestamp in "
                                   "range") from None
    if isinstance(value, str):
        s = value.strip()
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        try:
            ts = datetime.fromisoformat(s)
            # to UTC here: an offset can carry year 1 or 9999 out of range
            return ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)
        except (ValueError, OverflowError):
            raise InputFormatError(f"{what}: {short_repr(value)} is not a timestamp") from None
    raise InputFormatError(f"{what}: {short_repr(value)} is not a timestamp")


def short_repr(value: Any) -> str:
    """``repr`` of a value for an error line, cut to 60 characters."""
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 200 else \
        f"an integer of {value.bit_length()} bits"
    return text if len(text) <= 60 else text[:57] + "..."


def json_or_csv_records(path: Path, list_key: str | None = "data") -> Iterator[Record]:
    """Rows of an export that may be CSV (by suffix) or JSON / JSON Lines."""
    if path.suffix.lower() == ".csv":
        return csv_records(path)
    return json_records(path, list_key=list_key)
