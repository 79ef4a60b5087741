"""Write the day summary (:mod:`.summary`) from the store, with DuckDB.

Called by ``report --by day`` after its SQL ran (the ``prices`` table is in place),
holding the store's lock: the per-call figures come from the same ``pc`` relation the
report sums (:func:`.sql.base_cte`: cost, wasted cache writes, outcome), the day, task
and model aggregates from GROUP BYs over it, the arrays straight from DuckDB through
numpy. Nothing is computed per call in Python.
"""

from __future__ import annotations

import contextlib
import secrets
import zlib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ..prices import PriceBook
from ..store.pending import store_signature
from ._results import Filters
from ._summary_prices import add_price_rows
from .engine import DETAIL_NAMES
from .sql import base_cte, detail_present_sql, price_keys_sql
from .summary import (
    F_BLOCKED,
    F_ERROR,
    F_FAILURE,
    F_PARTIAL,
    F_PRICED,
    F_READ,
    F_SIDE,
    F_SUCCESS,
    PRICE_DAYS_AHEAD,
    SUMMARY_VERSION,
    State,
    catalog_fingerprint,
    summary_path,
    write_summary_file,
)

__all__ = ["build_summary"]

_EPOCH_DAY = date(1970, 1, 1)

_SESSION_KEY = "COALESCE(pc.session_id, pc.task_id, pc.call_key)"

# one row per call (no ids yet)
_CALLS_SQL = """
CREATE OR REPLACE TEMP TABLE _ctxb_p AS
{base}
SELECT pc.call_key, {sk} AS sk, pc.model, pc.task_key,
  COALESCE(pc.provider, '') AS pv, COALESCE(pc.model, '') AS mv,
  COALESCE(pc.service_tier, '') AS tv,
  epoch_us(pc.ts) AS ts, CAST(pc.day - DATE '1970-01-01' AS BIGINT) AS day,
  CAST((CASE WHEN pc.cache_read_tokens > 0 THEN {read} ELSE 0 END)
    + (CASE WHEN COALESCE(pc.meta LIKE '%"sidechain":true%', false) THEN {side} ELSE 0 END)
    + (CASE WHEN pc.cost_usd IS NOT NULL THEN {priced} ELSE 0 END)
    + (CASE WHEN pc.status = 'ok' THEN 0 ELSE {error} END)
    + (CASE pc.outcome WHEN 'success' THEN {succ} WHEN 'failure' THEN {fail}
                       WHEN 'partial' THEN {part} WHEN 'blocked' THEN {block} ELSE 0 END)
    AS UTINYINT) AS flags,
  pc.cache_write_5m_tokens AS w5, pc.cache_write_1h_tokens AS w1,
  CAST(pc.wasted_write_tokens AS BIGINT) AS wasted,
  pc.input_tokens AS inp, pc.cache_read_tokens AS cr, pc.output_tokens AS out,
  pc.reasoning_tokens AS reas,
  CAST(COALESCE(pc.cost_usd, 0) * 1000000000000000 AS BIGINT) AS cost,
  starts_with(pc.call_key, 'claude-code:') AS cc,
  pc.task_id IS NOT NULL AS has_tid, pc.task_type AS ctype, pc.outcome
FROM pc
"""

# the ids: a small table per name list (sorted names numbered from 0), joined back
_DIMS = {
    "seg": ("sk, model", "sk, model NULLS FIRST",
            "s.sk = p.sk AND s.model IS NOT DISTINCT FROM p.model"),
    "task": ("task_key", "task_key", "s.task_key = p.task_key"),
    "pm": ("pv, mv", "pv, mv", "s.pv = p.pv AND s.mv = p.mv"),
    "pk": ("pv, mv, tv", "pv, mv, tv", "s.pv = p.pv AND s.mv = p.mv AND s.tv = p.tv"),
}


def _dim_sql(name: str) -> str:
    cols, order, _ = _DIMS[name]
    return (f"CREATE OR REPLACE TEMP TABLE _ctxb_{name} AS SELECT {cols}, "
            f"CAST(row_number() OVER (ORDER BY {order}) - 1 AS INTEGER) AS {name} "
            f"FROM (SELECT DISTINCT {cols} FROM _ctxb_p)")


# the calls with their ids, a segment's calls contiguous (the table keeps this order:
# ``rowid`` is the call's index in the summary's arrays)
_SUM_SQL = ("CREATE OR REPLACE TEMP TABLE _ctxb_sum AS SELECT "
            + ", ".join(f"d_{n}.{n}" for n in _DIMS) + ", p.* FROM _ctxb_p p "
            + " ".join(f"JOIN _ctxb_{n} d_{n} ON " + _DIMS[n][2].replace("s.", f"d_{n}.")
                       for n in _DIMS)
            + " ORDER BY d_seg.seg")

