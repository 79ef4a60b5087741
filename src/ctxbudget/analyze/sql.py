"""The metric queries, written once in DuckDB's SQL dialect.

Every engine runs these texts: DuckDB as they are, Spark after :func:`to_dialect`
(sqlglot). They read three relations: ``calls``, ``tasks`` and ``prices`` (see
:mod:`.pricing`). The formulas of every column are documented in ``docs/metrics.md``.

Definitions used throughout:

- ``prompt_tokens`` = input + cache read + cache write 5m + cache write 1h.
- ``task_key`` = ``task_id``, else ``session_id``, else :data:`NO_TASK`: the calls made
  outside any task are one ``(no task)`` group, which is not counted as a task.
- ``price_day`` = the call's UTC date (prices are resolved per UTC day).
- ``day`` = the call's date in the report time zone (``--tz``, default UTC).
- wasted cache writes: a call's 5m (1h) cache-write tokens are *wasted* when no later
  call of the same session (``session_id``, else ``task_id``) and model reads from the
  cache within 5 minutes (1 hour) of it ("later": after it in (ts, call_key) order).

How wasted writes are found without sorting every call (:func:`_waste_ctes`): the calls
that read the cache are grouped by (session, model, 5-minute bucket of ``ts``) into their
first and last read instant; a window over those buckets (one row per bucket, not per
call) gives each bucket the first read of any later bucket. A write is followed by a read
within 5 minutes when its own bucket's last read is after it (same bucket: less than 5
minutes apart); else its next read is the later buckets' first read, compared with the
TTL as before. A write at exactly its bucket's last read instant is checked call by call
against the reads at that instant (``call_key`` order), a join DuckDB skips when there
are none. The result equals the per-call window ``MIN(read ts) OVER (PARTITION BY
session, model ORDER BY ts, call_key ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)``
(the analyze tests compare both), for timestamps after 1970.
"""

from __future__ import annotations

from ._results import Filters
from .pricing import (
    TOOL_FEES,
    call_cost_sql,
    call_tool_fees_sql,
    group_cost_sql,
    group_tool_fees_sql,
    unpriced_fee_sql,
)

__all__ = ["DIMENSIONS", "NO_TASK", "Filters", "base_cte", "detail_present_sql", "group_sql",
           "grouping_sets_sql", "price_keys_sql", "task_key_sql", "task_sql", "to_dialect",
           "unpriced_fees_sql"]

#: The task key of the calls made outside any task (no task id, no session id).
NO_TASK = "(no task)"
_TASK_KEY = "COALESCE({t}task_id, {t}session_id, '" + NO_TASK + "')"


def task_key_sql(alias: str = "") -> str:
    """The task key of a call (``alias.`` columns when given): task id, else session id,
    else :data:`NO_TASK`."""
    return _TASK_KEY.format(t=f"{alias}." if alias else "")

#: ``--by`` dimension -> SQL key expression over the priced-calls relation ``pc``.
DIMENSIONS: dict[str, str] = {
    "task": "pc.task_key",
    "type": f"COALESCE(pc.ttype, CASE WHEN pc.task_key = '{NO_TASK}' THEN '{NO_TASK}' "
            "ELSE '(none)' END)",
    "model": "pc.model",
    "day": "CAST(pc.day AS VARCHAR)",
    "session": "COALESCE(pc.session_id, '(none)')",
}


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _day_expr(tz: str, dialect: str, col: str = "ts") -> str:
    if tz in ("UTC", "utc", "Etc/UTC"):
        return f"CAST({col} AS DATE)"
    if dialect == "spark":
        return f"TO_DATE(FROM_UTC_TIMESTAMP({col}, {_lit(tz)}))"
    return f"CAST(timezone({_lit(tz)}, {col}) AS DATE)"


def price_keys_sql(f: Filters) -> str:
    """Distinct (provider, model, service_tier) with their first and last UTC day."""
    return (
        "SELECT COALESCE(provider, '') AS provider, COALESCE(model, '') AS model, "
        "COALESCE(service_tier, '') AS service_tier, CAST(MIN(ts) AS DATE) AS first_day, "
        f"CAST(MAX(ts) AS DATE) AS last_day FROM calls WHERE {f.where()} "
        "GROUP BY COALESCE(provider, ''), COALESCE(model, ''), COALESCE(service_tier, '')"
    )


