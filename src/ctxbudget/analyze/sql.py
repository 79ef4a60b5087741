"""The metric queries, written once in DuckDB's SQL dialect.

Every engine runs these texts: DuckDB as they are, Spark after :func:`to_dialect`
(sqlglot). They read three relations: ``calls``, ``tasks`` and ``prices`` (see
:mod:`.pricing`). The formulas of every column are documented in ``docs/metrics.md``.

Definitions used throughout:

- ``prompt_tokens`` = input + cache read + cache write 5m + cache write 1h.
- ``task_key`` = ``task_id``, else ``session_id``, else the call itself.
- ``price_day`` = the call's UTC date (prices are resolved per UTC day).
- ``day`` = the call's date in the report time zone (``--tz``, default UTC).
- wasted cache writes: a call's 5m (1h) cache-write tokens are *wasted* when no later
  call of the same session (``session_id``, else ``task_id``) and model reads from the
  cache within 5 minutes (1 hour) of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from .pricing import call_cost_sql

__all__ = ["DIMENSIONS", "Filters", "base_cte", "group_sql", "price_keys_sql", "task_sql",
           "to_dialect", "type_summary_sql"]

#: ``--by`` dimension -> SQL key expression over the priced-calls relation ``pc``.
DIMENSIONS: dict[str, str] = {
    "task": "pc.task_key",
    "type": "COALESCE(pc.ttype, '(none)')",
    "model": "pc.model",
    "day": "CAST(pc.day AS VARCHAR)",
    "session": "COALESCE(pc.session_id, '(none)')",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """Which calls a query sees, and how days are bucketed."""

    since: datetime | None = None
    """Inclusive lower bound on ``ts`` (UTC)."""
    until: datetime | None = None
    """Exclusive upper bound on ``ts`` (UTC)."""
    tz: str = "UTC"
    """IANA time zone for the ``day`` bucket."""
    task_type: str | None = None

    def where(self) -> str:
        parts = ["1 = 1"]
        if self.since is not None:
            parts.append(f"ts >= CAST('{_ts(self.since)}' AS TIMESTAMP)")
        if self.until is not None:
            parts.append(f"ts < CAST('{_ts(self.until)}' AS TIMESTAMP)")
        return " AND ".join(parts)


def _ts(d: datetime) -> str:
    from datetime import UTC

    if d.tzinfo is not None:
        d = d.astimezone(UTC).replace(tzinfo=None)
    return d.isoformat(sep=" ")


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _day_expr(tz: str, dialect: str) -> str:
    if tz in ("UTC", "utc", "Etc/UTC"):
        return "CAST(ts AS DATE)"
    if dialect == "spark":
        return f"TO_DATE(FROM_UTC_TIMESTAMP(ts, {_lit(tz)}))"
    return f"CAST(timezone({_lit(tz)}, ts) AS DATE)"


def price_keys_sql(f: Filters) -> str:
    """Distinct (provider, model, service_tier, UTC day) keys to price."""
    return (
        "SELECT DISTINCT COALESCE(provider, '') AS provider, COALESCE(model, '') AS model, "
        "COALESCE(service_tier, '') AS service_tier, CAST(ts AS DATE) AS price_day "
        f"FROM calls WHERE {f.where()}"
    )


def base_cte(f: Filters, dialect: str = "duckdb", *, wasted: bool = True) -> str:
    """``WITH ... pc AS (...)``: one row per call with cost, type, outcome and waste."""
    waste_window = (
        "MIN(CASE WHEN cache_read_tokens > 0 THEN ts END) OVER ("
        "PARTITION BY COALESCE(session_id, task_id, call_key), model "
        "ORDER BY ts, call_key ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)"
        if wasted else "CAST(NULL AS TIMESTAMP)"
    )
    type_filter = ""
    if f.task_type is not None:
        type_filter = f"WHERE COALESCE(w.task_type, t.task_type) = {_lit(f.task_type)}"
    return f"""WITH c AS (
  SELECT calls.*,
    input_tokens + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens
      AS prompt_tokens,
    CAST(ts AS DATE) AS price_day,
    {_day_expr(f.tz, dialect)} AS day,
    COALESCE(task_id, session_id, call_key) AS task_key
  FROM calls WHERE {f.where()}
), w AS (
  SELECT c.*, {waste_window} AS next_read_ts FROM c
), pc AS (
  SELECT w.*, COALESCE(w.task_type, t.task_type) AS ttype, t.outcome AS outcome,
    {call_cost_sql("w", "p")} AS cost_usd,
    CASE WHEN w.next_read_ts IS NOT NULL AND w.next_read_ts <= w.ts + INTERVAL 5 MINUTE
         THEN 0 ELSE w.cache_write_5m_tokens END
    + CASE WHEN w.next_read_ts IS NOT NULL AND w.next_read_ts <= w.ts + INTERVAL 1 HOUR
         THEN 0 ELSE w.cache_write_1h_tokens END AS wasted_write_tokens
  FROM w
  LEFT JOIN prices p
    ON p.provider = COALESCE(w.provider, '') AND p.model = COALESCE(w.model, '')
   AND p.service_tier = COALESCE(w.service_tier, '') AND p.price_day = w.price_day
   AND w.prompt_tokens > p.lo AND (p.hi IS NULL OR w.prompt_tokens <= p.hi)
  LEFT JOIN tasks t ON t.task_id = w.task_id
  {type_filter}
)"""


_SUMS = """COUNT(*) AS calls,
  SUM(pc.input_tokens) AS input_tokens,
  SUM(pc.cache_read_tokens) AS cache_read_tokens,
  SUM(pc.cache_write_5m_tokens) AS cache_write_5m_tokens,
  SUM(pc.cache_write_1h_tokens) AS cache_write_1h_tokens,
  SUM(pc.output_tokens) AS output_tokens,
  SUM(pc.reasoning_tokens) AS reasoning_tokens,
  SUM(pc.cost_usd) AS cost_usd,
  SUM(CASE WHEN pc.cost_usd IS NULL THEN 1 ELSE 0 END) AS unpriced_calls,
  SUM(pc.wasted_write_tokens) AS wasted_write_tokens,
  SUM(CASE WHEN pc.status = 'ok' THEN 0 ELSE 1 END) AS error_calls,
  MIN(pc.ts) AS first_ts,
  MAX(pc.ts) AS last_ts,
  SUM(CAST(ROUND(pc.latency_ms * 1000) AS BIGINT)) AS latency_us,
  SUM(CASE WHEN pc.outcome = 'failure' THEN pc.cost_usd END) AS failed_cost_usd"""


def group_sql(by: str, f: Filters, dialect: str = "duckdb", *, wasted: bool = True) -> str:
    """One row per ``by`` key (``all``: one total row) with summed buckets, cost, outcomes."""
    key = "'total'" if by == "all" else DIMENSIONS[by]
    group = "" if by == "all" else f" GROUP BY {key}"
    if by == "task":
        per_task = """1 AS tasks,
  CASE WHEN MIN(pc.outcome) = 'success' THEN 1 ELSE 0 END AS success_tasks,
  CASE WHEN MIN(pc.outcome) = 'failure' THEN 1 ELSE 0 END AS failure_tasks,
  CASE WHEN MIN(pc.outcome) = 'partial' THEN 1 ELSE 0 END AS partial_tasks,
  MIN(pc.ttype) AS task_type, MIN(pc.outcome) AS outcome"""
    else:
        per_task = """COUNT(DISTINCT pc.task_key) AS tasks,
  COUNT(DISTINCT CASE WHEN pc.outcome = 'success' THEN pc.task_key END) AS success_tasks,
  COUNT(DISTINCT CASE WHEN pc.outcome = 'failure' THEN pc.task_key END) AS failure_tasks,
  COUNT(DISTINCT CASE WHEN pc.outcome = 'partial' THEN pc.task_key END) AS partial_tasks,
  CAST(NULL AS VARCHAR) AS task_type, CAST(NULL AS VARCHAR) AS outcome"""
    return f"""{base_cte(f, dialect, wasted=wasted)}
