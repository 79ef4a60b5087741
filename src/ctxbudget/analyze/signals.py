"""The four warning signals of the seed's "Monitoring per-task token cost".

1. ``rising_cost`` — cost per task rising without rising complexity: per task type,
   each task's cost is normalized by its number of calls (turns); for every
   candidate change day the tasks from that day on (recent window) are compared
   with the tasks before it (baseline window) by a one-sided Mann-Whitney U test.
   The day with the smallest p-value is the reported start; the signal fires only
   when that p-value is below ``alpha / candidate days`` (Bonferroni), both windows
   hold at least ``min_tasks`` tasks, the recent median is above the baseline median,
   and either the increase is at least ``min_increase`` or a context component
   (from the calls' ``components`` ledger) grew by at least ``min_component_increase``
   tokens per call — the evidence names the components that grew.
2. ``low_cache_hit`` — cache reads observed vs cache reads expected on the fixed,
   cacheable prefix. Expected per call: the packer's ``expected_cache_read_tokens``
   when recorded, else — for a call that follows a call of the same session and
   model within the 5-minute TTL — what that previous call read or wrote to the
   cache (capped at this call's prompt). Fires when observed / expected stays below
   ``min_hit_ratio`` over at least ``min_calls`` expecting calls; the start is the
   first day of the final run of days below the threshold.
3. ``failed_task_cost`` — share of spend on failed tasks and mean cost of a failure
   vs a success.
4. ``output_heavy`` — output / prompt tokens above ``max_output_ratio`` (default 3).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from ..prices import PriceBook, default_pricebook
from .engine import Engine, price_data
from .sql import Filters, base_cte, task_sql
from .stats import mann_whitney_greater, median

__all__ = ["COMPONENT_FIXES", "FIXES", "Signal", "SignalConfig", "compute_signals",
           "fix_for_components"]

#: Suggested fixes, from the seed's "Practical optimizations in order of impact".
FIXES: dict[str, str] = {
    "rising_cost": (
        "Something in the context package is growing: diff the system prompt and tool "
        "definitions against the baseline window (tighten the system prompt, minimize the "
        "tool surface per task type), and check that history is summarized or windowed."),
    "low_cache_hit": (
        "Make the cacheable prefix byte-for-byte identical across calls: no timestamps, ids "
        "or string interpolation in the system prompt / tool definitions, stable tool order, "
        "cache breakpoints after the fixed blocks (ctxbudget audit shows which block changed)."),
    "failed_task_cost": (
        "Failures cost as much as successes: stop early (max_calls / max_cost_usd per task), "
        "and review the context of failed tasks for dead ends (irrelevant retrieval, "
        "verbose tool output)."),
    "output_heavy": (
        "The model writes far more than it reads: add explicit output length constraints to "
        "the system prompt and set max_tokens; route simple sub-tasks to a smaller model."),
}


#: The fix for the context component that grew (matched on its name, first match wins).
COMPONENT_FIXES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("retriev", "rag", "chunk", "document_search"), (
        "retrieval grew: lower k or the chunk size, rerank and keep the best chunks, "
        "deduplicate overlapping chunks, set a retrieval token floor/ceiling "
        "(Packer retrieval policy)")),
    (("history", "conversation", "messages"), (
        "history grew: summarize or window it (sliding window / summarize policy), "
        "clear old tool rounds")),
    (("tool_output", "tool_result", "observation"), (
        "tool outputs grew: truncate them head/tail, return fields not whole payloads, "
        "clear old tool results")),
    (("tool", "function", "schema"), (
        "tool definitions grew: minimize the tool surface per task type, shorten "
        "descriptions and schemas")),
    (("system", "safety", "instruction", "docs", "persistent", "prompt"), (
        "the fixed prompt grew: diff the system prompt / persistent docs against the "
        "baseline window and tighten them")),
    (("output", "completion", "answer"), (
        "output grew: add output length constraints and set max_tokens")),
    (("user",), ("user messages grew: cap pasted input, summarize long user content")),
)


def fix_for_components(grown: dict[str, dict[str, float]]) -> str:
    """The suggested fix for the grown components, largest growth in tokens first;
    the generic rising-cost fix when no component is known."""
    if not grown:
        return FIXES["rising_cost"]
    order = sorted(grown, key=lambda k: -(grown[k]["recent_tokens_per_call"]
                                          - grown[k]["baseline_tokens_per_call"]))
    out: list[str] = []
    for name in order:
        key = name.lower()
        fix = next((f for keys, f in COMPONENT_FIXES if any(k in key for k in keys)), None)
        text = f"{name}: " + (fix or "this component grew: find what adds tokens to it")
        if text not in out:
            out.append(text)
    return "; ".join(out) + "."


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalConfig:
    """Thresholds of the four signals (the defaults are documented in docs/metrics.md)."""

    alpha: float = 0.01
    min_tasks: int = 20
    min_increase: float = 0.10
    min_component_increase: float = 0.10
    min_hit_ratio: float = 0.5
    min_calls: int = 30
    max_failed_share: float = 0.25
    max_failure_cost_ratio: float = 1.5
    min_failures: int = 5
    max_output_ratio: float = 3.0
    worst: int = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """One finding: what, for which task type, since when, the evidence and the fix."""

    kind: str
    task_type: str
    title: str
    started: date | None
    evidence: dict[str, Any]
    fix: str
    worst_tasks: tuple[dict[str, Any], ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "task_type": self.task_type, "title": self.title,
                "started": self.started, "evidence": self.evidence, "fix": self.fix,
                "worst_tasks": list(self.worst_tasks)}


def _task_rows(engine: Engine, f: Filters) -> list[dict[str, Any]]:
    return engine.query(task_sql(f, engine.dialect)).dicts()


def _worst(tasks: list[dict[str, Any]], n: int) -> tuple[dict[str, Any], ...]:
    priced = [t for t in tasks if t["cost_usd"] is not None]
    priced.sort(key=lambda t: (-t["cost_usd"], t["task_key"]))
    return tuple({"task": t["task_key"], "cost_usd": t["cost_usd"], "calls": t["calls"],
                  "outcome": t["outcome"], "day": t["day"]} for t in priced[:n])


def _component_growth(engine: Engine, f: Filters, ttype: str, start: date
                      ) -> dict[str, dict[str, float]]:
    """Mean tokens per call of each context component, before vs from ``start``."""
    q = (f"{base_cte(f, engine.dialect, wasted=False)}\n"
         "SELECT pc.components AS components FROM pc WHERE pc.components IS NOT NULL "
         f"AND COALESCE(pc.ttype, '(none)') = {_lit(ttype)} LIMIT 1")
    sample = engine.query(q).rows
    if not sample:
        return {}
    try:
        names = [n for n, v in json.loads(sample[0][0]).items() if isinstance(v, int | float)]
    except (ValueError, AttributeError):
        return {}
    if not names:
        return {}
    sums = ", ".join(
        f"SUM(CAST(json_extract_string(pc.components, {_lit('$.' + json.dumps(n))}) AS BIGINT))"
        f" AS c{i}" for i, n in enumerate(names))
    q = (f"{base_cte(f, engine.dialect, wasted=False)}\n"
         f"SELECT CASE WHEN pc.day >= CAST('{start.isoformat()}' AS DATE) THEN 1 ELSE 0 END"
         f" AS recent, COUNT(*) AS n, {sums} FROM pc WHERE pc.components IS NOT NULL "
         f"AND COALESCE(pc.ttype, '(none)') = {_lit(ttype)} "
         f"GROUP BY CASE WHEN pc.day >= CAST('{start.isoformat()}' AS DATE) THEN 1 ELSE 0 END")
    rows = {int(r[0]): r for r in engine.query(q).rows}
    if 0 not in rows or 1 not in rows:
        return {}
    out: dict[str, dict[str, float]] = {}
    for i, n in enumerate(names):
        b = float(rows[0][2 + i] or 0) / int(rows[0][1])
        r = float(rows[1][2 + i] or 0) / int(rows[1][1])
        out[n] = {"baseline_tokens_per_call": b, "recent_tokens_per_call": r,
                  "change": (r / b - 1) if b else (0.0 if r == 0 else float("inf"))}
    return out


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def rising_cost(by_type: dict[str, list[dict[str, Any]]], cfg: SignalConfig,
                engine: Engine | None = None, f: Filters | None = None) -> list[Signal]:
    out: list[Signal] = []
    for ttype, tasks in sorted(by_type.items()):
        pts = [(t["day"], float(t["cost_usd"]) / t["calls"], t) for t in tasks
               if t["cost_usd"] is not None and t["calls"]]
        days = sorted({d for d, _, _ in pts})
        candidates = []
        for d in days[1:]:
            base = [v for dd, v, _ in pts if dd < d]
            recent = [v for dd, v, _ in pts if dd >= d]
            if len(base) >= cfg.min_tasks and len(recent) >= cfg.min_tasks:
                candidates.append((d, base, recent))
        if not candidates:
            continue
        best = None
        for d, base, recent in candidates:
            _, p = mann_whitney_greater(recent, base)
            if best is None or p < best[1]:
                best = (d, p, base, recent)
        assert best is not None
        d, p, base, recent = best
        mb, mr = median(base), median(recent)
        mean_b, mean_r = sum(base) / len(base), sum(recent) / len(recent)
        increase = mr / mb - 1 if mb > 0 else 0.0
        if p >= cfg.alpha / len(candidates) or mr <= mb:
            continue
        grown: dict[str, dict[str, float]] = {}
        if increase < cfg.min_increase:
            comps = _component_growth(engine, f or Filters(), ttype, d) if engine else {}
            grown = {k: v for k, v in comps.items()
                     if v["change"] >= cfg.min_component_increase}
            if not grown:
                continue
        elif engine is not None:
            grown = {k: v for k, v in _component_growth(engine, f or Filters(), ttype, d).items()
                     if v["change"] >= cfg.min_component_increase}
        calls_b = median([t["calls"] for dd, _, t in pts if dd < d])
        calls_r = median([t["calls"] for dd, _, t in pts if dd >= d])
        recent_tasks = [t for dd, _, t in pts if dd >= d]
        why = ""
        if grown:
            why = "; grew: " + ", ".join(
                f"{k} {v['baseline_tokens_per_call']:,.0f} -> {v['recent_tokens_per_call']:,.0f}"
                f" tokens/call ({v['change']:+.0%})" for k, v in grown.items())
        out.append(Signal(
            kind="rising_cost", task_type=ttype,
            title=(f"{ttype}: cost per call up {increase:+.1%} since {d} "
                   f"(median ${mb:.6f} -> ${mr:.6f}){why}"),
            started=d,
            evidence={"baseline_median_cost_per_call_usd": mb,
                      "recent_median_cost_per_call_usd": mr, "increase": increase,
                      "baseline_mean_cost_per_call_usd": mean_b,
                      "recent_mean_cost_per_call_usd": mean_r,
                      "p_value": p, "test": "Mann-Whitney U, one-sided, Bonferroni over "
                      f"{len(candidates)} candidate days", "baseline_tasks": len(base),
                      "recent_tasks": len(recent), "baseline_median_calls_per_task": calls_b,
                      "recent_median_calls_per_task": calls_r,
                      **({"grown_components": grown} if grown else {})},
            fix=fix_for_components(grown), worst_tasks=_worst(recent_tasks, cfg.worst),
        ))
    return out


def _cache_sql(f: Filters, dialect: str) -> str:
    part = "PARTITION BY COALESCE(pc.session_id, pc.task_id, pc.call_key), pc.model " \
           "ORDER BY pc.ts, pc.call_key"
    return f"""{base_cte(f, dialect, wasted=False)}, l AS (
  SELECT pc.ttype AS ttype, pc.day AS day, pc.ts AS ts, pc.prompt_tokens AS prompt_tokens,
    pc.cache_read_tokens AS cache_read_tokens,
    pc.expected_cache_read_tokens AS expected_cache_read_tokens,
    LAG(pc.ts) OVER ({part}) AS prev_ts,
    LAG(pc.cache_read_tokens + pc.cache_write_5m_tokens + pc.cache_write_1h_tokens)
      OVER ({part}) AS prev_cached
  FROM pc
), e AS (
  SELECT ttype, day, cache_read_tokens,
    COALESCE(expected_cache_read_tokens,
      CASE WHEN prev_ts IS NOT NULL AND ts <= prev_ts + INTERVAL 5 MINUTE
           THEN LEAST(prev_cached, prompt_tokens) ELSE 0 END) AS expected
  FROM l
)
SELECT COALESCE(ttype, '(none)') AS task_type, day,
  SUM(CASE WHEN expected > 0 THEN 1 ELSE 0 END) AS expecting_calls,
  SUM(CASE WHEN expected > 0 THEN LEAST(cache_read_tokens, expected) ELSE 0 END) AS observed,
  SUM(expected) AS expected