def detail_present_sql(f: Filters, names: tuple[str, ...]) -> str:
    """One row: for each usage detail column of ``names``, whether a call in range holds a
    non-zero count (``other_tool_requests``: any value)."""
    cols = ", ".join(
        f"COUNT({n}) > 0" if n == "other_tool_requests" else f"COALESCE(MAX({n}) > 0, false)"
        for n in names)
    return f"SELECT {cols} FROM calls WHERE {f.where()}"


def unpriced_fees_sql(f: Filters, detail: tuple[str, ...]) -> str:
    """Per (provider, model): the tool requests of ``detail`` no fee prices (one column per
    tool field, in :data:`.pricing.TOOL_FEES` order) and the calls with other counters."""
    tools = [(n, c) for n, c in TOOL_FEES.items() if n in detail]
    cols = "".join(
        f", CAST(SUM(CASE WHEN p.{c} IS NULL THEN COALESCE(c.{n}, 0) ELSE 0 END) AS BIGINT)"
        for n, c in tools)
    other = ("COUNT(c.other_tool_requests)" if "other_tool_requests" in detail
             else "CAST(0 AS BIGINT)")
    return f"""WITH c AS (
  SELECT calls.*, input_tokens + cache_read_tokens + cache_write_5m_tokens
    + cache_write_1h_tokens AS prompt_tokens FROM calls WHERE {f.where()}
)
SELECT COALESCE(c.provider, '') AS provider, COALESCE(c.model, '') AS model,
  {other}{cols}
FROM c LEFT JOIN prices p ON {_price_on("c", "p")}
GROUP BY COALESCE(c.provider, ''), COALESCE(c.model, '')
ORDER BY 1, 2"""


def _price_on(w: str, p: str) -> str:
    """The join of a call ``w`` to its one price row ``p`` (key, UTC day as instants, band)."""
    return f"""{p}.provider = COALESCE({w}.provider, '') AND {p}.model = COALESCE({w}.model, '')
   AND {p}.service_tier = COALESCE({w}.service_tier, '')
   AND {p}.ts_from <= {w}.ts AND {w}.ts < {p}.ts_to
   AND {w}.prompt_tokens > {p}.lo AND ({p}.hi IS NULL OR {w}.prompt_tokens <= {p}.hi)"""


#: Width of the wasted-write buckets in microseconds: two instants in one bucket are
#: less than 5 minutes (the shorter TTL) apart.
_BUCKET_US = 300_000_000
_SESSION = "COALESCE({t}session_id, {t}task_id, {t}call_key)"
_WRITES = "({t}cache_write_5m_tokens > 0 OR {t}cache_write_1h_tokens > 0)"

_WASTED = """CASE WHEN w.next_read_ts IS NOT NULL AND w.next_read_ts <= w.ts + INTERVAL 5 MINUTE
         THEN 0 ELSE w.cache_write_5m_tokens END
    + CASE WHEN w.next_read_ts IS NOT NULL AND w.next_read_ts <= w.ts + INTERVAL 1 HOUR
         THEN 0 ELSE w.cache_write_1h_tokens END"""


def _bucket(dialect: str, col: str) -> str:
    fn = "UNIX_MICROS" if dialect == "spark" else "epoch_us"
    return f"{fn}({col}) // {_BUCKET_US}"


def _waste_ctes(f: Filters, dialect: str) -> str:
    """``wb, wn``: the read buckets of the calls that read or write the cache.

    - ``wb``: per (session ``sk``, model, bucket ``b``): first and last read instant
      (NULL when no call of the bucket reads).
    - ``wn``: ``wb`` with ``later_read``, the first read instant of any later bucket.

    ``wb`` reads ``calls`` itself (a CTE used twice would be materialized whole).
    """
    sk = _SESSION.format(t="")
    return f"""wb AS (
  SELECT {sk} AS sk, model, {_bucket(dialect, "ts")} AS b,
    MIN(CASE WHEN cache_read_tokens > 0 THEN ts END) AS first_read,
    MAX(CASE WHEN cache_read_tokens > 0 THEN ts END) AS last_read
  FROM calls
  WHERE ({f.where()}) AND (cache_read_tokens > 0 OR {_WRITES.format(t="")})
  GROUP BY {sk}, model, {_bucket(dialect, "ts")}
), wn AS (
  SELECT wb.sk, wb.model, wb.b, wb.last_read,
    MIN(wb.first_read) OVER (PARTITION BY wb.sk, wb.model ORDER BY wb.b
      ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS later_read
  FROM wb
)"""


