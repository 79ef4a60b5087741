"""The Claude Code fast path's parser: JSON Lines files to columns of call rows.

msgspec decodes each file in one call (``Decoder.decode_lines``) into small structs
that hold only the fields a call needs; everything else (message content, tool
inputs, tool results: most of the bytes) is validated and skipped without being
materialised. Measured on the 1 GiB bench folder (``bench/bench_import.py``), one
core: 1.4 s to decode every line this way; DuckDB's ``read_json`` of the same fields
took 4.4 s of CPU, ``orjson.loads`` of every line 3.0 s.

A file is *not* parsed here, and is handed back for the line-by-line Python path
(which reports each bad line as ``file:line``), when decoding fails anywhere in it
(malformed JSON, a field of an unexpected type), when the number of decoded records
differs from its number of lines (blank lines, two objects on one line), or when a
call line needs the adapter's judgement (no id at all, no model, negative,
inconsistent or out-of-range counts, an empty cache split).

Sub-agent calls that Claude Code records only inside ``type: "progress"`` lines
(``data.message`` is the sub-agent's assistant line, with its own ``timestamp``,
``requestId``, ``isSidechain`` and ``message.usage``) are calls too, keyed like any
other line (ccusage 20 reads them the same way); a file read from an offset (an
append, see ``sources._runner``) yields only its new lines.

This module imports nothing heavy: it
runs in forked worker processes, and hands DuckDB numpy arrays (pyarrow's conversion
of Python lists imports pandas: 0.35 s per process).
"""

from __future__ import annotations

import mmap
import os
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ..usage import MAX_TOKENS

__all__ = ["COLUMNS", "PLAIN_TIERS", "Chunk", "discover", "file_size", "parse_files",
           "plain_tier", "walk"]


class _CacheSplit(msgspec.Struct, gc=False):
    ephemeral_5m_input_tokens: int | None = None
    ephemeral_1h_input_tokens: int | None = None


class _Details(msgspec.Struct, gc=False):
    thinking_tokens: int | None = None


class _Usage(msgspec.Struct, gc=False):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation: _CacheSplit | None = None
    output_tokens_details: _Details | None = None
    service_tier: str | None = None
    server_tool_use: dict[str, Any] | None = None
    iterations: list[msgspec.Raw] | None = None


class _Message(msgspec.Struct, gc=False):
    id: str | None = None
    model: str | None = None
    usage: _Usage | None = None


_NO_DATA = msgspec.Raw(b"")


class _Line(msgspec.Struct, gc=False, rename={"session_id": "sessionId", "request_id": "requestId",
                                    "sidechain": "isSidechain"}):
    timestamp: str | None = None
    session_id: str | None = None
    request_id: str | None = None
    sidechain: bool | None = None
    uuid: str | None = None
    message: _Message | None = None
    data: msgspec.Raw = _NO_DATA
    """A progress line's payload (any shape, undecoded; empty when absent)."""


class _Inner(msgspec.Struct, gc=False, rename={"request_id": "requestId",
                                     "sidechain": "isSidechain"}):
    """``data.message`` of a sub-agent progress line: the sub-agent's own line."""

    timestamp: str | None = None
    request_id: str | None = None
    sidechain: bool | None = None
    uuid: str | None = None
    message: _Message | None = None


class _Progress(msgspec.Struct, gc=False):
    message: _Inner | None = None


_DECODER = msgspec.json.Decoder(_Line)
_PROGRESS = msgspec.json.Decoder(_Progress)


def progress_call(data: Any) -> Any:
    """The sub-agent line inside a progress line's ``data`` (raw JSON), when it
    carries a ``message.usage``; else ``None``. A payload of another shape is not
    a call (ccusage skips it too)."""
    raw = bytes(data)
    if b'"usage"' not in raw:
        return None
    try:
        inner = _PROGRESS.decode(raw).message
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if inner is None or inner.message is None or inner.message.usage is None:
        return None
    return inner

