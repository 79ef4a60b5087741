"""Per-task metrics: ``report --by task|type|model|day|session``.

Every figure is computed by the SQL in :mod:`.sql` (sums, counts, percentiles) and
every ratio here from those sums, so DuckDB and Spark agree exactly. Column formulas
are listed in ``docs/metrics.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ..prices import PriceBook, default_pricebook
from .engine import Engine, Rows, price_data
from .sql import DIMENSIONS, Filters, group_sql, grouping_sets_sql, task_sql

__all__ = ["GroupRow", "Report", "TypeStats", "compute_report", "compute_two_reports",
           "percentile", "ratio", "type_stats_from_tasks"]


def ratio(num: int | Decimal | None, den: int | Decimal | None) -> float | None:
    """num / den as a float, ``None`` when either is unknown or den is 0."""
    if num is None or den is None or den == 0:
        return None
    return float(num) / float(den)


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupRow:
    """Sums over the calls of one ``--by`` key (see docs/metrics.md for each column)."""

    key: str
    calls: int
    tasks: int
    input_tokens: int
    cache_read_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal | None
    """Sum over priced calls, each priced at its own UTC day; NULL when none is priced."""
    unpriced_calls: int
    wasted_write_tokens: int
    error_calls: int
    first_ts: datetime | None
    last_ts: datetime | None
    failed_cost_usd: Decimal | None
    success_tasks: int
    failure_tasks: int
    partial_tasks: int
    blocked_tasks: int = 0
    """Tasks a budget cap blocked (outcome ``blocked``)."""
    task_type: str | None = None
    outcome: str | None = None
    blocked_by: dict[str, Any] | None = None
    """``--by task``, outcome ``blocked``: the cap that blocked the task (``cap``,
    ``limit``, ``task_id`` of the capped task, ``phase``)."""

    @property
    def prompt_tokens(self) -> int:
        return (self.input_tokens + self.cache_read_tokens + self.cache_write_5m_tokens
                + self.cache_write_1h_tokens)

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def cache_hit_rate(self) -> float | None:
        """cache_read / prompt (token-weighted)."""
        return ratio(self.cache_read_tokens, self.prompt_tokens)

    @property
    def write_read_ratio(self) -> float | None:
        """(cache write 5m + 1h) / cache read."""
        return ratio(self.cache_write_tokens, self.cache_read_tokens)

    @property
    def wasted_write_share(self) -> float | None:
        """wasted cache-write tokens / cache-write tokens."""
        return ratio(self.wasted_write_tokens, self.cache_write_tokens)

    @property
    def output_input_ratio(self) -> float | None:
        """output / prompt tokens."""
        return ratio(self.output_tokens, self.prompt_tokens)

    @property
    def duration_s(self) -> float | None:
        """Seconds from the first to the last call start."""
        if self.first_ts is None or self.last_ts is None:
            return None
        return (self.last_ts - self.first_ts).total_seconds()

    @property
    def cost_per_task_usd(self) -> Decimal | None:
        return None if self.cost_usd is None or not self.tasks else self.cost_usd / self.tasks

    @property
    def cost_per_success_usd(self) -> Decimal | None:
        """Total spend / successful tasks (failures' spend included: they are the price)."""
        if self.cost_usd is None or not self.success_tasks:
            return None
        return self.cost_usd / self.success_tasks

    @property
    def failed_spend_share(self) -> float | None:
        return ratio(self.failed_cost_usd or Decimal(0), self.cost_usd)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "key": self.key, "calls": self.calls, "tasks": self.tasks,
            "input_tokens": self.input_tokens, "cache_read_tokens": self.cache_read_tokens,
            "cache_write_5m_tokens": self.cache_write_5m_tokens,
            "cache_write_1h_tokens": self.cache_write_1h_tokens,
            "output_tokens": self.output_tokens, "reasoning_tokens": self.reasoning_tokens,
            "prompt_tokens": self.prompt_tokens,
            "total_tokens": self.prompt_tokens + self.output_tokens,
            "cost_usd": self.cost_usd, "unpriced_calls": self.unpriced_calls,
            "cache_hit_rate": self.cache_hit_rate, "write_read_ratio": self.write_read_ratio,
            "wasted_write_tokens": self.wasted_write_tokens,
            "wasted_write_share": self.wasted_write_share,
            "output_input_ratio": self.output_input_ratio,
            "error_calls": self.error_calls,
            "first_ts": self.first_ts, "last_ts": self.last_ts, "duration_s": self.duration_s,
            "success_tasks": self.success_tasks, "failure_tasks": self.failure_tasks,
            "partial_tasks": self.partial_tasks, "blocked_tasks": self.blocked_tasks,
            "failed_cost_usd": self.failed_cost_usd,
            "failed_spend_share": self.failed_spend_share,
            "cost_per_task_usd": self.cost_per_task_usd,
            "cost_per_success_usd": self.cost_per_success_usd,
        }
        if self.task_type is not None or self.outcome is not None:
            d["task_type"] = self.task_type
            d["outcome"] = self.outcome
        if self.blocked_by is not None:
            d["blocked_by"] = self.blocked_by
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class TypeStats:
    """Cost per task by task type (percentiles are nearest-rank over priced tasks)."""

    task_type: str
    tasks: int
    priced_tasks: int
    calls: int
    p50_cost_usd: Decimal | None
    p95_cost_usd: Decimal | None
    max_cost_usd: Decimal | None
    cost_usd: Decimal | None
    p50_tokens: int | None
    p95_tokens: int | None
    successes: int
    failures: int
    partials: int
    failed_cost_usd: Decimal | None
    success_cost_usd: Decimal | None
    blocked: int = 0
    """Tasks a budget cap blocked (outcome ``blocked``)."""

    @property
    def failed_spend_share(self) -> float | None:
        return ratio(self.failed_cost_usd or Decimal(0), self.cost_usd)

    @property
    def cost_per_success_usd(self) -> Decimal | None:
        if self.cost_usd is None or not self.successes:
            return None
        return self.cost_usd / self.successes

    def as_dict(self) -> dict[str, Any]:
        return {
            "task_type": self.task_type, "tasks": self.tasks, "priced_tasks": self.priced_tasks,
            "calls": self.calls, "p50_cost_usd": self.p50_cost_usd,
            "p95_cost_usd": self.p95_cost_usd, "max_cost_usd": self.max_cost_usd,
            "cost_usd": self.cost_usd, "p50_tokens": self.p50_tokens,
            "p95_tokens": self.p95_tokens, "successes": self.successes,
            "failures": self.failures, "partials": self.partials, "blocked": self.blocked,
            "failed_cost_usd": self.failed_cost_usd,
            "failed_spend_share": self.failed_spend_share,
            "cost_per_success_usd": self.cost_per_success_usd,
        }