def _tie_cte(f: Filters, dialect: str, writes: str | None = None) -> str:
    """``wt``: (sk, model, ts, call_key) of every cache write made at its bucket's last read
    instant that a read at that same instant follows in ``call_key`` order.

    ``writes`` names a CTE of cache-writing calls already joined to ``wn`` (columns
    ``sk``, ``model``, ``ts``, ``call_key``, ``last_read``); without it the writes are
    read from ``calls``. The reads are then read from ``calls`` only for the writes
    found (DuckDB skips the join's scan when there are none).
    """
    sk_c, sk_r = _SESSION.format(t="c."), _SESSION.format(t="r.")
    tied = (f"SELECT x.sk, x.model, x.ts, x.call_key FROM {writes} x WHERE x.last_read = x.ts"
            if writes else f"""SELECT {sk_c} AS sk, c.model, c.ts, c.call_key
    FROM calls c
    JOIN wn ON wn.sk IS NOT DISTINCT FROM {sk_c} AND wn.model IS NOT DISTINCT FROM c.model
     AND wn.b = {_bucket(dialect, "c.ts")} AND wn.last_read = c.ts
    WHERE ({f.where("c")}) AND {_WRITES.format(t="c.")}""")
    return f"""wt AS (
  SELECT a.sk, a.model, a.ts, a.call_key
  FROM ({tied}) a
  JOIN calls r ON {sk_r} IS NOT DISTINCT FROM a.sk AND r.model IS NOT DISTINCT FROM a.model
   AND r.ts = a.ts AND r.call_key > a.call_key AND r.cache_read_tokens > 0
  GROUP BY a.sk, a.model, a.ts, a.call_key
)"""


def _next_read(w: str, n: str = "wn") -> str:
    """``next_read_ts`` of a cache-writing call ``w`` joined to its bucket (``n``) and ``wt``:
    the call's own instant when a read follows within its bucket (under 5 minutes later,
    all the TTL tests need), else the first read of a later bucket (NULL: none)."""
    return (f"CASE WHEN {n}.last_read > {w}.ts OR wt.ts IS NOT NULL THEN {w}.ts "
            f"ELSE {n}.later_read END")


def _waste_join(w: str, dialect: str, *, writers_only: bool) -> str:
    """``LEFT JOIN wn ... LEFT JOIN wt ...`` for the call ``w`` (columns ``sk`` and ``ts``)."""
    cond = f" AND {_WRITES.format(t=w + '.')}" if writers_only else ""
    return f"""LEFT JOIN wn ON wn.sk IS NOT DISTINCT FROM {w}.sk
   AND wn.model IS NOT DISTINCT FROM {w}.model AND wn.b = {_bucket(dialect, w + ".ts")}{cond}
  LEFT JOIN wt ON wt.sk IS NOT DISTINCT FROM {w}.sk AND wt.model IS NOT DISTINCT FROM {w}.model
   AND wt.ts = {w}.ts AND wt.call_key = {w}.call_key{cond}"""


def _calls_ctes(f: Filters, dialect: str, wasted: bool) -> str:
    """``WITH [wb, wn, wt,] c AS (...), w AS (...)``: the filtered calls with derived keys
    (and, with ``wasted``, each cache write's next read)."""
    waste = f"{_waste_ctes(f, dialect)}, {_tie_cte(f, dialect)}, " if wasted else ""
    next_read = _next_read("c") if wasted else "CAST(NULL AS TIMESTAMP)"
    join = _waste_join("c", dialect, writers_only=True) if wasted else ""
    sk = f",\n    {_SESSION.format(t='')} AS sk" if wasted else ""
    return f"""WITH {waste}c AS (
  SELECT calls.*,
    input_tokens + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens
      AS prompt_tokens,
    {_day_expr(f.tz, dialect)} AS day,
    {_TASK_KEY.format(t="")} AS task_key{sk}
  FROM calls WHERE {f.where()}
), w AS (
  SELECT c.*, {next_read} AS next_read_ts FROM c
  {join}
)"""


