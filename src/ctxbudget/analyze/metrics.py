"""Per-task metrics: ``report --by task|type|model|day|session``.

Every figure is computed by the SQL in :mod:`.sql` (sums, counts, percentiles) and
every ratio here from those sums, so DuckDB and Spark agree exactly. Column formulas
are listed in ``docs/metrics.md``.
"""

from __future__ import annotations

from typing import Any

from ..prices import PriceBook, default_pricebook
from ._results import GroupRow, Report, Rows, TypeStats, _group_row, percentile, ratio
from .engine import Engine, price_data
from .pricing import TOOL_FEES
from .sql import (
    DIMENSIONS,
    NO_TASK,
    Filters,
    group_sql,
    grouping_sets_sql,
    task_sql,
    unpriced_fees_sql,
)

__all__ = ["GroupRow", "Report", "TypeStats", "compute_report", "compute_two_reports",
           "percentile", "ratio", "type_stats_from_tasks"]


def _local(table: Any, sql: str) -> list[tuple[Any, ...]]:
    """Run ``sql`` over the Arrow ``table`` (as ``t``) with an in-process DuckDB.

    Whatever engine produced the table, the small per-task summaries run here: DuckDB
    reads Arrow without a copy, and pyarrow.compute's first call alone costs ~0.25 s.
    """
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("t", table)
        return con.execute(sql).fetchall()
    finally:
        con.close()


def type_stats_from_tasks(tasks: Any) -> tuple[TypeStats, ...]:
    """Per task type stats from a per-task Arrow table (:func:`.sql.task_sql` columns, or
    the ``--by task`` report table): one in-process DuckDB query over the table.

    DuckDB's ``quantile_disc`` is the nearest-rank percentile of :func:`percentile`
    (sorted(values)[ceil(q * n) - 1], NULLs ignored); the analyze tests check that.
    """
    return _type_stats(_local(tasks, _type_stats_sql(tasks.column_names, "t")))


def _type_stats_sql(names: list[str], source: str) -> str:
    """The per-type stats query over a per-task relation ``source`` with columns ``names``.

    The :data:`.sql.NO_TASK` row (calls made outside any task) is a type of its own,
    ``(no task)``, with its calls and cost but no task: 0 tasks, no percentiles."""
    if "prompt_tokens" in names:
        tokens = "prompt_tokens + output_tokens"
    else:
        tokens = ("input_tokens + cache_read_tokens + cache_write_5m_tokens "
                  "+ cache_write_1h_tokens + output_tokens")
    key = "key" if "key" in names else "task_key"
    return f"""
WITH a AS (
  SELECT *, {key} = '{NO_TASK}' AS notask FROM {source}
), b AS (
  SELECT CASE WHEN notask THEN '{NO_TASK}' ELSE COALESCE(task_type, '(none)') END AS ttype,
    COALESCE(outcome, '') AS outcome, notask, cost_usd AS total,
    CASE WHEN notask THEN NULL ELSE cost_usd END AS cost,
    CASE WHEN notask THEN NULL ELSE CAST({tokens} AS BIGINT) END AS tokens, calls FROM a
)
SELECT ttype, COUNT(CASE WHEN NOT notask THEN 1 END), COUNT(cost), CAST(SUM(calls) AS BIGINT),
  QUANTILE_DISC(cost, 0.5), QUANTILE_DISC(cost, 0.95), MAX(cost), SUM(total),
  QUANTILE_DISC(tokens, 0.5), QUANTILE_DISC(tokens, 0.95),
  COUNT(CASE WHEN outcome = 'success' THEN 1 END),
  COUNT(CASE WHEN outcome = 'failure' THEN 1 END),
  COUNT(CASE WHEN outcome = 'partial' THEN 1 END),
  SUM(CASE WHEN outcome = 'failure' THEN cost END),
  SUM(CASE WHEN outcome = 'success' THEN cost END),
  COUNT(CASE WHEN outcome = 'blocked' THEN 1 END)
FROM b GROUP BY ttype"""