@dataclass(frozen=True, kw_only=True)
class Report:
    """The result of ``report --by BY``: rows, the total row, per-type stats, unpriced models.

    The rows live in ``table`` (a pyarrow Table sorted by cost, descending — by day:
    by date) and become :class:`GroupRow` objects only when read (``rows``, ``top``),
    so a report over a million tasks costs no Python object per task until printed.
    """

    by: str
    table: Any
    total: GroupRow | None
    types: tuple[TypeStats, ...]
    unpriced_models: tuple[dict[str, Any], ...]
    """``{"provider", "model", "calls", "reason"}`` for every model without a price."""
    filters: Filters
    engine: str
    source: str
    usage_missing_calls: int = 0
    """Calls recorded without usage from the provider (``meta.usage_missing``: an OpenAI
    stream without ``include_usage``, a stream cut before its usage): their tokens are
    the tracker's reservation estimate, or 0 when it made none - never a silent $0."""
    count: int | None = None
    """All rows of the report when ``table`` holds only the first ones
    (``compute_report(..., rows_limit=N)``); ``None`` when it holds them all."""
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.table.num_rows) if self.count is None else self.count

    def top(self, n: int | None) -> tuple[GroupRow, ...]:
        """The first ``n`` rows (all when ``n`` is None)."""
        if n is None or n >= int(self.table.num_rows):
            return self.rows
        return tuple(_group_row(d) for d in _pylist(self.table.slice(0, n)))

    @property
    def rows(self) -> tuple[GroupRow, ...]:
        """Every row, or only the first ones when the report was computed with a
        ``rows_limit`` (``len(report)`` still counts them all)."""
        if "rows" not in self._cache:
            self._cache["rows"] = tuple(_group_row(d) for d in _pylist(self.table))
        rows: tuple[GroupRow, ...] = self._cache["rows"]
        return rows

    def as_dict(self) -> dict[str, Any]:
        f = self.filters
        return {
            "by": self.by, "engine": self.engine, "source": self.source,
            "since": f.since, "until": f.until, "tz": f.tz,
            "rows": [r.as_dict() for r in self.rows],
            "total": self.total.as_dict() if self.total else None,
            "types": [t.as_dict() for t in self.types],
            "unpriced_models": list(self.unpriced_models),
            "usage_missing_calls": self.usage_missing_calls,
        }


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _pylist(table: Any) -> list[dict[str, Any]]:
    """``table.to_pylist()``, except timestamps: pyarrow imports pandas (~0.3 s) to turn a
    timestamp into a datetime, so they are read as integers and converted here (UTC)."""
    if isinstance(table, Rows):
        return table.dicts()
    import pyarrow as pa

    cols: dict[str, list[Any]] = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        if not pa.types.is_timestamp(col.type):
            cols[name] = col.to_pylist()
            continue
        per_s = _PER_SECOND[col.type.unit]
        vals: list[Any] = []
        for ch in col.chunks:
            ints = pa.Array.from_buffers(pa.int64(), len(ch), ch.buffers(),
                                         null_count=ch.null_count, offset=ch.offset)
            vals += [None if v is None else _EPOCH + timedelta(seconds=v // per_s,
                                                               microseconds=(v % per_s)
                                                               * 1_000_000 // per_s)
                     for v in ints.to_pylist()]
        cols[name] = vals
    names = list(cols)
    return [dict(zip(names, row, strict=True)) for row in zip(*cols.values(), strict=True)]


def _group_row(d: dict[str, Any]) -> GroupRow:
    ints = ("calls", "tasks", "input_tokens", "cache_read_tokens", "cache_write_5m_tokens",
            "cache_write_1h_tokens", "output_tokens", "reasoning_tokens", "unpriced_calls",
            "wasted_write_tokens", "error_calls", "success_tasks", "failure_tasks",
            "partial_tasks", "blocked_tasks")
    kw = {k: int(d.get(k) or 0) for k in ints}
    return GroupRow(
        key=str(d["key"]), **kw, cost_usd=_dec(d["cost_usd"]), first_ts=_utc(d["first_ts"]),
        last_ts=_utc(d["last_ts"]),
        failed_cost_usd=_dec(d["failed_cost_usd"]), task_type=d.get("task_type"),
        outcome=d.get("outcome"), blocked_by=_blocked_by(d.get("blocked_by")),
    )


def _blocked_by(v: Any) -> dict[str, Any] | None:
    """The tasks table's ``blocked_by`` (JSON text) as a dict; ``None`` when absent."""
    if v is None or isinstance(v, dict):
        return v
    import json

    try:
        out = json.loads(v)
    except ValueError:
        return {"cap": str(v)}
    return out if isinstance(out, dict) else {"cap": str(v)}


def _utc(v: datetime | None) -> datetime | None:
    """Engines return aware (DuckDB) or naive UTC (Spark session in UTC) timestamps."""
    if v is None:
        return None
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def _dec(v: Any) -> Decimal | None:
    if v is None:
        return None
    return v if isinstance(v, Decimal) else Decimal(str(v))


def percentile(values: list[Any], q: float) -> Any:
    """Nearest-rank percentile: sorted(values)[ceil(q * n) - 1]; None for no values."""
    v = sorted(values)
    return v[max(0, math.ceil(q * len(v)) - 1)] if v else None


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
    """The per-type stats query over a per-task relation ``source`` with columns ``names``."""
    if "prompt_tokens" in names:
        tokens = "prompt_tokens + output_tokens"
    else:
        tokens = ("input_tokens + cache_read_tokens + cache_write_5m_tokens "
                  "+ cache_write_1h_tokens + output_tokens")
    return f"""
WITH b AS (
  SELECT COALESCE(task_type, '(none)') AS ttype, COALESCE(outcome, '') AS outcome,
    cost_usd AS cost, CAST({tokens} AS BIGINT) AS tokens, calls FROM {source}
)
SELECT ttype, COUNT(*), COUNT(cost), CAST(SUM(calls) AS BIGINT),
  QUANTILE_DISC(cost, 0.5), QUANTILE_DISC(cost, 0.95), MAX(cost), SUM(cost),
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
               "partial_tasks", "blocked_tasks", "cost_usd", "failed_cost_usd")


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
                           with_types: bool, limit: int) -> tuple[Rows, int, GroupRow | None,
                                                                  tuple[TypeStats, ...]]:
    """``--by task`` on DuckDB when only the first ``limit`` rows are wanted (the
    terminal table): the per-task rows stay in a temporary table; the total and the
    per-type stats are computed there; only ``limit`` rows reach Python (no pyarrow)."""
    con = engine.source.con
    con.execute("CREATE OR REPLACE TEMP TABLE _ctxb_tasks AS SELECT * FROM ("
                + group_sql("task", f, engine.dialect, wasted=wasted) + ") AS r")
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
            engine, f, wasted, with_total, with_types, rows_limit)
        return Report(by=by, table=top, total=total, types=tstats,
                      unpriced_models=_unpriced(engine, f, prices), filters=f,
                      usage_missing_calls=usage_missing_calls(engine, f),
                      engine=engine.name, source=source, count=count)
    if small:
        q = group_sql(by, f, engine.dialect, wasted=wasted, with_total=with_total)
        res = engine.query(f"SELECT * FROM ({q}) AS r ORDER BY {_order(by)}")
        if with_total:
            cols = res.columns[1:]
            total = next((_group_row(dict(zip(cols, r[1:], strict=True)))
                          for r in res.rows if r[0] == 1 and r[cols.index("calls") + 1]), None)
            res = Rows(cols, [r[1:] for r in res.rows if r[0] == 0])
        table: Any = res
    else:
        table = engine.arrow(f"SELECT * FROM ({group_sql(by, f, engine.dialect, wasted=wasted)}) "
                             f"AS r ORDER BY {_order(by)}")
    if with_total and not small:
        if by == "task":
            total = _total_from_tasks(table)
        else:
            tot = engine.query(group_sql("all", f, engine.dialect, wasted=wasted)).dicts()
            total = _group_row(tot[0]) if tot and tot[0]["calls"] else None
    types: tuple[TypeStats, ...] = ()
    if with_types:
        if small:
            names = ["prompt_tokens"]  # task_sql's columns
            types = _type_stats(engine.query(_type_stats_sql(
                names, f"({task_sql(f, engine.dialect)}) AS t")).rows)
        else:
            per_task = table if by == "task" else engine.arrow(task_sql(f, engine.dialect))
            types = type_stats_from_tasks(per_task)
    return Report(by=by, table=table, total=total, types=types,
                  unpriced_models=_unpriced(engine, f, prices), filters=f,
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
    res = engine.query(grouping_sets_sql(a, b, f, engine.dialect))
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
    types: tuple[TypeStats, ...] = ()
    if "type" in (a, b):
        types = type_stats_from_tasks(tasks if tasks is not None
                                      else engine.arrow(task_sql(f, engine.dialect)))
    reports = []
    for grp, dim in ((1, a), (2, b)):
        rows = order(by[grp], dim)
        names = ("key", *cols)
        table = Rows(names, [tuple(getattr(g, c) for c in names) for g in rows])
        rep = Report(by=dim, table=table, total=total, types=types if dim == "type" else (),
                     unpriced_models=unpriced, filters=f, engine=engine.name, source=source,
                     usage_missing_calls=usage_missing_calls(engine, f))
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