def base_cte(f: Filters, dialect: str = "duckdb", *, wasted: bool = True,
             join_tasks: bool = True, detail: tuple[str, ...] = ()) -> str:
    """``WITH ... pc AS (...)``: one row per call with cost, type, outcome and waste.

    ``join_tasks=False`` leaves ``outcome`` NULL and ``ttype`` the call's own type.
    ``detail``: the usage detail columns the data holds
    (:attr:`.pricing.PriceTable.detail`), priced into ``cost_usd`` and ``tool_fees_usd``.
    """
    type_filter = ""
    if f.task_type is not None:
        type_filter = f"WHERE COALESCE(w.task_type, t.task_type) = {_lit(f.task_type)}"
    if join_tasks or f.task_type is not None:
        task_cols = "COALESCE(w.task_type, t.task_type) AS ttype, t.outcome AS outcome"
        task_join = "LEFT JOIN tasks t ON t.task_id = w.task_id"
    else:
        task_cols = "w.task_type AS ttype, CAST(NULL AS VARCHAR) AS outcome"
        task_join = ""
    return f"""{_calls_ctes(f, dialect, wasted)}, pc AS (
  SELECT w.*, {task_cols},
    {call_cost_sql("w", "p", detail)} AS cost_usd,
    {call_tool_fees_sql("w", "p", detail)} AS tool_fees_usd,
    {unpriced_fee_sql("w", "p", detail)} AS unpriced_fee,
    {_WASTED} AS wasted_write_tokens
  FROM w
  LEFT JOIN prices p
    ON {_price_on("w", "p")}
  {task_join}
  {type_filter}
)"""


def _task_ctes(f: Filters, dialect: str, *, wasted: bool, detail: tuple[str, ...] = ()) -> str:
    """``WITH ... g AS (...)``: one row per task key with summed buckets and exact cost.

    One pass groups the calls by task with integer sums and the task's lowest and highest
    price row. A task whose calls all joined one price row (nearly all: a task rarely
    spans a price change or a tier boundary) is priced once from its sums with
    :func:`.pricing.group_cost_sql` — the same DECIMAL value as summing every call's cost,
    since the formula is linear and DECIMAL does not round. The other tasks (``mx``) are
    priced call by call from a second read of ``calls`` joined to just those tasks, which
    DuckDB skips when there are none.
    """
    type_join = type_filter = ""
    if f.task_type is not None:
        type_join = "LEFT JOIN tasks t ON t.task_id = w.task_id"
        type_filter = f"WHERE COALESCE(w.task_type, t.task_type) = {_lit(f.task_type)}"
    counts = (*_BUCKET_COLS, *(d for d in detail if d != "other_tool_requests"))
    sums = ", ".join(f"CAST(SUM(j.{b}) AS BIGINT) AS {b}" for b in counts)
    if dialect == "spark":
        return _task_ctes_spark(f, dialect, wasted, detail, type_join, type_filter, counts,
                                sums)
    return f"""{_calls_ctes(f, dialect, False)}, j AS (
  SELECT w.task_key, w.task_id, w.task_type, w.ts, w.turn, w.status,
    {", ".join(f"w.{b}" for b in counts)}, p.price_id AS pid,
    {unpriced_fee_sql("w", "p", detail)} AS unpriced_fee
  FROM w
  LEFT JOIN prices p
    ON {_price_on("w", "p")}
  {type_join}
  {type_filter}
), g1 AS (
  SELECT j.task_key,
    CASE WHEN COUNT(j.task_id) > 0 THEN j.task_key END AS tid,  -- = MIN(task_id), cheaper
    MIN(j.task_type) AS ctype, COUNT(*) AS calls, {sums},
    CAST(SUM(CASE WHEN j.status = 'ok' THEN 0 ELSE 1 END) AS BIGINT) AS error_calls,
    MIN(j.ts) AS first_ts, MAX(j.ts) AS last_ts, MAX(j.turn) AS max_turn,
    MIN(j.pid) AS pid, MAX(j.pid) AS pid_hi, COUNT(j.pid) AS priced_rows,
    CAST(SUM(j.unpriced_fee) AS BIGINT) AS unpriced_fee_calls
  FROM j GROUP BY j.task_key
), mx AS (
  SELECT g1.task_key FROM g1 WHERE g1.pid <> g1.pid_hi OR g1.priced_rows < g1.calls
), fx AS (
  SELECT w.task_key, SUM({call_cost_sql("w", "p", detail)}) AS cost_usd,
    CAST(SUM(CASE WHEN {call_cost_sql("w", "p", detail)} IS NULL THEN 1 ELSE 0 END) AS BIGINT)
      AS unpriced_calls,
    SUM({call_tool_fees_sql("w", "p", detail)}) AS tool_fees_usd
  FROM (SELECT calls.*, {_TASK_KEY.format(t="")} AS task_key,
          input_tokens + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens
            AS prompt_tokens
        FROM calls WHERE {f.where()}) w
  JOIN mx ON mx.task_key = w.task_key
  LEFT JOIN prices p
    ON {_price_on("w", "p")}
  {type_join}
  {type_filter}
  GROUP BY w.task_key
), g AS (
  SELECT g1.*,
    CASE WHEN fx.task_key IS NOT NULL THEN fx.cost_usd
         ELSE {group_cost_sql("g1", "p", detail=detail)} END AS cost_usd,
    CASE WHEN fx.task_key IS NOT NULL THEN fx.unpriced_calls
         WHEN {group_cost_sql("g1", "p", detail=detail)} IS NULL THEN g1.calls ELSE 0 END
      AS unpriced_calls,
    CASE WHEN fx.task_key IS NOT NULL THEN fx.tool_fees_usd
         ELSE {group_tool_fees_sql("g1", "p", detail)} END AS tool_fees_usd
  FROM g1
  LEFT JOIN fx ON fx.task_key = g1.task_key
  LEFT JOIN prices p ON p.price_id = g1.pid
), {_task_waste_ctes(f, dialect, wasted)}"""