def _type_stats(rows: list[tuple[Any, ...]]) -> tuple[TypeStats, ...]:
    out = []
    for (name, n, priced, calls, p50, p95, maxc, cost, t50, t95, ok, bad, part, fail_c,
         ok_c, blocked) in sorted(rows, key=lambda r: r[0]):
        out.append(TypeStats(
            task_type=name, tasks=int(n), priced_tasks=int(priced), calls=int(calls or 0),
            p50_cost_usd=p50, p95_cost_usd=p95, max_cost_usd=maxc, cost_usd=cost,
            p50_tokens=t50, p95_tokens=t95,
            successes=int(ok), failures=int(bad), partials=int(part),
            failed_cost_usd=fail_c, success_cost_usd=ok_c, blocked=int(blocked),
        ))
    return tuple(out)


_TOTAL_SUMS = ("calls", "tasks", "input_tokens", "cache_read_tokens", "cache_write_5m_tokens",
               "cache_write_1h_tokens", "output_tokens", "reasoning_tokens", "unpriced_calls",
               "wasted_write_tokens", "error_calls", "success_tasks", "failure_tasks",
               "partial_tasks", "blocked_tasks", "cost_usd", "failed_cost_usd", "tool_fees_usd",
               "unpriced_fee_calls")


def _total_sql(source: str) -> str:
    return ("SELECT " + ", ".join(f"SUM({n})" for n in _TOTAL_SUMS)
            + f", MIN(first_ts), MAX(last_ts), COUNT(*) FROM {source}")


def _total_row(row: tuple[Any, ...]) -> GroupRow | None:
    if not row[-1]:  # no task
        return None
    d: dict[str, Any] = {"key": "total", **dict(zip(_TOTAL_SUMS, row, strict=False))}
    d["first_ts"], d["last_ts"] = row[-3], row[-2]
    return _group_row(d)


def _total_from_tasks(table: Any) -> GroupRow | None:
    """The total row of a per-task report, summed from its table (no second scan)."""
    if table.num_rows == 0:
        return None
    return _total_row(_local(table, _total_sql("t"))[0])


def _task_report_in_engine(engine: Any, f: Filters, wasted: bool, with_total: bool,
                           with_types: bool, limit: int, detail: tuple[str, ...] = ()
                           ) -> tuple[Rows, int, GroupRow | None, tuple[TypeStats, ...]]:
    """``--by task`` on DuckDB when only the first ``limit`` rows are wanted (the
    terminal table): the per-task rows stay in a temporary table; the total and the
    per-type stats are computed there; only ``limit`` rows reach Python (no pyarrow)."""
    con = engine.source.con
    con.execute("CREATE OR REPLACE TEMP TABLE _ctxb_tasks AS SELECT * FROM ("
                + group_sql("task", f, engine.dialect, wasted=wasted, detail=detail) + ") AS r")
    try:
        top = engine.query(f"SELECT * FROM _ctxb_tasks ORDER BY {_order('task')} LIMIT {limit}")
        row = engine.query(_total_sql("_ctxb_tasks")).rows[0]
        total = _total_row(row) if with_total else None
        types = _type_stats(engine.query(_type_stats_sql(
            list(top.columns), "_ctxb_tasks")).rows) if with_types else ()
        return top, int(row[-1]), total, types
    finally:
        con.execute("DROP TABLE IF EXISTS _ctxb_tasks")


def _order(by: str) -> str:
    if by == "day":
        return "key"
    return "cost_usd DESC NULLS LAST, key"


