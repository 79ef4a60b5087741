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

Fast path: a folder is parsed by DuckDB's JSON reader and de-duplicated in SQL
(``arg_max`` by the rank above), in batches of :data:`BATCH_BYTES`. A file with a
malformed line, or a usage line the SQL checks flag (missing timestamp / model /
ids, negative counts, inconsistent cache split), is handed to the line-by-line
Python path, which reports each rejected line as ``file:line``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..adapters import from_anthropic
from ..errors import InputFormatError
from ..usage import Call
from ._base import STDIN, Importer, ImportStats, Record, Skip, parse_ts
from ._runner import record_imports

__all__ = ["BATCH_BYTES", "ClaudeCodeImporter", "register"]

#: Input bytes parsed by one DuckDB query (bounds the fast path's working memory).
BATCH_BYTES = 256 * 1024 * 1024

NOT_A_CALL = "not an API call"
SYNTHETIC = "synthetic message (no API call)"

_TOKENS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
           "cache_read_input_tokens")


def _tier(value: Any) -> str | None:
    if not value or value in ("standard", "default"):
        return None
    return str(value)


class ClaudeCodeImporter(Importer):
    name = "claude-code"
    description = "Claude Code session logs (~/.claude or $CLAUDE_CONFIG_DIR: projects/*/*.jsonl)"
    patterns = ("*.jsonl",)

    def discover(self, path: Path) -> list[Path]:
        if path != STDIN and path.is_dir() and (path / "projects").is_dir():
            path = path / "projects"
        return super().discover(path)

    def rank(self, call: Any) -> Any:
        side = bool(call.meta and call.meta.get("sidechain"))
        return (not side, call.usage.total_tokens, -call.ts.timestamp())

    def convert(self, rec: Record) -> Iterable[Any]:
        d = rec.value
        if not isinstance(d, dict):
            raise InputFormatError(f"expected a JSON object, got {type(d).__name__}")
        msg = d.get("message")
        usage = msg.get("usage") if isinstance(msg, dict) else None
        if usage is None:
            yield Skip(NOT_A_CALL)
            return
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
        ts = parse_ts(d.get("timestamp"), "timestamp")
        session = d.get("sessionId") or (rec.path.stem if rec.path != STDIN else None)
        msg_id, req_id = msg.get("id"), d.get("requestId")
        if msg_id:
            request_id: str | None = f"{msg_id}:{req_id or ''}"
        elif d.get("uuid"):
            request_id = f"uuid:{d['uuid']}"
        else:
            request_id = None
        if d.get("isSidechain") is True:
            meta["sidechain"] = True
        yield Call(
            ts=ts, provider="anthropic", model=model, usage=adapted.usage,
            task_id=session, session_id=session, request_id=request_id,
            source="claude-code", service_tier=_tier(adapted.service_tier),
            input_inclusive=False, meta=meta or None,
        )

    # -- DuckDB fast path ---------------------------------------------------
    def import_fast(self, files: list[Path], store: Any, stats: ImportStats, *,
                    strict: bool = False,
                    progress: Callable[[int], None] | None = None) -> list[Path]:
        """Import what DuckDB can parse; return the files left for the Python path."""
        left: list[Path] = []
        disk = [f for f in files if f != STDIN]
        left.extend(f for f in files if f == STDIN)
        for batch in _batches(disk, BATCH_BYTES):
            nbytes = sum(_size(f) for f in batch)
            todo = list(batch)
            while todo:
                try:
                    bad = _import_batch(todo, store, stats)
                except _MalformedFile as exc:
                    todo.remove(exc.path)
                    left.append(exc.path)
                    continue
                except _Unsupported:
                    left.extend(todo)
                    break
                left.extend(bad)
                break
            if progress is not None:
                progress(nbytes - sum(_size(f) for f in batch if f in left))
        return left  # under --strict the Python path stops at their first bad line


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def _batches(files: list[Path], limit: int) -> Iterator[list[Path]]:
    cur: list[Path] = []
    size = 0
    for f in files:
        s = _size(f)
        if cur and size + s > limit:
            yield cur
            cur, size = [], 0
        cur.append(f)
        size += s
    if cur:
        yield cur


class _MalformedFile(Exception):
    def __init__(self, path: Path) -> None:
        self.path = path


class _Unsupported(Exception):
    """DuckDB could not read the batch for a reason not tied to one file."""