def _task_ctes_spark(f: Filters, dialect: str, wasted: bool, detail: tuple[str, ...],
                     type_join: str, type_filter: str, counts: tuple[str, ...],
                     sums: str) -> str:
    """:func:`_task_ctes` for Spark: each call priced in the one pass that groups them by
    task (the same exact DECIMAL sums). Spark inlines a CTE at every use, so the DuckDB
    text's second look at ``g1`` (the tasks to price call by call) would read and join
    every call twice more."""
    fees = call_tool_fees_sql("w", "p", detail)
    # no tool counts in the data: the fee is a constant, not a DECIMAL sum per call
    fees_sum = fees if fees == call_tool_fees_sql("w", "p", ()) else "SUM(j.tool_fees)"
    return f"""{_calls_ctes(f, dialect, False)}, j AS (
  SELECT w.task_key, w.task_id, w.task_type, w.ts, w.turn, w.status,
    {", ".join(f"w.{b}" for b in counts)},
    {call_cost_sql("w", "p", detail)} AS cost,
    {fees} AS tool_fees,
    {unpriced_fee_sql("w", "p", detail)} AS unpriced_fee
  FROM w
  LEFT JOIN prices p
    ON {_price_on("w", "p")}
  {type_join}
  {type_filter}
), g AS (
  SELECT j.task_key,
    CASE WHEN COUNT(j.task_id) > 0 THEN j.task_key END AS tid,
    MIN(j.task_type) AS ctype, COUNT(*) AS calls, {sums},
    CAST(SUM(CASE WHEN j.status = 'ok' THEN 0 ELSE 1 END) AS BIGINT) AS error_calls,
    MIN(j.ts) AS first_ts, MAX(j.ts) AS last_ts, MAX(j.turn) AS max_turn,
    CAST(SUM(j.unpriced_fee) AS BIGINT) AS unpriced_fee_calls,
    SUM(j.cost) AS cost_usd,
    CAST(SUM(CASE WHEN j.cost IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS unpriced_calls,
    {fees_sum} AS tool_fees_usd
  FROM j GROUP BY j.task_key
), {_task_waste_ctes(f, dialect, wasted)}"""


