"""The seed's pre-deployment checklist, each item evaluated from evidence.

Evidence comes from the budget spec (and its projection, :func:`ctxbudget.plan.project`),
the call logs (the store or a Parquet file from ``ctxbudget simulate``) and the alert
rules / baseline files. Every item is ``pass``, ``fail`` or ``unknown`` (no evidence
either way) with the lines of evidence that decided it:

1. ``budget_modeled``        the spec models fixed and variable components
2. ``allocation_targets``    the spec sets allocation targets (preset or % per bucket)
3. ``caching_verified``      caching is on in the spec *and* the logs read from cache:
                             hit rate (cache read / prompt tokens) at least half the
                             plan's expected rate (any read when there is no plan)
4. ``tool_surface``          task types send different tool-definition token counts
                             (``components.tools``), i.e. tools are routed per type
5. ``history_strategy``      the policy in effect is not ``none``, or the logged history
                             stops growing over the last third of the turns
6. ``output_constrained``    the spec budgets output tokens and the logs stay within
                             1.5x of it, with output / prompt below the seed's 3x warning
7. ``cost_per_task_logged``  at least 95% of the calls carry a task id
8. ``alert_thresholds``      a rules file with a cost-per-task rule, or a baseline
9. ``model_tiering``         the spec compares two or more models, or the logs use
                             more than one model
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ITEMS", "ChecklistItem", "ChecklistResult", "run_checklist"]

ITEMS: tuple[tuple[str, str], ...] = (
    ("budget_modeled", "Modeled the token budget for each context component (fixed and "
                       "variable)"),
    ("allocation_targets", "Set allocation targets (% per component) for a target window"),
    ("caching_verified", "Prompt caching enabled and verified (cache hit rate in logs)"),
    ("tool_surface", "Tool surface limited to task-relevant tools per task type"),
    ("history_strategy", "Conversation history management strategy implemented and tested"),
    ("output_constrained", "Output length constrained"),
    ("cost_per_task_logged", "Cost per task logged (not just cost per call)"),
    ("alert_thresholds", "Alert threshold set for cost per task (to detect regressions)"),
    ("model_tiering", "Model tiering considered for sub-tasks that don't need frontier "
                      "capability"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChecklistItem:
    id: str
    title: str
    status: str
    """``pass``, ``fail`` or ``unknown``."""
    evidence: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "status": self.status,
                "evidence": list(self.evidence)}


@dataclass(frozen=True, slots=True, kw_only=True)
class ChecklistResult:
    items: tuple[ChecklistItem, ...]
    spec: str | None
    logs: str | None

    @property
    def failed(self) -> bool:
        return any(i.status == "fail" for i in self.items)

    def as_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "logs": self.logs, "failed": self.failed,
                "counts": {s: sum(1 for i in self.items if i.status == s)
                           for s in ("pass", "fail", "unknown")},
                "items": [i.as_dict() for i in self.items]}


def _logs_facts(con: Any) -> dict[str, Any]:
    """Aggregates of the ``calls`` relation the checks need (one pass each)."""
    f: dict[str, Any] = {}
    row = con.execute(
        "SELECT count(*), count(task_id), "
        "coalesce(sum(input_tokens + cache_read_tokens + cache_write_5m_tokens "
        "+ cache_write_1h_tokens), 0), coalesce(sum(cache_read_tokens), 0), "
        "coalesce(sum(cache_write_5m_tokens + cache_write_1h_tokens), 0), "
        "coalesce(sum(output_tokens), 0), count(DISTINCT task_id), count(components), "
        "coalesce(avg(output_tokens), 0), coalesce(max(output_tokens), 0) FROM calls"
    ).fetchall()[0]
    (f["calls"], f["with_task"], f["prompt"], f["read"], f["write"], f["output"], f["tasks"],
     f["with_components"], f["mean_output"], f["max_output"]) = row
    f["tools_by_type"] = con.execute(
        "SELECT coalesce(task_type, '(none)'), avg(TRY_CAST(json_extract_string(components, "
        "'$.tools') AS DOUBLE)), count(*) FROM calls WHERE components IS NOT NULL "
        "GROUP BY 1 ORDER BY 1").fetchall()
    f["history_by_turn"] = con.execute(
        "SELECT turn, avg(TRY_CAST(json_extract_string(components, '$.history') AS DOUBLE)) "
        "FROM calls WHERE turn IS NOT NULL AND components IS NOT NULL GROUP BY 1 "
        "HAVING count(*) > 0 ORDER BY 1").fetchall()
    f["models_by_type"] = con.execute(
        "SELECT coalesce(task_type, '(none)'), string_agg(DISTINCT model, ', ' ORDER BY model) "
        "FROM calls GROUP BY 1 ORDER BY 1").fetchall()
    f["models"] = [r[0] for r in con.execute(
        "SELECT DISTINCT model FROM calls ORDER BY 1").fetchall()]
    try:
        f["tasks_with_outcome"] = con.execute(
            "SELECT count(*) FROM tasks WHERE outcome IS NOT NULL").fetchall()[0][0]
    except Exception:  # a source without a tasks relation
        f["tasks_with_outcome"] = None
    return f


def _nonzero(v: Any) -> bool:
    if isinstance(v, dict):
        return any(_nonzero(x) for x in v.values())
    if isinstance(v, list):
        return any(_nonzero(x) for x in v)
    return isinstance(v, int | float) and not isinstance(v, bool) and v > 0


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def run_checklist(
    *,
    spec_path: Path | str | None = None,
    con: Any = None,
    logs_label: str | None = None,
    rules_path: Path | str | None = None,
    baseline_path: Path | str | None = None,
) -> ChecklistResult:
    """Evaluate the nine items from whatever evidence is given (see the module docstring)."""
    loaded = plan = None
    spec_note: list[str] = []
    if spec_path is not None:
        from ..plan import load_spec, project

        loaded = load_spec(Path(spec_path))
        try:
            plan = project(loaded)
        except Exception as exc:  # the checklist still reads the spec itself
            spec_note.append(f"projection failed: {exc}")
    spec = loaded.spec if loaded is not None else None
    facts = _logs_facts(con) if con is not None else None
    has_logs = bool(facts and facts["calls"])
    out: dict[str, tuple[str, list[str]]] = {}

    # 1 budget modeled
    if spec is None:
        out["budget_modeled"] = ("unknown", ["no --spec given"])
    else:
        var = [k for k, v in spec.variable.model_dump().items() if _nonzero(v)]
        ev = [f"fixed components: {', '.join(spec.fixed) or 'none'}",
              f"variable components: {', '.join(var) or 'none'}"]
        if plan is not None:
            ev.append(f"plan: {plan.fixed_tokens:,} fixed tokens per call, expected "
                      f"${plan.task.expected_usd:.4f} per task on {plan.model}")
        ok = bool(spec.fixed) and bool(var)
        out["budget_modeled"] = ("pass" if ok else "fail", ev + spec_note)

    # 2 allocation targets
    if spec is None:
        out["allocation_targets"] = ("unknown", ["no --spec given"])
    elif spec.allocation is None or not (spec.allocation.preset or spec.allocation.targets):
        out["allocation_targets"] = ("fail", ["the spec has no 'allocation' (preset or "
                                              "targets per bucket)"])
    else:
        ev = [f"allocation: preset {spec.allocation.preset}" if spec.allocation.preset else
              "allocation targets: " + ", ".join(
                  f"{k} {v:g}%" for k, v in (spec.allocation.targets or {}).items())]
        if plan is not None:
            over = [a.bucket for a in plan.allocation if a.status == "over"]
            ev.append(f"at the peak turn over target: {', '.join(over)}" if over
                      else "every bucket within its target at the peak turn")
        out["allocation_targets"] = ("pass", ev)

    # 3 caching enabled and verified
    enabled: bool | None = None
    ev = []
    if spec is not None:
        enabled = spec.caching.enabled and spec.caching.mode != "none" and bool(
            spec.cacheable_fixed())
        ev.append(f"spec: caching {'on' if enabled else 'off'} (cacheable: "
                  f"{', '.join(spec.cacheable_fixed()) or 'nothing'}, TTL {spec.caching.ttl})")
    expected = None
    if plan is not None and plan.session.prompt_tokens:
        expected = plan.session.usage.cache_read_tokens / plan.session.prompt_tokens
        ev.append(f"plan expects a cache hit rate of {_pct(expected)}")
    if not has_logs:
        out["caching_verified"] = ("fail" if enabled is False else "unknown",
                                   [*ev, "no call logs to verify the hit rate"])
    else:
        assert facts is not None
        rate = facts["read"] / facts["prompt"] if facts["prompt"] else 0.0
        ev.append(f"logs: cache hit rate {_pct(rate)} (cache read {facts['read']:,} / prompt "
                  f"{facts['prompt']:,} tokens; cache writes {facts['write']:,})")
        if enabled is None:
            enabled = facts["read"] + facts["write"] > 0
        if not enabled:
            status = "fail"
        elif expected:
            status = "pass" if rate >= 0.5 * expected else "fail"
            if status == "fail":
                ev.append("below half the planned rate: run `ctxbudget audit` on request logs")
        else:
            status = "pass" if facts["read"] > 0 else "fail"
        out["caching_verified"] = (status, ev)

    # 4 tool surface per task type
    tools = [(t, v, n) for t, v, n in (facts or {}).get("tools_by_type", []) if v is not None]
    if len(tools) >= 2:
        ev = ["tool-definition tokens per call by task type: " + ", ".join(
            f"{t} {v:,.0f}" for t, v, _ in tools)]
        distinct = len({round(v) for _, v, _ in tools})
        out["tool_surface"] = ("pass" if distinct > 1 else "fail",
                               ev + ([] if distinct > 1 else
                                     ["every task type sends the same tool definitions"]))
    elif tools:
        out["tool_surface"] = ("unknown", [f"one task type in the logs ({tools[0][0]}, "
                                           f"{tools[0][1]:,.0f} tool tokens per call)"])
    else:
        out["tool_surface"] = ("unknown", ["no 'tools' component recorded in the logs"])

    # 5 history strategy
    ev = []
    in_effect = None
    if spec is not None:
        pols = [p if isinstance(p, str) else next(iter(p.model_dump())) for p in
                spec.history_policies]
        in_effect = pols[0]
        ev.append(f"spec: policy in effect {in_effect}" + (
            f" (also compared: {', '.join(pols[1:])})" if len(pols) > 1 else ""))
    hist = [(t, h) for t, h in (facts or {}).get("history_by_turn", []) if h is not None]
    growing = None
    if len(hist) >= 3:
        last = hist[-1][1]
        at_two_thirds = hist[(2 * len(hist)) // 3 - 1][1]
        growing = last > 1.05 * at_two_thirds
        ev.append(f"logs: mean history {hist[0][1]:,.0f} tokens at turn {hist[0][0]}, "
                  f"{at_two_thirds:,.0f} at turn {hist[(2 * len(hist)) // 3 - 1][0]}, "
                  f"{last:,.0f} at turn {hist[-1][0]}"
                  + (" (still growing)" if growing else " (bounded)"))
    if growing is not None:
        status = "fail" if growing else "pass"
    elif in_effect is not None:
        status = "fail" if in_effect == "none" else "pass"
    else:
        status = "unknown"
        ev.append("no spec and no 'history' component in the logs")
    out["history_strategy"] = (status, ev)

    # 6 output constrained
    ev = []
    budget_out = None
    if spec is not None and spec.variable.output.tokens > 0:
        budget_out = spec.variable.output.tokens
        ev.append(f"spec budgets {budget_out:,} output tokens per call")
    if has_logs:
        assert facts is not None
        ratio = facts["output"] / facts["prompt"] if facts["prompt"] else 0.0
        ev.append(f"logs: mean output {facts['mean_output']:,.0f} tokens per call, max "
                  f"{facts['max_output']:,}, output / prompt {ratio:.2f}")
        ok = ratio < 3 and (budget_out is None or facts["mean_output"] <= 1.5 * budget_out)
        status = "pass" if ok and budget_out is not None else ("fail" if not ok else "unknown")
        if budget_out is None and ok:
            ev.append("no output budget in a spec to check against")
    else:
        status = "pass" if budget_out is not None else "unknown"
        if budget_out is not None:
            ev.append("not verified against logs")
    out["output_constrained"] = (status, ev or ["no spec and no logs"])

    # 7 cost per task logged
    if not has_logs:
        out["cost_per_task_logged"] = ("unknown", ["no call logs"])
    else:
        assert facts is not None
        share = facts["with_task"] / facts["calls"]
        ev = [f"{facts['with_task']:,} of {facts['calls']:,} calls ({_pct(share)}) carry a "
              f"task id; {facts['tasks']:,} tasks"]
        if facts["tasks_with_outcome"] is not None:
            ev.append(f"{facts['tasks_with_outcome']:,} tasks with a recorded outcome")
        out["cost_per_task_logged"] = ("pass" if share >= 0.95 else "fail", ev)

    # 8 alert thresholds
    ev = []
    ok_alert = False
    if rules_path is not None:
        from ..analyze.rules import load_rules

        rules = load_rules(Path(rules_path))
        per_task = [r for r in rules if "per_task" in r.metric or r.metric == "cost_per_success"]
        ev.append(f"{rules_path}: {len(rules)} rule(s), {len(per_task)} on cost / tokens per "
                  "task" + (f" ({', '.join(r.name for r in per_task)})" if per_task else ""))
        ok_alert = bool(per_task)
    if baseline_path is not None:
        ok_b = Path(baseline_path).exists()
        ev.append(f"baseline {baseline_path}: {'present' if ok_b else 'missing'}")
        ok_alert = ok_alert or ok_b
    if not ev:
        ev.append("no alert rules or baseline given (--rules FILE / --baseline FILE)")
    out["alert_thresholds"] = ("pass" if ok_alert else "fail", ev)

    # 9 model tiering
    ev = []
    considered = False
    if plan is not None and len(plan.models) > 1:
        considered = True
        ev.append("spec compares: " + ", ".join(
            f"{m.model} ${m.task.expected_usd:.4f}/task" for m in plan.models))
    elif spec is not None:
        names = [m.model for m in spec.model_specs()]
        considered = len(names) > 1
        ev.append(f"spec models: {', '.join(names)}")
    if has_logs:
        assert facts is not None
        ev.append("logs: " + "; ".join(f"{t}: {m}" for t, m in facts["models_by_type"]))
        considered = considered or len(facts["models"]) > 1
    if not ev:
        out["model_tiering"] = ("unknown", ["no spec and no logs"])
    else:
        out["model_tiering"] = ("pass" if considered else "fail", ev)

    items = tuple(ChecklistItem(id=i, title=t, status=out[i][0], evidence=tuple(out[i][1]))
                  for i, t in ITEMS)
    return ChecklistResult(items=items, spec=str(spec_path) if spec_path else None,
                           logs=logs_label)