_EXPLICIT_COLUMNS = (
    "{'type': 'VARCHAR', 'timestamp': 'VARCHAR', 'sessionId': 'VARCHAR', "
    "'requestId': 'VARCHAR', 'isSidechain': 'BOOLEAN', 'uuid': 'VARCHAR', "
    "'message': 'STRUCT(id VARCHAR, model VARCHAR, usage STRUCT(input_tokens BIGINT, "
    "output_tokens BIGINT, cache_creation_input_tokens BIGINT, cache_read_input_tokens BIGINT, "
    "cache_creation STRUCT(ephemeral_5m_input_tokens BIGINT, ephemeral_1h_input_tokens BIGINT), "
    "service_tier VARCHAR))'}"
)

_MALFORMED = re.compile(r'in file "([^"]+)"')


def _scan_sql(explicit: bool) -> str:
    cols = f", columns={_EXPLICIT_COLUMNS}" if explicit else ""
    return f"""
    SELECT filename AS f,
           message.usage IS NOT NULL AS is_call,
           message.model AS model,
           TRY_CAST("timestamp" AS TIMESTAMPTZ) AS ts,
           CAST(sessionId AS VARCHAR) AS sid,
           CAST(message.usage.input_tokens AS BIGINT) AS i,
           CAST(message.usage.output_tokens AS BIGINT) AS o,
           CAST(message.usage.cache_read_input_tokens AS BIGINT) AS cr,
           CAST(message.usage.cache_creation_input_tokens AS BIGINT) AS cw,
           CAST(message.usage.cache_creation.ephemeral_5m_input_tokens AS BIGINT) AS w5,
           CAST(message.usage.cache_creation.ephemeral_1h_input_tokens AS BIGINT) AS w1,
           CAST(message.usage.service_tier AS VARCHAR) AS tier,
           coalesce(CAST(isSidechain AS BOOLEAN), false) AS side,
           CASE WHEN message.usage IS NULL THEN NULL
                WHEN message.id IS NOT NULL AND message.id <> ''
                THEN message.id || ':' || coalesce(CAST(requestId AS VARCHAR), '')
                WHEN uuid IS NOT NULL THEN 'uuid:' || CAST(uuid AS VARCHAR) END AS k
    FROM read_json($files, format='newline_delimited', filename=true,
                   maximum_object_size=268435456{cols})
    """


# One scan: group by (file, call key); the rank of a copy is one HUGEINT
# (main chain, total tokens, earliest first) so arg_max compares numbers.
_AGG_SQL = """
CREATE OR REPLACE TEMP TABLE _ctxb_cc AS
WITH s AS ({scan}),
t AS (
  SELECT *,
    coalesce(is_call AND model = '<synthetic>'
      AND coalesce(i, 0) + coalesce(o, 0) + coalesce(cr, 0) + coalesce(cw, 0)
          + coalesce(w5, 0) + coalesce(w1, 0) = 0, false) AS syn,
    coalesce(is_call AND (ts IS NULL OR model IS NULL OR model = '' OR k IS NULL
      OR i < 0 OR o < 0 OR cr < 0 OR cw < 0 OR w5 < 0 OR w1 < 0
      OR ((w5 IS NOT NULL OR w1 IS NOT NULL) AND cw IS NOT NULL
          AND coalesce(w5, 0) + coalesce(w1, 0) <> cw)), false) AS bad
  FROM s
)
SELECT f, CASE WHEN NOT syn THEN k END AS key,
       count(*) AS n,
       count(*) FILTER (WHERE is_call AND NOT syn) AS ncalls,
       count(*) FILTER (WHERE syn) AS nsyn,
       count(*) FILTER (WHERE bad) AS nbad,
       arg_max({{'ts': ts, 'model': model,
                 'sid': coalesce(sid, regexp_extract(f, '([^/\\\\]+?)(\\.[^./\\\\]*)?$', 1)),
                 'i': i, 'o': o, 'cr': cr,
                 'cw': cw, 'w5': w5, 'w1': w1, 'tier': tier, 'side': side,
                 'rank': (CASE WHEN side THEN 0 ELSE 1 END)::HUGEINT * 100000000000000000000000
                   + (coalesce(i, 0) + coalesce(o, 0) + coalesce(cr, 0)
                      + coalesce(cw, 0))::HUGEINT * 10000000000000 - epoch_ms(ts)}},
               (CASE WHEN side THEN 0 ELSE 1 END)::HUGEINT * 100000000000000000000000
                 + (coalesce(i, 0) + coalesce(o, 0) + coalesce(cr, 0)
                    + coalesce(cw, 0))::HUGEINT * 10000000000000 - epoch_ms(ts))
         FILTER (WHERE is_call AND NOT syn AND NOT bad) AS r
FROM t
GROUP BY ALL
"""

