"""Claude Code session logs: ``<config dir>/projects/<project>/<session>.jsonl``.

Give the config folder (``~/.claude``, or ``$CLAUDE_CONFIG_DIR``), a project folder
or single files. Every line is a JSON object; only lines whose ``message`` has a
``usage`` object are API calls (assistant lines), the rest (user, summary, system
lines) are skipped by design and counted as ``not an API call``.

How a line becomes a :class:`~ctxbudget.usage.Call` (matching ``ccusage@20.0.24``):

* **de-duplication**: Claude Code writes several lines per API call while it
  streams, with the same ``message.id`` + ``requestId`` and growing
  ``output_tokens``. The key is ``claude-code:<message.id>:<requestId>`` (a line
  without ``message.id`` is keyed by its own ``uuid``). Of the copies, the one kept
  is the final one, i.e. the greatest by (not a sidechain, total tokens) — ccusage's
  rule: a main-chain copy beats a sidechain replay, then the copy with the most
  tokens (streaming counts only grow); among copies with equal counts the earliest
  (ccusage replaces a kept copy only by a strictly greater one).
* **time**: the kept copy's ``timestamp`` (UTC in the store). ccusage buckets days
  in the machine's local time zone (``TZ``) unless ``--timezone`` is given; the
  reference outputs in ``shared/data`` were made with ``TZ=UTC``.
* **session / task**: ``sessionId`` (else the file name) is both ``session_id`` and
  ``task_id`` — a Claude Code session is the unit of work; ccusage's session report
  groups by the same id.
* **sidechains** (sub-agent lines, ``isSidechain: true``) are kept, with
  ``meta.sidechain = true``.
* **model**: ``message.model``. ``<synthetic>`` messages (written by Claude Code
  itself, e.g. for API errors; ccusage gives them no model) are skipped as
  ``synthetic message (no API call)`` when all their counts are zero, and kept
  under model ``<synthetic>`` (so they show up as unpriced) otherwise.
* **usage**: :func:`ctxbudget.adapters.from_anthropic` on ``message.usage``
  (``cache_creation.ephemeral_1h_input_tokens`` are 1-hour writes; without the
  split, all writes are 5-minute writes). ``service_tier: standard`` is stored as
  no tier. ccusage's ``costUSD`` field (old logs) is ignored: cost always comes
  from the :class:`~ctxbudget.prices.PriceBook`.
* **server-side tools**: ``usage.server_tool_use`` counts (web searches, web fetches,
  code executions) are stored with the call; reports price them per request, as
  ``ctxbudget usage --cost`` does.
* **iterations**: a usage with ``usage.iterations`` (server-side compaction, the
  advisor tool) becomes one call per iteration, each at its own model
  (:func:`ctxbudget.adapters.iteration_calls`, the tracker's and the gateway's split);
  the fast path leaves such a file to the Python path.

Fast path: files are decoded by msgspec (:mod:`._claude_scan`) in forked worker
processes (one per core, when the input is large enough to pay for the fork), in
chunks of about :data:`CHUNK_BYTES`; the call rows come back as Arrow tables and are
de-duplicated in SQL (``arg_max`` by the rank above) and written in batches of about
:data:`BATCH_ROWS` call lines (which bounds the working memory). A file with a
malformed line, or a usage line the checks flag (missing timestamp / model / ids,
negative counts, inconsistent cache split), is handed to the line-by-line Python
path, which reports each rejected line as ``file:line``.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from ..adapters import from_anthropic, iteration_calls
from ..errors import InputFormatError
from ..usage import DETAIL_FIELDS, FUTURE_SLACK, MIN_TS, Call
from . import _claude_scan
from ._base import STDIN, Importer, ImportStats, Record, Skip, parse_ts
from ._runner import FileRead, Imported, record_imports

__all__ = ["BATCH_ROWS", "CHUNK_BYTES", "ClaudeCodeImporter", "insert_rows", "register"]

#: Input bytes parsed by one DuckDB query (bounds the fast path's working memory).
BATCH_ROWS = 200_000

NOT_A_CALL = "not an API call"
SYNTHETIC = "synthetic message (no API call)"


class ClaudeCodeImporter(Importer):
    name = "claude-code"
    description = "Claude Code session logs (~/.claude or $CLAUDE_CONFIG_DIR: projects/*/*.jsonl)"
    patterns = ("*.jsonl",)
    appendable = True

    def discover(self, path: Path) -> list[Path]:
        if path == STDIN:
            return [path]
        found = _claude_scan.discover(path)  # (the day summary discovers the same way)
        if found is None:
            raise InputFormatError(f"{path}: no such file or folder")
        return found

    def rank(self, call: Any) -> Any:
        side = bool(call.meta and call.meta.get("sidechain"))
        return (not side, call.usage.total_tokens, -call.ts.timestamp())

    def convert(self, rec: Record) -> Iterable[Any]:
        d = rec.value
        if not isinstance(d, dict):
            raise InputFormatError(f"expected a JSON object, got {type(d).__name__}")
        line = d
        msg = d.get("message")
        usage = msg.get("usage") if isinstance(msg, dict) else None
        if usage is None:
            # a sub-agent call recorded only in a progress line: data.message is the
            # sub-agent's own assistant line
            data = d.get("data")
            inner = data.get("message") if isinstance(data, dict) else None
            msg = inner.get("message") if isinstance(inner, dict) else None
            usage = msg.get("usage") if isinstance(msg, dict) else None
            if usage is None:
                yield Skip(NOT_A_CALL)
                return
            assert isinstance(inner, dict)
            line = inner
        if not isinstance(usage, dict):
            raise InputFormatError("message.usage is not an object")
        assert isinstance(msg, dict)
        model = msg.get("model")
        if not isinstance(model, str) or not model:
            raise InputFormatError("message.model is missing")
        adapted = from_anthropic(usage)
        meta: dict[str, Any] = {}
        if model == "<synthetic>":
            if not adapted.usage:
                yield Skip(SYNTHETIC)
                return
            meta["synthetic"] = True
        where = "timestamp" if line is d else "data.message.timestamp"
        ts = parse_ts(line.get("timestamp"), where)
        session = d.get("sessionId") or (rec.path.stem if rec.path != STDIN else None)
        msg_id, req_id = msg.get("id"), line.get("requestId")
        if msg_id:
            request_id: str | None = f"{msg_id}:{req_id or ''}"
        elif line.get("uuid"):
            request_id = f"uuid:{line['uuid']}"
        else:
            request_id = None
        if line.get("isSidechain") is True:
            meta["sidechain"] = True
        yield from iteration_calls(adapted, Call(
            ts=ts, provider="anthropic", model=model, usage=adapted.usage,
            task_id=session, session_id=session, request_id=request_id,
            source="claude-code", service_tier=_claude_scan.plain_tier(adapted.service_tier),
            input_inclusive=False, meta=meta or None,
        ))

    # -- fast path -----------------------------------------------------------
    def import_fast(self, files: list[Path], store: Any, stats: ImportStats, *,
                    strict: bool = False,
                    progress: Callable[[int], None] | None = None,
                    starts: dict[Path, Imported] | None = None) -> list[Path]:
        """Import what the fast parser accepts; return the files left for the Python
        path (under ``--strict`` it stops at their first bad line). ``starts``: files
        read on from where an earlier import stopped."""
        left = [f for f in files if f == STDIN]
        on_disk = [f for f in files if f != STDIN]
        if not on_disk:
            return left
        disk = [str(f) for f in on_disk]
        prev = [(starts or {}).get(f) for f in on_disk]
        pending: list[_claude_scan.Chunk] = []
        pending_rows = batches = 0
        fresh = not store.count_calls()
        for chunk in _parse(disk, [p.size if p is not None else 0 for p in prev]):
            left.extend(Path(p) for p in chunk.left)
            if pending and pending_rows + len(chunk.cols["key"]) > BATCH_ROWS:
                left.extend(_write(pending, disk, prev, store, stats, batches=batches,
                                   final=False, fresh=fresh))
                pending, pending_rows = [], 0
                batches += 1
            pending.append(chunk)
            pending_rows += len(chunk.cols["key"])
            if progress is not None:
                progress(chunk.nbytes)
        if pending:
            left.extend(_write(pending, disk, prev, store, stats, batches=batches, final=True,
                               fresh=fresh))
        if stats.files:
            stats.engine = "msgspec"
        return left


#: Input bytes parsed by one worker task.
CHUNK_BYTES = 24 * 1024 * 1024
#: Input below this is parsed in-process (forking costs more than it saves).
FORK_MIN_BYTES = 48 * 1024 * 1024


def _workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


Job = tuple[int, list[str], list[int]]
"""A worker's task: index of its first file, the files, the offset to read each from."""