def compute_report(
    engine: Engine,
    by: str = "task",
    filters: Filters | None = None,
    book: PriceBook | None = None,
    *,
    with_types: bool = True,
    with_total: bool = True,
    wasted: bool = True,
    source: str = "",
    rows_limit: int | None = None,
) -> Report:
    """Price the data and compute the ``by`` rows, the total and the per-type stats.

    ``wasted=False`` skips the wasted-cache-write column (one more pass over the calls
    and a window over their 5-minute read buckets); it is then 0. ``rows_limit``:
    only the first rows are needed (a terminal table); ``--by task`` on DuckDB then
    keeps the others in the engine (``len(report)`` still counts them).
    """
    if by not in DIMENSIONS:
        from ..errors import UsageError

        raise UsageError(f"--by {by!r}: expected one of {', '.join(DIMENSIONS)}", field="by")
    f = filters or Filters()
    prices = price_data(engine, f, book or default_pricebook())
    total = None
    # DuckDB, by anything but task: a few rows, fetched as tuples (no pyarrow import),
    # the total from the same scan (GROUPING SETS), the per-type stats in the engine
    small = by != "task" and engine.name == "duckdb"
    if by == "task" and engine.name == "duckdb" and rows_limit is not None:
        top, count, total, tstats = _task_report_in_engine(
            engine, f, wasted, with_total, with_types, rows_limit, prices.detail)
        return Report(by=by, table=top, total=total, types=tstats,
                      unpriced_models=_unpriced(engine, f, prices), filters=f,
                      unpriced_fees=unpriced_fees(engine, f, prices),
                      usage_missing_calls=usage_missing_calls(engine, f),
                      engine=engine.name, source=source, count=count)
    if small:
        q = group_sql(by, f, engine.dialect, wasted=wasted, with_total=with_total,
                      detail=prices.detail)
        res = engine.query(f"SELECT * FROM ({q}) AS r ORDER BY {_order(by)}")
        if with_total:
            cols = res.columns[1:]
            total = next((_group_row(dict(zip(cols, r[1:], strict=True)))
                          for r in res.rows if r[0] == 1 and r[cols.index("calls") + 1]), None)
            res = Rows(cols, [r[1:] for r in res.rows if r[0] == 0])
        table: Any = res
    else:
        q = group_sql(by, f, engine.dialect, wasted=wasted, detail=prices.detail)
        table = engine.arrow(f"SELECT * FROM ({q}) AS r ORDER BY {_order(by)}")
    if with_total and not small:
        if by == "task":
            total = _total_from_tasks(table)
        else:
            tot = engine.query(group_sql("all", f, engine.dialect, wasted=wasted,
                                         detail=prices.detail)).dicts()
            total = _group_row(tot[0]) if tot and tot[0]["calls"] else None
    types: tuple[TypeStats, ...] = ()
    if with_types:
        if small:
            names = ["prompt_tokens"]  # task_sql's columns
            types = _type_stats(engine.query(_type_stats_sql(
                names, f"({task_sql(f, engine.dialect, prices.detail, no_task=True)}) AS t"
            )).rows)
        else:
            per_task = table if by == "task" else engine.arrow(
                task_sql(f, engine.dialect, prices.detail, no_task=True))
            types = type_stats_from_tasks(per_task)
    return Report(by=by, table=table, total=total, types=types,
                  unpriced_models=_unpriced(engine, f, prices), filters=f,
                  unpriced_fees=unpriced_fees(engine, f, prices),
                      usage_missing_calls=usage_missing_calls(engine, f), engine=engine.name,
                  source=source)