#: The columns of :attr:`Chunk.cols`: ``file`` indexes the caller's file list;
#: ``key`` is ``message.id:requestId`` or ``uuid:<uuid>``; ``ts`` the raw string; then
#: the disjoint buckets as :func:`ctxbudget.adapters.from_anthropic` makes them, the
#: service tier (``standard`` / ``default`` as none), the sidechain flag and the
#: ``server_tool_use`` counts (web search, web fetch, code execution; -1: not reported).
COLUMNS = ("file", "key", "ts", "model", "sid", "input", "cache_read", "write_5m",
           "write_1h", "output", "reasoning", "tier", "side", "web_search", "web_fetch",
           "code_execution")
#: ``server_tool_use`` keys with a column (any other non-zero counter: the Python path).
SERVER_TOOLS = ("web_search_requests", "web_fetch_requests", "code_execution_requests")
#: Columns held as strings (lists of str / None); the others are int64 arrays.
TEXT = frozenset({"key", "ts", "model", "sid", "tier"})

#: Service tiers stored as no tier (the default price applies).
PLAIN_TIERS = (None, "", "standard", "default")


def plain_tier(value: object) -> str | None:
    """The stored service tier: none for the plain tiers, else the value as text."""
    return None if value in PLAIN_TIERS or not value else str(value)


@dataclass(slots=True)
class Chunk:
    """What :func:`parse_files` made of some files."""

    files: list[int] = field(default_factory=list)
    """Parsed files, as indexes into the list the caller numbers from ``first``."""
    lines: list[int] = field(default_factory=list)
    """Records (non-blank lines) of each parsed file."""
    calls: list[int] = field(default_factory=list)
    """Lines with ``message.usage`` of each parsed file, synthetic ones excluded."""
    synthetic: list[int] = field(default_factory=list)
    """``<synthetic>`` lines with all counts zero (not API calls) of each parsed file."""
    ends: list[int] = field(default_factory=list)
    """Offset each parsed file was read up to (its size when read)."""
    mtimes: list[float] = field(default_factory=list)
    """Modification time of each parsed file when read."""
    tails: list[int] = field(default_factory=list)
    """Fingerprint of the bytes before :attr:`ends` (``sources._tail.tail_hash``)."""
    nbytes: int = 0
    """Bytes read, parsed or not."""
    left: list[str] = field(default_factory=list)
    """Files for the line-by-line path."""
    cols: dict[str, Any] = field(default_factory=dict)
    """Per name in :data:`COLUMNS`, a row per call of the parsed files (streamed
    copies within a file mostly collapsed already, see :func:`_rows`): a list of
    strings for :data:`TEXT` columns, an ``array('q')`` otherwise (both pickle
    compactly; repeated strings are shared, so pickled once)."""

    def column(self, name: str) -> Any:
        """A column as DuckDB scans it without pandas: a numpy array."""
        import numpy as np

        col = self.cols[name]
        if name in TEXT:
            return np.array(col, dtype=object)
        return np.frombuffer(col, dtype=np.int64)


def parse_files(paths: list[str], first: int = 0, *, mapped: bool = False,
                starts: list[int] | None = None) -> Chunk:
    """Parse ``paths`` (numbered from ``first``; ``mapped`` in worker processes, see
    :func:`_decode`; ``starts``: the byte offset to read each from, default 0);
    unreadable or irregular files go to :attr:`Chunk.left`."""
    out = Chunk()
    rows: list[tuple[Any, ...]] = []
    shared: dict[str, str] = {}
    for n, (fi, path) in enumerate(enumerate(paths, first)):
        start = starts[n] if starts else 0
        try:
            recs, n_lines, size, mtime, tail = _decode(path, mapped, start)
        except OSError:
            out.left.append(path)
            continue
        except (msgspec.DecodeError, msgspec.ValidationError):
            out.left.append(path)
            out.nbytes += file_size(path) - start
            continue
        out.nbytes += size - start
        # records == lines, or a line held two values (or was blank): msgspec reads a
        # stream of concatenated values; the Python path rejects such a line
        got = _rows(recs, fi, Path(path).stem, shared) if len(recs) == n_lines else None
        if got is None:
            out.left.append(path)
            continue
        file_rows, ncalls, usage_lines = got
        out.files.append(fi)
        out.ends.append(size)
        out.mtimes.append(mtime)
        out.tails.append(tail)
        out.lines.append(len(recs))
        out.calls.append(ncalls)
        out.synthetic.append(usage_lines - ncalls)
        rows.extend(file_rows)
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in COLUMNS]
    out.cols = {name: list(col) if name in TEXT else array("q", col)
                for name, col in zip(COLUMNS, cols, strict=True)}
    return out