def _chunks(files: list[str], starts: list[int], sizes: list[int], limit: int) -> list[Job]:
    """Jobs of about ``limit`` bytes to read each."""
    out: list[Job] = []
    size = 0
    for n, (f, start, full) in enumerate(zip(files, starts, sizes, strict=True)):
        s = max(0, full - start)
        if not out or (out[-1][1] and size + s > limit):
            out.append((n, [], []))
            size = 0
        out[-1][1].append(f)
        out[-1][2].append(start)
        size += s
    return out


def _parse(files: list[str], starts: list[int]) -> Iterator[_claude_scan.Chunk]:
    """The parsed chunks of ``files``, in file order: in forked worker processes when
    the input is large and no other Python thread runs (one could hold a lock the
    child needs), else here. The children only read files and decode them (msgspec,
    numpy); DuckDB's idle pool threads are not touched in them."""
    sizes = [_claude_scan.file_size(f) for f in files]
    total = sum(max(0, n - s) for n, s in zip(sizes, starts, strict=True))
    workers = _workers()
    chunks = _chunks(files, starts, sizes,
                     min(CHUNK_BYTES, max(1 << 20, total // (4 * workers))))
    pool = None
    if workers > 1 and total >= FORK_MIN_BYTES and threading.active_count() == 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        try:
            workers = min(workers, len(chunks))
            from ._workers import die_with_parent

            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                       initializer=die_with_parent, initargs=(os.getpid(),))
        except (ValueError, OSError):  # no fork on this platform, or no resources
            pool = None
    if pool is None:
        for c in chunks:
            yield _parse_chunk(c)
        return
    from concurrent.futures.process import BrokenProcessPool

    todo = iter(chunks)
    try:  # at most two chunks per worker in flight: results wait in this process
        flying = deque((c, pool.submit(_parse_chunk, c, True))
                       for c in islice(todo, 2 * workers))
        while flying:
            job, fut = flying.popleft()
            try:
                done = fut.result()
            except BrokenProcessPool:  # a worker died (killed, out of memory): go on here
                yield _parse_chunk(job)
                for job, _ in flying:
                    yield _parse_chunk(job)
                for job in todo:
                    yield _parse_chunk(job)
                return
            for c in islice(todo, 1):
                flying.append((c, pool.submit(_parse_chunk, c, True)))
            yield done
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _parse_chunk(job: Job, mapped: bool = False) -> _claude_scan.Chunk:
    if any(job[2]):
        return _claude_scan.parse_files(job[1], job[0], mapped=mapped, starts=job[2])
    return _claude_scan.parse_files(job[1], job[0], mapped=mapped)


# The rank of a copy is one HUGEINT (main chain, total tokens, earliest first) so
# arg_max compares numbers; the key's copies across the batch meet in one group. Copies
# of equal rank are told apart (the same rule as ccusage: the first one met stays) by
# where they come from: the stored copy (``file`` -1) first, then the lower file index
# of this import (the day summary, analyze.summary, applies the same order).
_RANK = ("((CASE WHEN side THEN 0 ELSE 1 END)::HUGEINT * 100000000000000000000000 "
         "+ (input + cache_read + write_5m + write_1h + output)::HUGEINT * 10000000000000 "
         "- epoch_ms(t)) * 33554432 + (16777214 - file)")

# Replace by key (the calls table has no key index, see store.schema migration 3):
# delete the batch's keys already stored, then one INSERT of unique keys.
_SEEN_OVERLAP_SQL = """
SELECT count(*) FROM _ctxb_ok WHERE hash(key) IN (SELECT h FROM _ctxb_seen)
"""

_OVERLAP_SQL = """
SELECT count(*) FROM calls WHERE call_key IN (SELECT 'claude-code:' || key FROM _ctxb_ok)
"""

_DELETE_SQL = """
DELETE FROM calls WHERE call_key IN
  (SELECT DISTINCT 'claude-code:' || key FROM _ctxb_ok)
"""

#: The fast path's server-tool columns -> the store's Usage detail columns (-1: NULL).
_TOOL_COLUMNS = {"web_search_requests": "web_search", "web_fetch_requests": "web_fetch",
                 "code_execution_requests": "code_execution"}
_DETAIL_VALUES = ", ".join(
    f"NULLIF(r.{_TOOL_COLUMNS[f]}, -1)" if f in _TOOL_COLUMNS else "NULL"
    for f in DETAIL_FIELDS)

_INSERT_SQL = """
INSERT INTO calls ({names})
SELECT 'claude-code:' || key, r.t, 'anthropic', r.model, r.sid, r.sid, NULL, key,
       r.input, r.cache_read, r.write_5m, r.write_1h, r.output, r.reasoning, NULL, 'ok',
       'claude-code', r.tier, NULL, NULL, NULL, NULL, false,
       CASE WHEN r.side AND r.model = '<synthetic>' THEN '{{"sidechain":true,"synthetic":true}}'
            WHEN r.side THEN '{{"sidechain":true}}'
            WHEN r.model = '<synthetic>' THEN '{{"synthetic":true}}' END,
       """ + _DETAIL_VALUES + """, NULL
FROM ({rows})
"""

# every key once in the batch (the workers collapsed the streamed copies): as is
_UNIQUE_ROWS = """
SELECT key, {'t': CAST(ts AS TIMESTAMPTZ), 'model': model, 'sid': sid, 'input': input,
             'cache_read': cache_read, 'write_5m': write_5m, 'write_1h': write_1h,
             'output': output, 'reasoning': reasoning, 'tier': tier, 'side': side,
             'web_search': web_search, 'web_fetch': web_fetch,
             'code_execution': code_execution} AS r
FROM _ctxb_ok
"""

# else the greatest copy of each key by the rank
_BEST_ROWS = f"""
SELECT key, arg_max(r, r.rank) AS r FROM (
  SELECT key, {{'t': t, 'model': model, 'sid': sid, 'input': input,
          'cache_read': cache_read, 'write_5m': write_5m, 'write_1h': write_1h,
          'output': output, 'reasoning': reasoning, 'tier': tier, 'side': side,
          'web_search': web_search, 'web_fetch': web_fetch, 'code_execution': code_execution,
          'rank': {_RANK}}} AS r
  FROM ({{source}}))
GROUP BY key
"""

_NEW_COPIES = "SELECT *, CAST(ts AS TIMESTAMPTZ) AS t FROM _ctxb_ok"

# the stored copies of the batch's keys (an earlier import, an earlier batch, the
# part of a file read before its append): candidates like the new copies, so the
# kept copy is the greatest of all ever read (the same rule as within a batch)
_STORED_SQL = """
CREATE OR REPLACE TEMP TABLE _ctxb_old AS
SELECT substr(call_key, 13) AS key, ts AS t, model, session_id AS sid,
       input_tokens AS input, cache_read_tokens AS cache_read,
       cache_write_5m_tokens AS write_5m, cache_write_1h_tokens AS write_1h,
       output_tokens AS output, reasoning_tokens AS reasoning, service_tier AS tier,
       coalesce(meta LIKE '%"sidechain":true%', false) AS side,
       coalesce(web_search_requests, -1) AS web_search,
       coalesce(web_fetch_requests, -1) AS web_fetch,
       coalesce(code_execution_requests, -1) AS code_execution
FROM calls WHERE call_key IN (SELECT DISTINCT 'claude-code:' || key FROM _ctxb_ok)
"""

_ALL_COPIES = """
SELECT key, CAST(ts AS TIMESTAMPTZ) AS t, model, sid, input, cache_read, write_5m, write_1h,
       output, reasoning, tier, side, file, web_search, web_fetch, code_execution FROM _ctxb_ok
UNION ALL
SELECT key, t, model, sid, input, cache_read, write_5m, write_1h, output, reasoning, tier, side,
       -1 AS file, web_search, web_fetch, code_execution
FROM _ctxb_old
"""


def insert_rows(con: Any, cols: dict[str, list[Any]]) -> None:
    """Insert Claude Code call rows (``cols``: the scanner's columns without ``file``,
    one key once or more), each key's greatest copy among them and the stored one
    replacing the stored one, inside the caller's transaction. The store's ``.pending``
    calls are folded in this way (:mod:`ctxbudget.store.pending`)."""
    import numpy as np

    from ..store.schema import CALL_COLUMNS

    n = len(cols["key"])
    rows = {name: (np.array(cols[name], dtype=object) if name in _claude_scan.TEXT
                   else np.array(cols[name], dtype=np.int64))
            for name in _claude_scan.COLUMNS if name in cols}
    rows["file"] = np.zeros(n, dtype=np.int64)
    for name in _TOOL_COLUMNS.values():  # not kept by the .pending rows: not reported
        rows.setdefault(name, np.full(n, -1, dtype=np.int64))
    con.register("_ctxb_rows", rows)
    try:
        con.execute("CREATE OR REPLACE TEMP VIEW _ctxb_ok AS "
                    "SELECT * REPLACE (side::BOOLEAN AS side) FROM _ctxb_rows")
        con.execute(_STORED_SQL)
        con.execute(_DELETE_SQL)
        names = ", ".join(n for n, _ in CALL_COLUMNS)
        con.execute(_INSERT_SQL.format(names=names,
                                       rows=_BEST_ROWS.replace("{source}", _ALL_COPIES)))
    finally:
        con.execute("DROP TABLE IF EXISTS _ctxb_old")
        con.execute("DROP VIEW IF EXISTS _ctxb_ok")
        con.unregister("_ctxb_rows")


def _write(pending: list[_claude_scan.Chunk], paths: list[str], prev: list[Imported | None],
           store: Any, stats: ImportStats, *, batches: int, final: bool,
           fresh: bool) -> list[Path]:
    """De-duplicate and insert a batch of parsed chunks (``batches`` written before it
    in this import, ``final`` when no other follows, ``fresh`` when the store held no
    calls before the import; ``prev[i]``: what an earlier import read of
    ``paths[i]`` when it is read on from there); return the files whose timestamps
    DuckDB cannot read or are out of range (for the Python path, which rejects them
    as file:line)."""
    import numpy as np

    from ..store.schema import CALL_COLUMNS

    files = [f for c in pending for f in c.files]
    lines = dict(zip(files, (n for c in pending for n in c.lines), strict=True))
    calls = dict(zip(files, (n for c in pending for n in c.calls), strict=True))
    synthetic = dict(zip(files, (n for c in pending for n in c.synthetic), strict=True))
    ends = dict(zip(files, (n for c in pending for n in c.ends), strict=True))
    mtimes = dict(zip(files, (n for c in pending for n in c.mtimes), strict=True))
    tails = dict(zip(files, (n for c in pending for n in c.tails), strict=True))
    rows = {name: np.concatenate([c.column(name) for c in pending])
            for name in _claude_scan.COLUMNS}
    con = store.con
    con.register("_ctxb_rows", rows)
    try:
        # a timestamp DuckDB cannot read, or out of the sane range (usage.check_sane)
        bad = [int(r[0]) for r in con.execute(
            "SELECT DISTINCT file FROM _ctxb_rows WHERE TRY_CAST(ts AS TIMESTAMPTZ) IS NULL "
            "OR TRY_CAST(ts AS TIMESTAMPTZ) < $lo OR TRY_CAST(ts AS TIMESTAMPTZ) > $hi",
            {"lo": MIN_TS, "hi": datetime.now(UTC) + FUTURE_SLACK}).fetchall()]
        # the rows of those files go: the Python path reads the files again
        con.execute("CREATE OR REPLACE TEMP VIEW _ctxb_ok AS "
                    "SELECT * REPLACE (side::BOOLEAN AS side) FROM _ctxb_rows"
                    + (f" WHERE file NOT IN ({', '.join(map(str, bad))})" if bad else ""))
        # calls new to this import (an earlier batch may have held the same call)
        nrows, distinct = con.execute(
            "SELECT count(*), count(DISTINCT key) FROM _ctxb_ok").fetchall()[0]
        keys = int(con.execute(
            "SELECT count(DISTINCT key) FROM _ctxb_ok WHERE hash(key) NOT IN "
            "(SELECT h FROM _ctxb_seen)").fetchall()[0][0]) if batches else int(distinct)
        cols = ", ".join(n for n, _ in CALL_COLUMNS)
        skip = set(bad)
        good = [i for i in files if i not in skip]
        con.execute("BEGIN TRANSACTION")
        try:
            # a stored copy of a batch call must go first; only earlier batches can
            # hold one when the store was empty (probing their hashes, not the table)
            overlap = _SEEN_OVERLAP_SQL if fresh else _OVERLAP_SQL
            if (batches or not fresh) and con.execute(overlap).fetchall()[0][0]:
                con.execute(_STORED_SQL)
                con.execute(_DELETE_SQL)  # (a DELETE makes the COMMIT write a WAL: ~1 s)
                rows_sql = _BEST_ROWS.replace("{source}", _ALL_COPIES)
            elif nrows == distinct:
                rows_sql = _UNIQUE_ROWS
            else:
                rows_sql = _BEST_ROWS.replace("{source}", _NEW_COPIES)
            con.execute(_INSERT_SQL.format(names=cols, rows=rows_sql))
            record_imports(store, "claude-code", [_read(Path(paths[i]), prev[i], lines[i],
                                                        calls[i], ends[i], mtimes[i], tails[i])
                                                  for i in good])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        if final:
            con.execute("DROP TABLE IF EXISTS _ctxb_seen")
        else:
            # 8-byte hashes, not the keys: the set grows with the input (a collision
            # could only miscount a duplicate in the statistics, never drop a call)
            if not batches:
                con.execute("CREATE OR REPLACE TEMP TABLE _ctxb_seen (h UBIGINT)")
            con.execute("INSERT INTO _ctxb_seen SELECT DISTINCT hash(key) FROM _ctxb_ok")
    finally:
        con.execute("DROP TABLE IF EXISTS _ctxb_old")
        con.execute("DROP VIEW IF EXISTS _ctxb_ok")
        con.unregister("_ctxb_rows")
    ncalls = sum(calls[i] for i in good)
    stats.files += len(good)
    stats.lines += sum(lines[i] for i in good)
    stats.calls += ncalls
    stats.duplicates += ncalls - keys
    stats.skip(NOT_A_CALL, sum(lines[i] - calls[i] - synthetic[i] for i in good))
    stats.skip(SYNTHETIC, sum(synthetic[i] for i in good))
    return [Path(paths[i]) for i in bad]


def _read(path: Path, prev: Imported | None, lines: int, calls: int, end: int, mtime: float,
          tail: int) -> FileRead:
    """The ``imports`` row of a file parsed here (counts include an earlier part's)."""
    if prev is not None:
        lines += prev.lines
        calls += prev.calls
    return FileRead(path, lines, calls, 0, size=end, mtime=mtime, tail=tail)


def register(registry: Any) -> None:
    registry.add(ClaudeCodeImporter)

