"""The result types of the reports, in a module that imports nothing heavy.

:class:`Report`, :class:`GroupRow`, :class:`TypeStats`, :class:`Rows` and
:class:`Filters` are what the SQL engines (:mod:`.metrics`) and the day summary
(:mod:`.summary`, no DuckDB) both return; the renderers read them. Re-exported by
:mod:`.metrics`, :mod:`.engine` and :mod:`.sql`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

__all__ = ["Filters", "GroupRow", "Report", "Rows", "TypeStats", "percentile", "ratio"]


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

    def where(self, alias: str = "", column: str = "ts") -> str:
        """The ``ts`` bounds as a SQL condition (on ``alias.ts`` when given; ``column``:
        another timestamp column)."""
        ts = f"{alias}.{column}" if alias else column
        parts = ["1 = 1"]
        if self.since is not None:
            parts.append(f"{ts} >= CAST('{_ts(self.since)}' AS TIMESTAMP)")
        if self.until is not None:
            parts.append(f"{ts} < CAST('{_ts(self.until)}' AS TIMESTAMP)")
        return " AND ".join(parts)


def _ts(d: datetime) -> str:
    from datetime import UTC

    if d.tzinfo is not None:
        d = d.astimezone(UTC).replace(tzinfo=None)
    return d.isoformat(sep=" ")


@dataclass(frozen=True, slots=True)
class Rows:
    """Column names and row tuples of one result."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]

    # the few pyarrow Table members a Report reads, so a small result needs no pyarrow
    @property
    def num_rows(self) -> int:
        return len(self.rows)

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    def slice(self, offset: int, length: int) -> Rows:
        return Rows(self.columns, self.rows[offset:offset + length])


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
    """Sum over priced calls, each priced at its own UTC day; NULL when none is priced.
    Includes the priced server-side tool fees (``tool_fees_usd``) and modality rates."""
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
    tool_fees_usd: Decimal = Decimal(0)
    """The server-side tool fees (web search, web fetch...) in ``cost_usd``."""
    unpriced_fee_calls: int = 0
    """Calls with a billed element no rate prices (a tool request without a fee, a
    counter ctxbudget has no field for): their other elements are in ``cost_usd``."""

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
            "tool_fees_usd": self.tool_fees_usd, "unpriced_fee_calls": self.unpriced_fee_calls,
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
    unpriced_fees: tuple[dict[str, Any], ...] = ()
    """``{"provider", "model", "tool", "requests"}`` for every billed server-side tool
    request no rate prices (``tool`` ``other`` with ``calls``: counters ctxbudget has no
    field for, named in ``names``): not in ``cost_usd``, never counted as $0."""
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
            "unpriced_fees": list(self.unpriced_fees),
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
        tool_fees_usd=_dec(d.get("tool_fees_usd")) or Decimal(0),
        unpriced_fee_calls=int(d.get("unpriced_fee_calls") or 0),
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