def discover(path: Path) -> list[Path] | None:
    """The logs under ``path``: the file itself, else the ``*.jsonl`` files under its
    ``projects`` folder when it has one (a config folder), else under it (recursive,
    sorted as paths sort); ``None`` when ``path`` does not exist."""
    found = walk(path)
    return None if found is None else [Path(p) for p in found]


def walk(path: Path | str) -> list[str] | None:
    """:func:`discover` as strings: ``os.scandir`` all the way down (no ``Path`` object
    per file, no second ``stat``), symbolic links to folders not followed (as
    ``Path.rglob``), ordered as the paths' parts order."""
    root = os.fspath(path)
    if os.path.isfile(root):
        return [root]
    if not os.path.exists(root):
        return None
    sub = os.path.join(root, "projects")
    if os.path.isdir(sub):
        root = sub
    out: list[str] = []
    todo = [root]
    while todo:
        try:
            it = os.scandir(todo.pop())
        except OSError:  # unreadable folder: as rglob, skipped
            continue
        with it:
            for e in it:
                try:
                    if e.name.endswith(".jsonl") and e.is_file():
                        out.append(e.path)
                    if e.is_dir() and not e.is_symlink():
                        todo.append(e.path)
                except OSError:
                    continue
    out.sort(key=lambda s: s.split(os.sep))
    return out