SELECT {key} AS key,
  {_SUMS},
  {per_task}
FROM pc{group}"""


def task_sql(f: Filters, dialect: str = "duckdb") -> str:
    """One row per task: type, outcome, calls, tokens, cost (NULL if any call is unpriced)."""
    return f"""{base_cte(f, dialect, wasted=False)}
SELECT pc.task_key AS task_key, MIN(pc.ttype) AS task_type, MIN(pc.outcome) AS outcome,
  COUNT(*) AS calls, MAX(pc.turn) AS max_turn,
  SUM(pc.prompt_tokens) AS prompt_tokens, SUM(pc.output_tokens) AS output_tokens,
  SUM(pc.cache_read_tokens) AS cache_read_tokens,
  CASE WHEN SUM(CASE WHEN pc.cost_usd IS NULL THEN 1 ELSE 0 END) > 0 THEN NULL
       ELSE SUM(pc.cost_usd) END AS cost_usd,
  MIN(pc.ts) AS first_ts, MIN(pc.day) AS day
FROM pc GROUP BY pc.task_key"""


def type_summary_sql(f: Filters, dialect: str = "duckdb") -> str:
    """Per task type: tasks, p50 / p95 / max cost per task (nearest rank), outcomes, spend."""
    return f"""WITH tk AS (
{task_sql(f, dialect)}
)
SELECT COALESCE(tk.task_type, '(none)') AS task_type,
  COUNT(*) AS tasks,
  COUNT(tk.cost_usd) AS priced_tasks,
  quantile_disc(tk.cost_usd, 0.5) AS p50_cost_usd,
  quantile_disc(tk.cost_usd, 0.95) AS p95_cost_usd,
  MAX(tk.cost_usd) AS max_cost_usd,
  SUM(tk.cost_usd) AS cost_usd,
  quantile_disc(tk.prompt_tokens + tk.output_tokens, 0.5) AS p50_tokens,
  quantile_disc(tk.prompt_tokens + tk.output_tokens, 0.95) AS p95_tokens,
  SUM(CASE WHEN tk.outcome = 'success' THEN 1 ELSE 0 END) AS successes,
  SUM(CASE WHEN tk.outcome = 'failure' THEN 1 ELSE 0 END) AS failures,
  SUM(CASE WHEN tk.outcome = 'partial' THEN 1 ELSE 0 END) AS partials,
  SUM(CASE WHEN tk.outcome = 'failure' THEN tk.cost_usd END) AS failed_cost_usd,
  SUM(CASE WHEN tk.outcome = 'success' THEN tk.cost_usd END) AS success_cost_usd,
  SUM(tk.calls) AS calls
FROM tk GROUP BY COALESCE(tk.task_type, '(none)')"""


def to_dialect(sql: str, dialect: str) -> str:
    """The same query in another engine's dialect (sqlglot); DuckDB text is returned as is."""
    if dialect == "duckdb":
        return sql
    import sqlglot

    out = str(sqlglot.transpile(sql, read="duckdb", write=dialect)[0])
    if dialect == "spark":
        # sqlglot writes PERCENTILE_DISC(x, q); Spark only has the ordered-set form.
        out = _PCT_DISC.sub(r"PERCENTILE_DISC(\2) WITHIN GROUP (ORDER BY \1)", out)
    return out


_PCT_DISC = re.compile(r"PERCENTILE_DISC\(([^()]+?), ([0-9.]+)\)")