def compute_two_reports(
    engine: Engine,
    a: str,
    b: str,
    filters: Filters | None = None,
    book: PriceBook | None = None,
    *,
    tasks: Any = None,
    source: str = "",
) -> tuple[Report, Report, list[GroupRow]]:
    """``compute_report(a)``, ``compute_report(b)`` (both with their total) and the rows by
    (``a``, ``b``) (``key`` = ``"A|B"``, ``task_type`` = B), from one scan of the calls
    (:func:`.sql.grouping_sets_sql`) instead of three. ``tasks``: the per-task table
    (``--by task``) when the caller has it: the per-type stats come from it, as
    ``compute_report(..., by="task")`` computes them. The dashboard's snapshot uses this.
    """
    if a not in DIMENSIONS or b not in DIMENSIONS or "task" in (a, b):
        from ..errors import UsageError

        raise UsageError(f"cannot group by {a!r} and {b!r} in one scan")
    f = filters or Filters()
    prices = price_data(engine, f, book or default_pricebook())
    res = engine.query(grouping_sets_sql(a, b, f, engine.dialect, detail=prices.detail))
    cols = res.columns[3:]
    by: dict[int, list[GroupRow]] = {0: [], 1: [], 2: [], 3: []}
    for r in res.rows:
        d = dict(zip(cols, r[3:], strict=True))
        grp = int(r[0])
        d["key"] = {0: f"{r[1]}|{r[2]}", 1: r[1], 2: r[2], 3: "total"}[grp]
        if grp == 0:
            d["task_type"] = r[2]
        if d["calls"]:
            by[grp].append(_group_row(d))
    total = by[3][0] if by[3] else None

    def order(rows: list[GroupRow], dim: str) -> list[GroupRow]:
        if dim == "day":
            return sorted(rows, key=lambda g: g.key)
        return sorted(rows, key=lambda g: (g.cost_usd is None, -(g.cost_usd or 0), g.key))

    unpriced = _unpriced(engine, f, prices)
    fees = unpriced_fees(engine, f, prices)
    types: tuple[TypeStats, ...] = ()
    if "type" in (a, b):
        types = type_stats_from_tasks(tasks if tasks is not None
                                      else engine.arrow(task_sql(f, engine.dialect,
                                                                 prices.detail,
                                                                 no_task=True)))
    reports = []
    for grp, dim in ((1, a), (2, b)):
        rows = order(by[grp], dim)
        names = ("key", *cols)
        table = Rows(names, [tuple(getattr(g, c) for c in names) for g in rows])
        rep = Report(by=dim, table=table, total=total, types=types if dim == "type" else (),
                     unpriced_models=unpriced, filters=f, engine=engine.name, source=source,
                     unpriced_fees=fees, usage_missing_calls=usage_missing_calls(engine, f))
        rep._cache["rows"] = tuple(rows)
        reports.append(rep)
    return reports[0], reports[1], sorted(by[0], key=lambda g: g.key)


def usage_missing_calls(engine: Engine, f: Filters) -> int:
    """Calls in range whose usage the provider did not report (``meta.usage_missing``)."""
    # LIKE, not a JSON function: the same text on DuckDB and Spark (meta is JSON text
    # written with or without a space after the colon)
    q = ("SELECT COUNT(*) FROM calls WHERE meta IS NOT NULL AND (meta LIKE "
         "'%\"usage_missing\": true%' OR meta LIKE '%\"usage_missing\":true%') "
         f"AND {f.where()}")
    return int(engine.query(q).rows[0][0] or 0)


def unpriced_fees(engine: Engine, f: Filters, prices: Any) -> tuple[dict[str, Any], ...]:
    """The billed tool requests no rate prices, per (provider, model, tool): one query over
    the calls holding tool counts, only when the data has any (``prices.detail``)."""
    import json

    detail = tuple(d for d in prices.detail if d in TOOL_FEES or d == "other_tool_requests")
    if not detail:
        return ()
    out: list[dict[str, Any]] = []
    tools = [TOOL_FEES[d].removesuffix("_usd") for d in TOOL_FEES if d in detail]
    for row in engine.query(unpriced_fees_sql(f, detail)).rows:
        prov, model, other, *counts = row
        out += [{"provider": prov, "model": model, "tool": t, "requests": int(n)}
                for t, n in zip(tools, counts, strict=True) if n]
        if other:
            names: dict[str, int] = {}
            q = ("SELECT other_tool_requests FROM calls WHERE other_tool_requests IS NOT NULL "
                 f"AND COALESCE(provider, '') = {_lit(prov)} AND COALESCE(model, '') = "
                 f"{_lit(model)} AND {f.where()}")
            for (text,) in engine.query(q).rows:
                for k, v in json.loads(text).items():
                    names[k] = names.get(k, 0) + int(v)
            out.append({"provider": prov, "model": model, "tool": "other",
                        "calls": int(other), "names": names})
    return tuple(out)


def _unpriced(engine: Engine, f: Filters, prices: Any) -> tuple[dict[str, Any], ...]:
    unpriced: list[dict[str, Any]] = []
    for prov, model, why in prices.unpriced:
        q = (f"SELECT COUNT(*) AS n FROM calls WHERE COALESCE(provider, '') = "
             f"{_lit(prov)} AND COALESCE(model, '') = {_lit(model)} AND {f.where()}")
        unpriced.append({"provider": prov, "model": model,
                         "calls": int(engine.query(q).rows[0][0]), "reason": why})
    return tuple(unpriced)


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"