def _task_waste_ctes(f: Filters, dialect: str, wasted: bool) -> str:
    """``ww AS (...)``: wasted cache-write tokens per task key (no rows when ``wasted`` is off).

    Only the calls that write the cache are read here, joined to their read bucket.
    """
    if not wasted:
        return ("ww AS (SELECT CAST(NULL AS VARCHAR) AS task_key, "
                "CAST(0 AS BIGINT) AS wasted_write_tokens FROM prices WHERE 1 = 0)")
    type_join = type_filter = ""
    if f.task_type is not None:
        type_join = "LEFT JOIN tasks t ON t.task_id = w.task_id"
        type_filter = f"AND COALESCE(w.task_type, t.task_type) = {_lit(f.task_type)}"
    return f"""{_waste_ctes(f, dialect)}, wx AS (
  SELECT {_TASK_KEY.format(t="x.")} AS task_key, x.task_id, x.task_type,
    {_SESSION.format(t="x.")} AS sk, x.model, x.ts, x.call_key,
    x.cache_write_5m_tokens, x.cache_write_1h_tokens, wn.last_read, wn.later_read
  FROM calls x
  LEFT JOIN wn ON wn.sk IS NOT DISTINCT FROM {_SESSION.format(t="x.")}
   AND wn.model IS NOT DISTINCT FROM x.model AND wn.b = {_bucket(dialect, "x.ts")}
  WHERE ({f.where("x")}) AND {_WRITES.format(t="x.")}
), {_tie_cte(f, dialect, "wx")}, ww AS (
  SELECT w.task_key AS task_key, CAST(SUM({_WASTED}) AS BIGINT) AS wasted_write_tokens
  FROM (SELECT wx.*, {_next_read("wx", "wx")} AS next_read_ts FROM wx
        LEFT JOIN wt ON wt.sk IS NOT DISTINCT FROM wx.sk
         AND wt.model IS NOT DISTINCT FROM wx.model AND wt.ts = wx.ts
         AND wt.call_key = wx.call_key) w
  {type_join}
  WHERE 1 = 1 {type_filter}
  GROUP BY w.task_key
)"""


_BUCKET_COLS = ("input_tokens", "cache_read_tokens", "cache_write_5m_tokens",
                "cache_write_1h_tokens", "output_tokens", "reasoning_tokens")

_SUMS = """COUNT(*) AS calls,
  CAST(SUM(pc.input_tokens) AS BIGINT) AS input_tokens,
  CAST(SUM(pc.cache_read_tokens) AS BIGINT) AS cache_read_tokens,
  CAST(SUM(pc.cache_write_5m_tokens) AS BIGINT) AS cache_write_5m_tokens,
  CAST(SUM(pc.cache_write_1h_tokens) AS BIGINT) AS cache_write_1h_tokens,
  CAST(SUM(pc.output_tokens) AS BIGINT) AS output_tokens,
  CAST(SUM(pc.reasoning_tokens) AS BIGINT) AS reasoning_tokens,
  SUM(pc.cost_usd) AS cost_usd,
  CAST(SUM(CASE WHEN pc.cost_usd IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS unpriced_calls,
  SUM(pc.tool_fees_usd) AS tool_fees_usd,
  CAST(SUM(pc.unpriced_fee) AS BIGINT) AS unpriced_fee_calls,
  CAST(SUM(pc.wasted_write_tokens) AS BIGINT) AS wasted_write_tokens,
  CAST(SUM(CASE WHEN pc.status = 'ok' THEN 0 ELSE 1 END) AS BIGINT) AS error_calls,
  MIN(pc.ts) AS first_ts,
  MAX(pc.ts) AS last_ts"""


#: The columns of a group row after its key (GroupRow's fields), over ``pc``.
_GROUP_COLS = f"""{_SUMS},
  SUM(CASE WHEN pc.outcome = 'failure' THEN pc.cost_usd END) AS failed_cost_usd,
  COUNT(DISTINCT CASE WHEN pc.task_key <> '{NO_TASK}' THEN pc.task_key END) AS tasks,
  COUNT(DISTINCT CASE WHEN pc.outcome = 'success' THEN pc.task_key END) AS success_tasks,
  COUNT(DISTINCT CASE WHEN pc.outcome = 'failure' THEN pc.task_key END) AS failure_tasks,
  COUNT(DISTINCT CASE WHEN pc.outcome = 'partial' THEN pc.task_key END) AS partial_tasks,
  COUNT(DISTINCT CASE WHEN pc.outcome = 'blocked' THEN pc.task_key END) AS blocked_tasks,
  CAST(NULL AS VARCHAR) AS task_type, CAST(NULL AS VARCHAR) AS outcome,
  CAST(NULL AS VARCHAR) AS blocked_by"""