_DAYS_SQL = """
SELECT day, count(*), sum(inp), sum(cr), sum(w5), sum(w1), sum(out), sum(reas),
  sum(CASE WHEN flags & 4 <> 0 THEN cost ELSE 0 END)::HUGEINT,
  sum(CASE WHEN flags & 4 <> 0 THEN 1 ELSE 0 END), sum(wasted),
  sum(CASE WHEN flags & 8 <> 0 THEN 1 ELSE 0 END), min(ts), max(ts),
  sum(CASE WHEN flags & 4 <> 0 AND flags & 32 <> 0 THEN cost ELSE 0 END)::HUGEINT,
  sum(CASE WHEN flags & 4 <> 0 AND flags & 32 <> 0 THEN 1 ELSE 0 END)
FROM _ctxb_sum GROUP BY day
"""

_CELLS_SQL = """
SELECT day, task, count(*), sum((flags & 16 <> 0)::INT), sum((flags & 32 <> 0)::INT),
  sum((flags & 64 <> 0)::INT), sum((flags & 128 <> 0)::INT)
FROM _ctxb_sum GROUP BY day, task
"""

# the task's type and outcome as task_sql gives them: the calls' own type, else the
# tasks table's row of the task id (when a call has one)
_TASKS_SQL = """
SELECT s.task, s.task_key, s.n, s.tokens, s.cost, s.unpriced, s.succ, s.fail, s.part,
  s.block, COALESCE(s.ctype, t.task_type), t.outcome
FROM (
  SELECT task, min(task_key) AS task_key, count(*) AS n,
    sum(inp + cr + w5 + w1 + out)::HUGEINT AS tokens,
    sum(CASE WHEN flags & 4 <> 0 THEN cost ELSE 0 END)::HUGEINT AS cost,
    sum(CASE WHEN flags & 4 <> 0 THEN 0 ELSE 1 END) AS unpriced,
    sum((flags & 16 <> 0)::INT) AS succ, sum((flags & 32 <> 0)::INT) AS fail,
    sum((flags & 64 <> 0)::INT) AS part, sum((flags & 128 <> 0)::INT) AS block,
    min(ctype) AS ctype,
    CASE WHEN bool_or(has_tid) THEN min(task_key) END AS tid
  FROM _ctxb_sum GROUP BY task) s
LEFT JOIN tasks t ON t.task_id = s.tid
ORDER BY s.task
"""


def _ints(con: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in con.execute(sql).fetchall()]