def file_size(path: str) -> int:
    """Bytes of ``path`` (0 when it cannot be read)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _decode(path: str, mapped: bool,
            start: int = 0) -> tuple[list[_Line], int, int, float, int]:
    """(records, lines, offset read up to, mtime, tail fingerprint) of a file read
    from ``start``. ``mapped``: decode from a memory map of the page cache (saves a
    copy and the page faults of a fresh buffer, 0.5 s of CPU per GiB) — only in
    worker processes and for whole files: a file truncated while mapped raises
    SIGBUS, which ends the worker (its chunk is then read here), never the importing
    process."""
    from ._tail import tail_hash

    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not mapped or start or st.st_size == 0:
            fh.seek(start)
            data = fh.read()
            end = start + len(data)
            return (_DECODER.decode_lines(data), _count_lines(data), end, st.st_mtime,
                    tail_hash(fh, end))
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            end = len(mm)
            return (_DECODER.decode_lines(mm), _count_lines(mm), end, st.st_mtime,
                    tail_hash(fh, end))


def _count_lines(buf: Any) -> int:
    """Lines in ``buf`` (a last line without a newline counts)."""
    if isinstance(buf, bytes):  # a file read into memory: no numpy import
        return buf.count(b"\n") + (1 if buf and buf[-1] != 10 else 0)
    import numpy as np  # (a memory map, in a worker process)

    view = np.frombuffer(buf, np.uint8)
    if not len(view):
        return 0
    # the view is released on return: a memory map cannot close while it is exported
    return int(np.count_nonzero(view == 10)) + int(view[-1] != 10)


_NO_TOOLS = (-1, -1, -1)


def _server_tools(stu: dict[str, Any]) -> tuple[int, int, int] | None:
    """The :data:`SERVER_TOOLS` counts of ``usage.server_tool_use`` (-1: absent), or
    ``None`` when it holds what only the adapter handles (another non-zero counter, a
    value that is not a count)."""
    for k, v in stu.items():
        if type(v) is not int or v < 0 or (k not in SERVER_TOOLS and v):
            return None
    return (stu.get("web_search_requests", -1), stu.get("web_fetch_requests", -1),
            stu.get("code_execution_requests", -1))


def _rows(recs: list[_Line], fi: int, stem: str,
          shared: dict[str, str]) -> tuple[list[tuple[Any, ...]], int, int] | None:
    """(call rows, call lines, usage lines) of one file's records, or ``None`` when a
    call line needs the Python path (it rejects or hashes it). Streamed copies of one
    call in the file are collapsed here already when the order is plain (a third fewer
    rows for DuckDB). ``shared`` holds one copy of each model, session and tier string."""
    rows: list[tuple[Any, ...]] = []
    best: dict[str, tuple[tuple[bool, int], int]] = {}
    ncalls = nusage = 0
    for line in recs:
        r: Any = line
        m = r.message
        if m is None or m.usage is None:
            if not len(line.data) or (r := progress_call(line.data)) is None:
                continue
            m = r.message
        u = m.usage
        nusage += 1
        model = m.model
        if m.id:
            key = f"{m.id}:{r.request_id or ''}"
        elif r.uuid:
            key = f"uuid:{r.uuid}"
        else:
            return None
        i = u.input_tokens or 0
        o = u.output_tokens or 0
        cr = u.cache_read_input_tokens or 0
        cw = u.cache_creation_input_tokens
        split = u.cache_creation
        if split is None:
            w5, w1 = cw or 0, 0
        elif split.ephemeral_5m_input_tokens is None and split.ephemeral_1h_input_tokens is None:
            return None  # {} and {"...": null} differ in the adapter: let it decide
        else:
            w5 = split.ephemeral_5m_input_tokens or 0
            w1 = split.ephemeral_1h_input_tokens or 0
            if cw is not None and w5 + w1 != cw:
                return None
        if u.iterations:
            return None  # one call per sampling iteration: the adapter's split
        tools = _NO_TOOLS
        if u.server_tool_use is not None:
            counted = _server_tools(u.server_tool_use)
            if counted is None:
                return None
            tools = counted
        d = u.output_tokens_details
        think = (d.thinking_tokens or 0) if d is not None else 0
        if not model or i < 0 or o < 0 or cr < 0 or w5 < 0 or w1 < 0 or think < 0 \
                or think > o or (cw is not None and cw < 0) \
                or max(i, o, cr, w5, w1, cw or 0) > MAX_TOKENS:
            return None  # (the Python path rejects an out-of-range count as file:line)
        if model == "<synthetic>" and not (i or o or cr or w5 or w1):
            continue
        ncalls += 1
        tier = u.service_tier
        sid = line.session_id or stem
        ts = r.timestamp
        rank = (r.sidechain is not True, i + cr + w5 + w1 + o)
        row = (fi, key, ts, shared.setdefault(model, model), shared.setdefault(sid, sid),
               i, cr, w5, w1, o, think,
               None if tier in PLAIN_TIERS else shared.setdefault(tier, tier),
               int(r.sidechain is True), *tools)
        seen = best.get(key)
        if seen is not None:
            # a streamed copy of an earlier line: drop whichever the SQL's arg_max
            # (main chain, most tokens, earliest) would never pick; when the order
            # needs the timestamps and they are not both "...Z" of one length, keep both
            old_rank, at = seen
            if rank < old_rank:
                continue
            if rank == old_rank:
                old_ts = rows[at][2]
                if not (ts and old_ts and len(ts) == len(old_ts) and ts[-1] == old_ts[-1] == "Z"):
                    best[key] = (rank, len(rows))
                    rows.append(row)
                elif ts < old_ts:
                    rows[at] = row
                continue
            rows[at] = row
            best[key] = (rank, at)
            continue
        best[key] = (rank, len(rows))
        rows.append(row)
    return rows, ncalls, nusage