def group_sql(by: str, f: Filters, dialect: str = "duckdb", *, wasted: bool = True,
              with_total: bool = False, detail: tuple[str, ...] = ()) -> str:
    """One row per ``by`` key (``all``: one total row) with summed buckets, cost, outcomes.

    ``with_total`` (not for ``task``): also the total row, from the same scan
    (``GROUPING SETS``), with ``is_total = 1``; the other rows have ``is_total = 0``.
    ``detail``: see :func:`base_cte`.
    """
    if by == "task":
        return _task_group_sql(f, dialect, wasted=wasted, detail=detail)
    key = "'total'" if by == "all" else DIMENSIONS[by]
    group = "" if by == "all" else f" GROUP BY {key}"
    total_col = ""
    if with_total and by != "all":
        group = f" GROUP BY GROUPING SETS (({key}), ())"
        total_col = f"GROUPING({key}) AS is_total, "
        key = f"CASE WHEN GROUPING({key}) = 1 THEN 'total' ELSE {key} END"
    return f"""{base_cte(f, dialect, wasted=wasted, detail=detail)}
SELECT {total_col}{key} AS key,
  {_GROUP_COLS}
FROM pc{group}"""


def grouping_sets_sql(a: str, b: str, f: Filters, dialect: str = "duckdb", *,
                      wasted: bool = True, detail: tuple[str, ...] = ()) -> str:
    """:func:`group_sql`'s columns by ``a``, by ``b``, by (``a``, ``b``) and the total, from
    one scan of the calls. Column ``grp`` says which: 0 (a, b), 1 by ``a``, 2 by ``b``,
    3 the total (``GROUPING(a, b)``); ``key_a`` / ``key_b`` are NULL where aggregated."""
    ka, kb = DIMENSIONS[a], DIMENSIONS[b]
    return f"""{base_cte(f, dialect, wasted=wasted, detail=detail)}
SELECT GROUPING({ka}, {kb}) AS grp, {ka} AS key_a, {kb} AS key_b,
  {_GROUP_COLS}
FROM pc GROUP BY GROUPING SETS (({ka}), ({kb}), ({ka}, {kb}), ())"""


def _task_group_sql(f: Filters, dialect: str, *, wasted: bool,
                    detail: tuple[str, ...] = ()) -> str:
    """``group_sql('task')``: group the calls by task first, then join the tasks table;
    then the tasks blocked before their first call (:func:`_blocked_idle_sql`)."""
    cols = ", ".join(f"g.{b} AS {b}" for b in _BUCKET_COLS)
    zeros = ", ".join(f"CAST(0 AS BIGINT) AS {b}" for b in _BUCKET_COLS)
    return f"""{_task_ctes(f, dialect, wasted=wasted, detail=detail)}
SELECT g.task_key AS key, g.tid AS tid, g.ctype AS ctype, g.calls AS calls, {cols},
  g.cost_usd AS cost_usd, g.unpriced_calls AS unpriced_calls,
  g.tool_fees_usd AS tool_fees_usd, g.unpriced_fee_calls AS unpriced_fee_calls,
  COALESCE(ww.wasted_write_tokens, 0) AS wasted_write_tokens, g.error_calls AS error_calls,
  g.first_ts AS first_ts, g.last_ts AS last_ts,
  CASE WHEN t.outcome = 'failure' THEN g.cost_usd END AS failed_cost_usd,
  CASE WHEN g.task_key = '{NO_TASK}' THEN 0 ELSE 1 END AS tasks,
  CASE WHEN t.outcome = 'success' THEN 1 ELSE 0 END AS success_tasks,
  CASE WHEN t.outcome = 'failure' THEN 1 ELSE 0 END AS failure_tasks,
  CASE WHEN t.outcome = 'partial' THEN 1 ELSE 0 END AS partial_tasks,
  CASE WHEN t.outcome = 'blocked' THEN 1 ELSE 0 END AS blocked_tasks,
  COALESCE(g.ctype, t.task_type) AS task_type, t.outcome AS outcome,
  t.blocked_by AS blocked_by
FROM g LEFT JOIN tasks t ON t.task_id = g.tid LEFT JOIN ww ON ww.task_key = g.task_key
UNION ALL
SELECT b.task_id AS key, b.task_id AS tid, b.task_type AS ctype, CAST(0 AS BIGINT) AS calls,
  {zeros}, {_ZERO_USD} AS cost_usd, CAST(0 AS BIGINT) AS unpriced_calls,
  {_ZERO_USD} AS tool_fees_usd, CAST(0 AS BIGINT) AS unpriced_fee_calls,
  CAST(0 AS BIGINT) AS wasted_write_tokens, CAST(0 AS BIGINT) AS error_calls,
  b.started_at AS first_ts, b.started_at AS last_ts,
  CAST(NULL AS DECIMAL(18, 9)) AS failed_cost_usd, 1 AS tasks, 0 AS success_tasks,
  0 AS failure_tasks, 0 AS partial_tasks, 1 AS blocked_tasks, b.task_type AS task_type,
  b.outcome AS outcome, b.blocked_by AS blocked_by
FROM ({_blocked_idle_sql(f)}) b"""