def build_summary(con: Any, db: Path, book: PriceBook, *, spool: Any = None,
                  quarantined: int = 0, usage_missing: int = 0) -> bool:
    """Write ``<db>.summary`` for the store open on ``con`` (under its lock, the report's
    ``prices`` table installed). Returns False (and writes nothing) when the store
    holds what the summary cannot represent exactly."""
    import numpy as np

    f = Filters()
    if any(con.execute(detail_present_sql(f, DETAIL_NAMES)).fetchall()[0]):
        return False  # tool fees / modality tokens: priced by the SQL only
    con.execute(_CALLS_SQL.format(
        base=base_cte(f, "duckdb", wasted=True), sk=_SESSION_KEY, read=F_READ, side=F_SIDE,
        priced=F_PRICED, error=F_ERROR, succ=F_SUCCESS, fail=F_FAILURE, part=F_PARTIAL,
        block=F_BLOCKED))
    try:
        names: dict[str, list[Any]] = {}
        for name, (cols_, _, _) in _DIMS.items():
            con.execute(_dim_sql(name))
            names[name] = [list(r[:-1]) if len(r) > 2 else r[0] for r in con.execute(
                f"SELECT {cols_}, {name} FROM _ctxb_{name} ORDER BY {name}").fetchall()]
        con.execute(_SUM_SQL)
        cols = con.execute(
            "SELECT ts, seg, task, pm, pk, flags, w5, w1, wasted, inp, cr, out, reas, cost, "
            "strlen(call_key) AS klen, cc FROM _ctxb_sum ORDER BY rowid").fetchnumpy()
        n = len(cols["ts"])
        days = {int(r[0]): [int(v) for v in r[1:]] for r in _ints(con, _DAYS_SQL)}
        cells: dict[int, dict[int, list[int]]] = {}
        for day, task, *vals in _ints(con, _CELLS_SQL):
            cells.setdefault(int(day), {})[int(task)] = [int(v) for v in vals]
        tasks: dict[int, list[int]] = {}
        tstatic: dict[int, list[Any]] = {}
        for task, _key, *vals, ttype, outcome in _ints(con, _TASKS_SQL):
            tasks[int(task)] = [int(v) for v in vals]
            tstatic[int(task)] = [ttype, outcome]
        models = {int(r[0]): int(r[1]) for r in con.execute(
            "SELECT pm, count(*) FROM _ctxb_sum GROUP BY pm").fetchall()}
        pkdays: dict[int, dict[int, int]] = {}
        for pk, day, cnt in con.execute(
                "SELECT pk, day, count(*) FROM _ctxb_sum GROUP BY pk, day").fetchall():
            pkdays.setdefault(int(pk), {})[int(day)] = int(cnt)
        keys_text = con.execute(
            "SELECT coalesce(string_agg(call_key, '' ORDER BY rowid), '') FROM _ctxb_sum"
        ).fetchall()[0][0]
        seg_counts = con.execute(
            "SELECT seg, count(*) FROM _ctxb_sum GROUP BY seg ORDER BY seg").fetchall()
    finally:
        for t in ("_ctxb_sum", "_ctxb_p", *(f"_ctxb_{n}" for n in _DIMS)):
            con.execute(f"DROP TABLE IF EXISTS {t}")
    segs, task_keys, pms, pks = names["seg"], names["task"], names["pm"], names["pk"]
    files = {str(r[0]): [int(r[1]), float(r[2]), int(r[3] or 0), int(r[4] or 0),
                         None if r[5] is None else int(r[5])]
             for r in con.execute(
                 "SELECT path, size_bytes, mtime, lines, accepted, tail_hash FROM imports "
                 "WHERE format = 'claude-code' AND rejected = 0").fetchall()}

    # tasks a cap blocked before their first call: in the per-type stats (task_sql)
    idle = [r[0] for r in con.execute(
        "SELECT t.task_type FROM tasks t WHERE t.outcome = 'blocked' AND NOT EXISTS "
        "(SELECT 1 FROM calls x WHERE x.task_id = t.task_id)").fetchall()]
    state = State(days=days, cells=cells, tasks=tasks, tstatic=tstatic, models=models,
                  pkdays=pkdays, prices={}, bandsets=[], reasons=[], idle=idle, segs=segs,
                  task_keys=task_keys, pms=pms, pks=pks)
    # the price rows of every key from its first day to a week past today (or its last)
    today = (datetime.now(UTC).date() - _EPOCH_DAY).days
    first_last = {}
    for prov, model, tier, d0, d1 in con.execute(price_keys_sql(f)).fetchall():
        first_last[(prov, model, tier)] = ((d0 - _EPOCH_DAY).days, (d1 - _EPOCH_DAY).days)
    for pk, (prov, model, tier) in enumerate(pks):
        d0, d1 = first_last[(prov, model, tier)]
        add_price_rows(state, book, pk, prov, model, tier, d0, max(d1, today + PRICE_DAYS_AHEAD))

    seg_ptr = np.zeros(len(segs) + 1, dtype=np.int32)
    if seg_counts:
        seg_ptr[1:] = np.cumsum([c for _, c in seg_counts])
    koff = np.zeros(n + 1, dtype=np.int64)
    if n:
        koff[1:] = np.cumsum(cols["klen"])
    keys = keys_text.encode()
    if len(keys) != int(koff[-1]):
        return False  # strlen and the text disagree (should not happen): no summary
    # the Claude Code keys' index: CRC-32 of the key, sorted (a lookup checks the key)
    cc = np.flatnonzero(cols["cc"])
    offs = koff.tolist()
    h = np.fromiter((zlib.crc32(keys[offs[i]:offs[i + 1]]) for i in cc.tolist()),
                    dtype=np.uint32, count=len(cc))
    order = np.argsort(h, kind="stable")
    kh, kidx = h[order], cc[order]
    tasks_index = np.array(sorted({zlib.crc32(str(r[0]).encode()) for r in con.execute(
        "SELECT DISTINCT task_id FROM tasks WHERE task_id IS NOT NULL").fetchall()}),
        dtype=np.uint32)
    arrays = {
        "ts": cols["ts"].astype(np.int64), "seg": cols["seg"].astype(np.int32),
        "task": cols["task"].astype(np.int32), "pm": cols["pm"].astype(np.int32),
        "pk": cols["pk"].astype(np.int32), "flags": cols["flags"].astype(np.uint8),
        **{k: cols[k].astype(np.int64) for k in ("w5", "w1", "wasted", "inp", "cr", "out",
                                                  "reas", "cost")},
        "koff": koff, "kh": kh.astype(np.uint32), "kidx": kidx.astype(np.int32),
        "seg_ptr": seg_ptr, "tasks_index": tasks_index,
    }
    # CHECKPOINT first: the signature must be the one the files keep once closed
    with contextlib.suppress(Exception):  # read-only: nothing of its own to write
        con.execute("CHECKPOINT")
    header = {"v": SUMMARY_VERSION, "id": secrets.token_hex(8), "sig": store_signature(db),
              "catalog": catalog_fingerprint(), "tz": "UTC", "spool": spool,
              "quarantined": quarantined, "usage_missing": usage_missing, "files": files,
              "n": n, "state": state.to_doc()}
    write_summary_file(summary_path(db), header,
                       {"keys": keys, **{k: v.tobytes() for k, v in arrays.items()}})
    return True