FROM e GROUP BY COALESCE(ttype, '(none)'), day"""


def low_cache_hit(engine: Engine, f: Filters, cfg: SignalConfig) -> list[Signal]:
    per: dict[str, list[tuple[date, int, int, int]]] = defaultdict(list)
    for r in engine.query(_cache_sql(f, engine.dialect)).rows:
        per[str(r[0])].append((r[1], int(r[2] or 0), int(r[3] or 0), int(r[4] or 0)))
    out: list[Signal] = []
    for ttype, days in sorted(per.items()):
        days.sort()
        low = [(d, n, o, e) for d, n, o, e in days if e > 0 and o / e < cfg.min_hit_ratio]
        if not low:
            continue
        # the final run of low days (up to the last day with expectations)
        with_exp = [x for x in days if x[3] > 0]
        run: list[tuple[date, int, int, int]] = []
        for x in reversed(with_exp):
            if x[3] > 0 and x[2] / x[3] < cfg.min_hit_ratio:
                run.append(x)
            else:
                break
        if not run:
            continue
        run.reverse()
        n = sum(x[1] for x in run)
        obs = sum(x[2] for x in run)
        exp = sum(x[3] for x in run)
        if n < cfg.min_calls:
            continue
        before = [x for x in with_exp if x[0] < run[0][0]]
        b_obs, b_exp = sum(x[2] for x in before), sum(x[3] for x in before)
        out.append(Signal(
            kind="low_cache_hit", task_type=ttype,
            title=(f"{ttype}: only {obs / exp:.0%} of the cacheable prefix was read from cache "
                   f"since {run[0][0]} ({obs:,} of {exp:,} tokens expected)"),
            started=run[0][0],
            evidence={"expecting_calls": n, "observed_cache_read_tokens": obs,
                      "expected_cache_read_tokens": exp, "hit_ratio": obs / exp,
                      "hit_ratio_before": (b_obs / b_exp) if b_exp else None,
                      "days": [{"day": d, "observed": o, "expected": e} for d, _, o, e in run]},
            fix=FIXES["low_cache_hit"],
        ))
    return out


def failed_task_cost(by_type: dict[str, list[dict[str, Any]]], cfg: SignalConfig) -> list[Signal]:
    out: list[Signal] = []
    for ttype, tasks in sorted(by_type.items()):
        priced = [t for t in tasks if t["cost_usd"] is not None]
        fail = [t["cost_usd"] for t in priced if t["outcome"] == "failure"]
        ok = [t["cost_usd"] for t in priced if t["outcome"] == "success"]
        total = sum((t["cost_usd"] for t in priced), Decimal(0))
        if len(fail) < cfg.min_failures or not total:
            continue
        share = float(sum(fail, Decimal(0)) / total)
        mean_f = float(sum(fail, Decimal(0))) / len(fail)
        mean_s = float(sum(ok, Decimal(0))) / len(ok) if ok else None
        rel = mean_f / mean_s if mean_s else None
        if share < cfg.max_failed_share and (rel is None or rel < cfg.max_failure_cost_ratio):
            continue
        out.append(Signal(
            kind="failed_task_cost", task_type=ttype,
            title=(f"{ttype}: {share:.0%} of spend went to failed tasks; a failure costs "
                   + (f"{rel:.1f}x a success" if rel else "(no successes)")),
            started=None,
            evidence={"failed_spend_share": share, "failures": len(fail), "successes": len(ok),
                      "mean_failure_cost_usd": mean_f, "mean_success_cost_usd": mean_s,
                      "failure_to_success_cost_ratio": rel},
            fix=FIXES["failed_task_cost"],
            worst_tasks=_worst([t for t in priced if t["outcome"] == "failure"], cfg.worst),
        ))
    return out


def output_heavy(by_type: dict[str, list[dict[str, Any]]], cfg: SignalConfig) -> list[Signal]:
    out: list[Signal] = []
    for ttype, tasks in sorted(by_type.items()):
        prompt = sum(int(t["prompt_tokens"]) for t in tasks)
        output = sum(int(t["output_tokens"]) for t in tasks)
        calls = sum(int(t["calls"]) for t in tasks)
        if calls < cfg.min_calls or prompt == 0 or output / prompt <= cfg.max_output_ratio:
            continue
        heavy = sorted(tasks, key=lambda t: -(int(t["output_tokens"]) / max(1, int(
            t["prompt_tokens"]))))
        out.append(Signal(
            kind="output_heavy", task_type=ttype,
            title=f"{ttype}: output is {output / prompt:.1f}x the prompt tokens",
            started=None,
            evidence={"output_tokens": output, "prompt_tokens": prompt,
                      "output_input_ratio": output / prompt,
                      "threshold": cfg.max_output_ratio},
            fix=FIXES["output_heavy"], worst_tasks=_worst(heavy[: cfg.worst], cfg.worst),
        ))
    return out


def compute_signals(
    engine: Engine,
    filters: Filters | None = None,
    book: PriceBook | None = None,
    cfg: SignalConfig | None = None,
    *,
    priced: bool = False,
) -> list[Signal]:
    """All four signals over the data (``priced``: the price table is already installed)."""
    f = filters or Filters()
    c = cfg or SignalConfig()
    if not priced:
        price_data(engine, f, book or default_pricebook())
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in _task_rows(engine, f):
        by_type[t["task_type"] or "(none)"].append(t)
    return [*rising_cost(by_type, c, engine, f), *low_cache_hit(engine, f, c),
            *failed_task_cost(by_type, c), *output_heavy(by_type, c)]