#: The exact cost of a task that made no call.
_ZERO_USD = "CAST(0 AS DECIMAL(18, 9))"


def _blocked_idle_sql(f: Filters) -> str:
    """The tasks a budget cap blocked before their first call (outcome ``blocked``, no call
    stored), started in the range: they cost nothing but belong in the per-task report."""
    type_filter = "" if f.task_type is None else f" AND t.task_type = {_lit(f.task_type)}"
    # "no call has its id", asked of the calls of blocked tasks only (NOT IN over a list
    # without NULLs is NOT EXISTS): an engine that cannot hash the few blocked tasks
    # against the calls would otherwise move every call's task id (Spark broadcast them)
    return f"""SELECT t.task_id, t.task_type, t.outcome, t.started_at, t.blocked_by
  FROM tasks t WHERE t.outcome = 'blocked' AND ({f.where("t", "started_at")}){type_filter}
   AND t.task_id NOT IN (SELECT x.task_id FROM calls x WHERE x.task_id IN
     (SELECT k.task_id FROM tasks k WHERE k.outcome = 'blocked' AND k.task_id IS NOT NULL))"""


def task_sql(f: Filters, dialect: str = "duckdb", detail: tuple[str, ...] = (), *,
             no_task: bool = False) -> str:
    """One row per task: type, outcome, calls, tokens, cost (NULL if any call is unpriced);
    the tasks blocked before their first call with no calls and cost 0. ``no_task``: also
    the :data:`NO_TASK` row (the calls made outside any task), which is not a task."""
    where = "" if no_task else f"\nWHERE g.task_key <> '{NO_TASK}'"
    return f"""{_task_ctes(f, dialect, wasted=False, detail=detail)}
SELECT g.task_key AS task_key, COALESCE(g.ctype, t.task_type) AS task_type,
  t.outcome AS outcome, g.calls AS calls, g.max_turn AS max_turn,
  CAST(g.input_tokens + g.cache_read_tokens + g.cache_write_5m_tokens
       + g.cache_write_1h_tokens AS BIGINT) AS prompt_tokens,
  g.output_tokens AS output_tokens, g.cache_read_tokens AS cache_read_tokens,
  CASE WHEN g.unpriced_calls > 0 THEN NULL ELSE g.cost_usd END AS cost_usd,
  g.first_ts AS first_ts, {_day_expr(f.tz, dialect, "g.first_ts")} AS day
FROM g LEFT JOIN tasks t ON t.task_id = g.tid{where}
UNION ALL
SELECT b.task_id AS task_key, b.task_type AS task_type, b.outcome AS outcome,
  CAST(0 AS BIGINT) AS calls, CAST(NULL AS INTEGER) AS max_turn,
  CAST(0 AS BIGINT) AS prompt_tokens, CAST(0 AS BIGINT) AS output_tokens,
  CAST(0 AS BIGINT) AS cache_read_tokens, {_ZERO_USD} AS cost_usd,
  b.started_at AS first_ts, {_day_expr(f.tz, dialect, "b.started_at")} AS day
FROM ({_blocked_idle_sql(f)}) b"""


def to_dialect(sql: str, dialect: str) -> str:
    """The same query in another engine's dialect (sqlglot); DuckDB text is returned as is."""
    if dialect == "duckdb":
        return sql
    import sqlglot

    return str(sqlglot.transpile(sql, read="duckdb", write=dialect)[0])