# Replace by key without INSERT OR REPLACE (which probes the PRIMARY KEY index
# row by row, ~2x the cost): delete the batch's keys already stored, then one
# plain INSERT sorted by key (the index is built in key order).
_DELETE_SQL = """
DELETE FROM calls WHERE call_key IN
  (SELECT DISTINCT 'claude-code:' || key FROM _ctxb_cc WHERE key IS NOT NULL)
"""

_INSERT_SQL = """
INSERT INTO calls ({names})
SELECT 'claude-code:' || key, r.ts, 'anthropic', r.model, r.sid, r.sid, NULL, key,
       coalesce(r.i, 0), coalesce(r.cr, 0),
       CASE WHEN r.w5 IS NULL AND r.w1 IS NULL THEN coalesce(r.cw, 0) ELSE coalesce(r.w5, 0) END,
       CASE WHEN r.w5 IS NULL AND r.w1 IS NULL THEN 0 ELSE coalesce(r.w1, 0) END,
       coalesce(r.o, 0), 0, NULL, 'ok', 'claude-code',
       CASE WHEN r.tier IN ('standard', 'default') OR r.tier = '' THEN NULL ELSE r.tier END,
       NULL, NULL, NULL, NULL, false,
       CASE WHEN r.side AND r.model = '<synthetic>' THEN '{{"sidechain":true,"synthetic":true}}'
            WHEN r.side THEN '{{"sidechain":true}}'
            WHEN r.model = '<synthetic>' THEN '{{"synthetic":true}}' END
FROM (SELECT key, arg_max(r, r.rank) AS r FROM _ctxb_cc WHERE key IS NOT NULL GROUP BY key)
ORDER BY 1
"""


def _import_batch(files: list[Path], store: Any, stats: ImportStats) -> list[Path]:
    """Parse, de-duplicate and insert one batch; return files to re-read in Python."""
    import duckdb

    from ..store.schema import CALL_COLUMNS

    con = store.con
    con.execute("SET enable_progress_bar = false")  # our own bar is on stderr
    names = [str(f) for f in files]
    for explicit in (False, True):
        try:
            con.execute(_AGG_SQL.format(scan=_scan_sql(explicit)), {"files": names})
            break
        except duckdb.Error as exc:
            m = _MALFORMED.search(str(exc))
            if "Malformed JSON" in str(exc) and m and Path(m.group(1)) in files:
                raise _MalformedFile(Path(m.group(1))) from None
            if explicit:
                raise _Unsupported() from None
            # the sample lacked a field we read, or a later line did not fit the
            # inferred types: name every column ourselves
    else:  # pragma: no cover - the loop always breaks or raises
        raise _Unsupported()
    per_file = [
        (f, int(n), int(nc), int(ns), int(nb)) for f, n, nc, ns, nb in con.execute(
            "SELECT f, sum(n), sum(ncalls), sum(nsyn), sum(nbad) FROM _ctxb_cc GROUP BY f"
        ).fetchall()]
    bad = [Path(f) for f, _, _, _, nbad in per_file if nbad]
    if bad:
        # re-run the clean files only, so nothing from a flagged file is half-imported
        con.execute("DROP TABLE _ctxb_cc")
        clean = [f for f in files if f not in bad]
        if clean:
            bad += _import_batch(clean, store, stats)
        return bad
    cols = ", ".join(n for n, _ in CALL_COLUMNS)
    keys = con.execute("SELECT count(DISTINCT key) FROM _ctxb_cc").fetchall()[0][0]
    con.execute("BEGIN TRANSACTION")
    try:
        if store.count_calls():
            con.execute(_DELETE_SQL)
        con.execute(_INSERT_SQL.format(names=cols))
        record_imports(store, "claude-code",
                       [(Path(f), n, ncalls, 0) for f, n, ncalls, _, _ in per_file])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DROP TABLE IF EXISTS _ctxb_cc")
    ncalls = sum(r[2] for r in per_file)
    stats.files += len(per_file)
    stats.lines += sum(r[1] for r in per_file)
    stats.calls += ncalls
    stats.duplicates += ncalls - int(keys)
    stats.skip(NOT_A_CALL, sum(r[1] - r[2] - r[3] for r in per_file))
    nsyn = sum(r[3] for r in per_file)
    if nsyn:
        stats.skip(SYNTHETIC, nsyn)
    stats.engine = "duckdb"
    return []


def register(registry: Any) -> None:
    registry.add(ClaudeCodeImporter)

