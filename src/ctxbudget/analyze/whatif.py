"""What-if replay: re-shape and re-price stored calls under another policy.

Every call of the store (or a Parquet file written by ``ctxbudget simulate``) is
re-shaped by the scenario, then both the original and the re-shaped usage are
priced with the same :class:`~ctxbudget.prices.PriceBook` and
:func:`~ctxbudget.prices.cost_of` (requests grouped by provider, model, service
tier, UTC day and context-length tier band, so each group is one exact Decimal
``cost_of``). Levers, each with the assumption it makes (also listed in the
result):

* ``model_map`` {task type: model}: same usage buckets, another model's prices.
  Token counts are *not* re-tokenized for the new model.
* ``caching="off"``: cache reads and writes are billed as uncached input.
* ``caching="on"``: calls with no cache activity get their fixed cacheable
  components (``system_prompt``, ``tools``, ``safety``, ``persistent_docs`` from
  the call's ``components``) written on the first call of a session and read on
  later calls within the TTL; calls without components are left as they are.
* ``ttl``: 5m -> 1h moves a session's re-written prefix to cache reads when the
  gap since the previous call is over 5 minutes but within 1 hour (at most that
  previous call's cached tokens), and bills writes at the 1h rate; 1h -> 5m does the
  reverse for gaps over 5 minutes.
* ``history_window`` N turns: a call at turn t keeps ``N / (t - 1)`` of its
  ``history`` component (turns taken as equal-sized); removed tokens come off
  uncached input first, then cache reads. The cache effect of a sliding front
  (the prefix moving every turn) is not modeled.
* ``retrieval_k`` K (from ``current_k``): the ``retrieved`` component scales by
  K / current_k, taken from / added to uncached input first.

Quality is never assessed: a cheaper model, a shorter window or fewer chunks may
answer worse, and the result says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from ..errors import InputFormatError, PricingError
from ..prices import Price, PriceBook, cost_of
from ..usage import Usage

__all__ = ["FIXED_CACHEABLE", "Scenario", "TypeCost", "WhatIfResult", "whatif"]

#: Components of a call's ``components`` that are the fixed, cacheable prefix.
FIXED_CACHEABLE: tuple[str, ...] = ("system_prompt", "tools", "safety", "persistent_docs")

QUALITY_NOTE = ("Quality is not assessed: a cheaper model, a shorter history window or fewer "
                "retrieved chunks can change answers; validate on your own evaluation set.")

_BUCKETS = ("input_tokens", "cache_read_tokens", "cache_write_5m_tokens",
            "cache_write_1h_tokens", "output_tokens")


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """The levers of one what-if (``None``: unchanged)."""

    model_map: Mapping[str, str] = field(default_factory=dict)
    """task type -> model (``*`` for every type)."""
    ttl: str | None = None
    """``5m`` or ``1h``: the TTL the calls would use."""
    history_window: int | None = None
    retrieval_k: int | None = None
    current_k: int | None = None
    caching: str | None = None
    """``on`` or ``off``."""

    def assumptions(self) -> list[str]:
        out = []
        if self.model_map:
            out.append("model map: same token counts and buckets re-priced at the new model's "
                       "rates (no re-tokenization; output length assumed unchanged)")
        if self.caching == "off":
            out.append("caching off: cache reads and writes billed as uncached input")
        if self.caching == "on":
            out.append("caching on: fixed components (" + ", ".join(FIXED_CACHEABLE) +
                       ") written on a session's first call, read on later calls within the "
                       "TTL; calls without recorded components unchanged")
        if self.ttl:
            out.append(f"TTL {self.ttl}: prefixes re-written after a 5 min - 1 h gap become "
                       "reads (1h) or reads after such a gap become writes (5m); writes billed "
                       f"at the {self.ttl} rate")
        if self.history_window is not None:
            out.append(f"history window {self.history_window} turns: history tokens per "
                       "turn taken as equal; removed from uncached input first, then cache "
                       "reads; cache effect of the moving window not modeled")
        if self.retrieval_k is not None:
            out.append(f"retrieval k {self.current_k} -> {self.retrieval_k}: retrieved tokens "
                       "scale linearly; the change is applied to uncached input")
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class TypeCost:
    """Before / after for one task type (``None`` cost: some call unpriced)."""

    task_type: str
    calls: int
    tasks: int
    before_usd: Decimal | None
    after_usd: Decimal | None
    before: Usage
    after: Usage
    models_before: tuple[str, ...]
    models_after: tuple[str, ...]

    @property
    def delta_usd(self) -> Decimal | None:
        if self.before_usd is None or self.after_usd is None:
            return None
        return self.after_usd - self.before_usd

    def per_task(self, usd: Decimal | None) -> Decimal | None:
        return None if usd is None or not self.tasks else usd / self.tasks

    def as_dict(self) -> dict[str, Any]:
        def s(v: Decimal | None) -> str | None:
            return None if v is None else str(v)

        return {
            "task_type": self.task_type, "calls": self.calls, "tasks": self.tasks,
            "before_usd": s(self.before_usd), "after_usd": s(self.after_usd),
            "delta_usd": s(self.delta_usd),
            "before_per_task_usd": s(self.per_task(self.before_usd)),
            "after_per_task_usd": s(self.per_task(self.after_usd)),
            "models_before": list(self.models_before), "models_after": list(self.models_after),
            "before_tokens": self.before.as_dict(), "after_tokens": self.after.as_dict(),
        }


def _total(vals: list[Decimal | None]) -> Decimal | None:
    total = Decimal(0)
    for v in vals:
        if v is None:
            return None
        total += v
    return total


@dataclass(frozen=True, slots=True, kw_only=True)
class WhatIfResult:
    scenario: Scenario
    types: tuple[TypeCost, ...]
    source: str
    unpriced: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def before_usd(self) -> Decimal | None:
        return _total([t.before_usd for t in self.types])

    @property
    def after_usd(self) -> Decimal | None:
        return _total([t.after_usd for t in self.types])

    def as_dict(self) -> dict[str, Any]:
        b, a = self.before_usd, self.after_usd
        return {
            "source": self.source,
            "scenario": {"model_map": dict(self.scenario.model_map), "ttl": self.scenario.ttl,
                         "history_window": self.scenario.history_window,
                         "retrieval_k": self.scenario.retrieval_k,
                         "current_k": self.scenario.current_k,
                         "caching": self.scenario.caching},
            "types": [t.as_dict() for t in self.types],
            "before_usd": None if b is None else str(b),
            "after_usd": None if a is None else str(a),
            "assumptions": self.scenario.assumptions(),
            "quality": QUALITY_NOTE,
            "unpriced": list(self.unpriced),
            "notes": list(self.notes),
        }


_COMPONENT_COLS = ("history", "retrieved", *FIXED_CACHEABLE)


def _load(con: Any) -> dict[str, Any]:
    comp_sql = ", ".join(
        f"COALESCE(TRY_CAST(json_extract_string(components, '$.{c}') AS BIGINT), -1) AS c_{c}"
        for c in _COMPONENT_COLS)
    sql = (
        "SELECT coalesce(task_type, '(none)') AS task_type, coalesce(task_id, call_key) AS "
        "task_id, coalesce(session_id, task_id, call_key) AS session_id, provider, model, "
        "coalesce(service_tier, '') AS service_tier, epoch_us(ts) AS ts_us, "
        "coalesce(turn, 0) AS turn, components IS NOT NULL AS has_components, "
        + ", ".join(f"coalesce({b}, 0) AS {b}" for b in _BUCKETS) + f", {comp_sql} "
        "FROM calls ORDER BY session_id, ts, call_key")
    tb = con.sql(sql).to_arrow_table()
    import pyarrow as pa

    out: dict[str, Any] = {}
    for name in tb.column_names:
        col = tb.column(name).combine_chunks()
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            enc = col.dictionary_encode()  # integer codes: no pandas, no string sorting
            out[name] = np.asarray(enc.indices.fill_null(0).to_numpy(), dtype=np.int64)
            out[name + "@"] = [str(x) for x in (enc.dictionary.to_pylist() or [""])]
        else:
            out[name] = np.asarray(col.to_numpy(zero_copy_only=False))
    return out


def _take(amount: Any, *pools: Any) -> None:
    """Subtract ``amount`` (>= 0) from ``pools`` in order, in place, never below zero."""
    left = amount.copy()
    for p in pools:
        t = np.minimum(left, p)
        p -= t
        left -= t


def _reshape(d: dict[str, Any], sc: Scenario) -> dict[str, Any]:
    """The re-shaped bucket arrays (copies) for scenario ``sc``."""
    u = {b: d[b].astype(np.int64).copy() for b in _BUCKETS}
    n = len(u["input_tokens"])
    sess = d["session_id"]
    ts = d["ts_us"].astype(np.int64)
    first = np.ones(n, dtype=bool)
    if n > 1:
        first[1:] = sess[1:] != sess[:-1]
    gap_s = np.full(n, np.inf)
    if n > 1:
        gap_s[1:] = np.where(first[1:], np.inf, (ts[1:] - ts[:-1]) / 1e6)
    if sc.history_window is not None:
        hist = d["c_history"]
        turn = d["turn"].astype(np.int64)
        ok = (hist > 0) & (turn > sc.history_window + 1)
        keep = np.where(ok, np.rint(hist * sc.history_window / np.maximum(turn - 1, 1)), hist)
        delta = np.where(ok, hist - keep, 0).astype(np.int64)
        _take(delta, u["input_tokens"], u["cache_read_tokens"])
    if sc.retrieval_k is not None:
        if not sc.current_k:
            raise InputFormatError("--retrieval-k needs --current-k (the k the logs used)")
        ret = d["c_retrieved"]
        has = ret >= 0
        new = np.where(has, np.rint(ret * sc.retrieval_k / sc.current_k), ret)
        delta = np.where(has, ret - new, 0).astype(np.int64)
        _take(np.maximum(delta, 0), u["input_tokens"], u["cache_read_tokens"])
        u["input_tokens"] += np.maximum(-delta, 0)
    if sc.caching == "off":
        for b in ("cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens"):
            u["input_tokens"] += u[b]
            u[b][:] = 0
    if sc.caching == "on":
        fixed = np.zeros(n, dtype=np.int64)
        for c in FIXED_CACHEABLE:
            fixed += np.maximum(d[f"c_{c}"], 0)
        idle = (u["cache_read_tokens"] + u["cache_write_5m_tokens"]
                + u["cache_write_1h_tokens"]) == 0
        ttl_s = 3600.0 if sc.ttl == "1h" else 300.0
        amount = np.where(idle, np.minimum(fixed, u["input_tokens"]), 0)
        reads = amount * ((~first) & (gap_s <= ttl_s))
        writes = amount - reads
        u["input_tokens"] -= amount
        u["cache_read_tokens"] += reads
        u["cache_write_1h_tokens" if sc.ttl == "1h" else "cache_write_5m_tokens"] += writes
    if sc.ttl in ("5m", "1h") and sc.caching != "off":
        prev_cached = np.zeros(n, dtype=np.int64)
        if n > 1:
            prev_cached[1:] = (u["cache_read_tokens"][:-1] + u["cache_write_5m_tokens"][:-1]
                               + u["cache_write_1h_tokens"][:-1])
        mid = (gap_s > 300) & (gap_s <= 3600)
        if sc.ttl == "1h":
            writes = u["cache_write_5m_tokens"] + u["cache_write_1h_tokens"]
            back = np.where(mid, np.minimum(writes, prev_cached), 0)
            _take(back, u["cache_write_5m_tokens"], u["cache_write_1h_tokens"])
            u["cache_read_tokens"] += back
            u["cache_write_1h_tokens"] += u["cache_write_5m_tokens"]
            u["cache_write_5m_tokens"][:] = 0
        else:
            expired = np.where(mid, u["cache_read_tokens"], 0)
            u["cache_read_tokens"] -= expired
            u["cache_write_5m_tokens"] += expired + u["cache_write_1h_tokens"]
            u["cache_write_1h_tokens"][:] = 0
    return u


def _price_groups(book: PriceBook, cols: Sequence[tuple[Any, Sequence[str]]], ttype: Any,
                  u: Mapping[str, Any], unpriced: set[str]
                  ) -> tuple[dict[int, Decimal | None], dict[int, Usage]]:
    """Cost and usage per task-type code (exact: one cost_of per group of equal rates).

    ``cols`` are (codes, labels) for provider, model, service tier and UTC day.
    """
    prompt = (u["input_tokens"] + u["cache_read_tokens"] + u["cache_write_5m_tokens"]
              + u["cache_write_1h_tokens"])
    key = np.ravel_multi_index(tuple(c for c, _ in cols),
                               tuple(max(len(lab), 1) for _, lab in cols))
    cost: dict[int, Decimal | None] = {}
    usage: dict[int, Usage] = {}
    order = np.argsort(key, kind="stable")
    sk = key[order]
    cuts = np.flatnonzero(np.diff(sk)) + 1
    for gidx in np.split(order, cuts):
        first = int(gidx[0])
        prov, mod, st, dy = (lab[int(c[first])] for c, lab in cols)
        try:
            price: Price | None = book.resolve(mod, prov or None,
                                               datetime.fromisoformat(dy).replace(tzinfo=UTC),
                                               st or None)
        except PricingError:
            price = None
            unpriced.add(f"{prov}/{mod}")
        bounds = [-1] if price is None else [-1, *(t.above_prompt_tokens for t in price.tiers)]
        band = np.searchsorted(np.asarray(bounds), prompt[gidx], side="left") - 1
        for bi in np.unique(band):
            bidx = gidx[band == bi]
            for t in np.unique(ttype[bidx]).tolist():
                idx = bidx[ttype[bidx] == t]
                us = Usage(**{b: int(u[b][idx].sum()) for b in _BUCKETS})
                usage[t] = usage.get(t, Usage()) + us
                if price is None:
                    cost[t] = None
                    continue
                rates = price.base if bi == 0 else price.tiers[int(bi) - 1].rates
                flat = replace(price, base=rates, tiers=())
                c = cost_of(us, flat, requests=len(idx)).total_usd
                prev = cost.get(t, Decimal(0))
                cost[t] = None if prev is None else prev + c
    return cost, usage


def whatif(con: Any, scenario: Scenario, *, book: PriceBook | None = None,
           source: str = "") -> WhatIfResult:
    """Re-shape and re-price the ``calls`` relation of ``con`` (see the module docstring)."""
    book = book or PriceBook()
    d = _load(con)
    n = len(d["input_tokens"])
    notes: list[str] = []
    if n == 0:
        return WhatIfResult(scenario=scenario, types=(), source=source,
                            notes=("no calls",))
    ttype, tlabels = d["task_type"], d["task_type@"]
    day_num = d["ts_us"].astype(np.int64) // 86_400_000_000
    d0 = int(day_num.min())
    day = (day_num - d0, [str(np.datetime64(d0 + i, "D")) for i in
                          range(int(day_num.max()) - d0 + 1)])
    provider = (d["provider"], list(d["provider@"]))
    tier = (d["service_tier"], d["service_tier@"])
    model = (d["model"], list(d["model@"]))
    new_model = (model[0].copy(), list(model[1]))
    new_provider = (provider[0].copy(), list(provider[1]))
    for t, m in scenario.model_map.items():
        sel = np.ones(n, dtype=bool) if t == "*" else (
            ttype == tlabels.index(t) if t in tlabels else np.zeros(n, dtype=bool))
        if not sel.any():
            notes.append(f"model map: no calls of task type {t!r}")
        price = book.resolve(m)
        for (codes, labels), value in ((new_model, m), (new_provider, price.provider)):
            if value not in labels:
                labels.append(value)
            codes[sel] = labels.index(value)
    if scenario.caching == "on" and not d["has_components"].any():
        notes.append("caching on: no call has recorded components; nothing changed")
    if scenario.history_window is not None and not (d["c_history"] >= 0).any():
        notes.append("history window: no call has a 'history' component; nothing changed")
    after = _reshape(d, scenario)
    before = {b: d[b].astype(np.int64) for b in _BUCKETS}
    unpriced: set[str] = set()
    cb, ub = _price_groups(book, (provider, model, tier, day), ttype, before, unpriced)
    ca, ua = _price_groups(book, (new_provider, new_model, tier, day), ttype, after, unpriced)
    types = []
    for code in sorted(set(np.unique(ttype).tolist()), key=lambda c: tlabels[c]):
        sel = ttype == code
        types.append(TypeCost(
            task_type=tlabels[code], calls=int(sel.sum()),
            tasks=len(np.unique(d["task_id"][sel])),
            before_usd=cb.get(code), after_usd=ca.get(code), before=ub.get(code, Usage()),
            after=ua.get(code, Usage()),
            models_before=tuple(sorted({model[1][c] for c in np.unique(model[0][sel])})),
            models_after=tuple(sorted({new_model[1][c] for c in np.unique(new_model[0][sel])}))))
    return WhatIfResult(scenario=scenario, types=tuple(types), source=source,
                        unpriced=tuple(sorted(unpriced)), notes=tuple(notes))


def parse_model_map(items: list[str] | None) -> dict[str, str]:
    """``["support=claude-haiku-4-5", ...]`` -> {type: model}."""
    out: dict[str, str] = {}
    for it in items or []:
        t, sep, m = it.partition("=")
        if not sep or not t.strip() or not m.strip():
            raise InputFormatError(f"--model-map {it!r}: expected TASK_TYPE=MODEL")
        out[t.strip()] = m.strip()
    return out
