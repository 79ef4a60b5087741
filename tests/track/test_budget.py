"""Budget caps: pre-call blocking, post-call overrun, nesting, warn mode (docs/budgets.md)."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fakeapi import FakeAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from track_helpers import closing, recorded

import ctxbudget
import ctxbudget.track as tr
from ctxbudget.adapters import from_anthropic
from ctxbudget.errors import BudgetExceeded
from ctxbudget.track import _budget
from ctxbudget.track._context import Limits, TaskContext
from ctxbudget.usage import Usage

anthropic = pytest.importorskip("anthropic")
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

MODEL = "claude-sonnet-4-5"
MSG = [{"role": "user", "content": "hi"}]


def _client(api: FakeAPI) -> Any:
    return ctxbudget.track(closing(anthropic.Anthropic(base_url=api.url, api_key="test",
                                                       max_retries=0)))


def _actual_usd(body: dict[str, Any]) -> Decimal:
    a = from_anthropic(body)
    return ctxbudget.PriceBook().total_usd(a.usage, a.model or MODEL, "anthropic")


def test_pre_call_estimate_blocks_before_sending(api: FakeAPI, spool: Path) -> None:
    client = _client(api)
    est = _budget.estimate_request("anthropic", "anthropic", MODEL,
                                   {"model": MODEL, "max_tokens": 4096, "messages": MSG})
    assert est.cost_usd is not None and est.usage.output_tokens == 4096
    with ctxbudget.task("cap", max_cost_usd=est.cost_usd / 2) as t, \
            pytest.raises(BudgetExceeded) as ei:
        client.messages.create(model=MODEL, max_tokens=4096, messages=MSG)
    e = ei.value
    assert (e.task_id, e.metric, e.phase) == ("cap", "cost_usd", "pre-call")
    assert e.spent == 0 and e.limit == est.cost_usd / 2 and e.projected == est.cost_usd
    assert api.requests == []  # nothing was sent
    # the app caught the BudgetExceeded: the task still ran blocked, and says by what
    assert t.calls == 0 and t.outcome == "blocked"
    assert t.blocked_by == {"cap": "max_cost_usd", "limit": str(est.cost_usd / 2),
                            "task_id": "cap", "phase": "pre-call"}
    calls, tasks = recorded(spool)
    assert calls == [] and [x.task_id for x in tasks] == ["cap"]
    assert tasks[0].outcome == "blocked" and tasks[0].blocked_by == t.blocked_by


def test_overrun_recorded_then_next_call_blocked(api: FakeAPI, spool: Path) -> None:
    """max_tokens=64 makes the estimate small; the recorded reply (406 output tokens)
    costs more than the cap: the overrun is recorded, and the next call is blocked."""
    client = _client(api)
    first = api.recorded("anthropic")[0]
    actual = _actual_usd(first)
    est = _budget.estimate_request("anthropic", "anthropic", MODEL,
                                   {"model": MODEL, "max_tokens": 64, "messages": MSG})
    assert est.cost_usd is not None and est.cost_usd < actual
    cap = (est.cost_usd + actual) / 2  # the estimate fits, the actual spend does not
    with ctxbudget.task("ticket-7", max_cost_usd=cap) as t:
        client.messages.create(model=MODEL, max_tokens=64, messages=MSG)  # allowed, overruns
        assert t.overrun is True and t.spent_usd == actual
        with pytest.raises(BudgetExceeded) as ei:
            client.messages.create(model=MODEL, max_tokens=64, messages=MSG)
        t.outcome = "partial"
    assert ei.value.spent == actual and ei.value.limit == cap
    assert len(api.requests) == 1
    (c,), (task,) = recorded(spool)
    assert c.meta is not None and c.meta["overrun"] == ["ticket-7:cost_usd"]
    assert c.meta["estimate"]["output_tokens"] == 64
    assert task.outcome == "partial"


def test_reaching_exactly_the_cap_is_allowed(api: FakeAPI, spool: Path) -> None:
    class Ledger:
        components: ClassVar[dict[str, int]] = {"system": 100, "user": 20}
        prefix_fingerprint = ()
        expected_cache_read_tokens = 100

    client = _client(api)
    kw = {"model": MODEL, "max_tokens": 64, "messages": MSG}
    est = _budget.estimate_request("anthropic", "anthropic", MODEL, kw, Ledger())
    # expected cache reads never lower a reservation: a cache miss must fit too
    assert est == _budget.estimate_request("anthropic", "anthropic", MODEL, kw)
    assert est.source == "body" and est.usage.cache_read_tokens == 0
    assert est.usage.output_tokens == 64 and est.cost_usd is not None
    with ctxbudget.task("exact", max_cost_usd=est.cost_usd):
        client.messages.create(**kw, ctxbudget_ledger=Ledger())  # spent 0 + est == cap: ok
    with ctxbudget.task("below", max_cost_usd=est.cost_usd - Decimal("0.000000001")), \
            pytest.raises(BudgetExceeded):
        client.messages.create(**kw, ctxbudget_ledger=Ledger())
    with ctxbudget.task("calls", max_calls=2):
        client.messages.create(**kw)
        client.messages.create(**kw)
        with pytest.raises(BudgetExceeded) as ei:
            client.messages.create(**kw)
    assert (ei.value.metric, ei.value.spent, ei.value.limit, ei.value.projected) == \
        ("calls", 2, 2, 3)
    assert len(api.requests) == 3


def test_reservation_prices_cache_writes_and_tiers() -> None:
    """The reservation is what the request can be billed at most: the prefix up to a
    cache_control breakpoint at the cache-write rate (1h writes at theirs), priced as one
    request — the same RequestPricer the gateway uses."""
    from ctxbudget.budgets import RequestPricer

    system = [{"type": "text", "text": "You are a careful assistant. " * 200}]
    plain = {"model": MODEL, "max_tokens": 64, "system": system, "messages": MSG}
    marked = {**plain, "system": [{**system[0], "cache_control": {"type": "ephemeral"}}]}
    marked_1h = {**plain, "system": [{**system[0],
                                      "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}
    e0, e5, e1 = (_budget.estimate_request("anthropic", "anthropic", MODEL, kw)
                  for kw in (plain, marked, marked_1h))
    assert e0.usage.prompt_tokens == e5.usage.prompt_tokens == e1.usage.prompt_tokens
    assert e0.usage.cache_write_5m_tokens == 0 and e5.usage.cache_write_5m_tokens > 1000
    assert e1.usage.cache_write_1h_tokens == e5.usage.cache_write_5m_tokens
    assert e0.cost_usd is not None and e5.cost_usd is not None and e1.cost_usd is not None
    assert e0.cost_usd < e5.cost_usd < e1.cost_usd
    import json

    shared = RequestPricer().estimate(json.dumps(marked).encode(), "anthropic",
                                      provider="anthropic")
    assert (shared.usage, shared.cost_usd) == (e5.usage, e5.cost_usd)


def test_nested_tasks_tighter_cap_applies_and_spend_rolls_up(api: FakeAPI, spool: Path) -> None:
    client = _client(api)
    kw = {"model": MODEL, "max_tokens": 64, "messages": MSG}
    with ctxbudget.task("session", max_calls=3) as parent:
        with ctxbudget.task("step-1", max_calls=10) as child:
            assert child.parent is parent
            for _ in range(3):
                client.messages.create(**kw)
            with pytest.raises(BudgetExceeded) as ei:
                client.messages.create(**kw)
        assert ei.value.task_id == "session"  # the parent's (tighter) cap
        assert parent.calls == child.calls == 3
        assert parent.usage == child.usage and parent.spent_usd == child.spent_usd > 0
    with ctxbudget.task("outer", max_input_tokens=10**9), \
            ctxbudget.task("inner", max_input_tokens=1), pytest.raises(BudgetExceeded) as ei:
        client.messages.create(**kw)
    assert (ei.value.task_id, ei.value.metric) == ("inner", "input_tokens")
    _, tasks = recorded(spool)
    parents = {t.task_id: t.parent_id for t in tasks}
    assert parents["step-1"] == "session" and parents["session"] is None


def test_warn_mode_logs_and_proceeds(api: FakeAPI, spool: Path,
                                     caplog: pytest.LogCaptureFixture) -> None:
    client = _client(api)
    before = tr.stats()["budget_warned"]
    with caplog.at_level(logging.WARNING, logger="ctxbudget.track"), \
            ctxbudget.task("w", max_calls=1, on_exceed="warn") as t:
        client.messages.create(model=MODEL, max_tokens=64, messages=MSG)
        client.messages.create(model=MODEL, max_tokens=64, messages=MSG)
    assert len(api.requests) == 2 and t.calls == 2 and t.overrun
    assert tr.stats()["budget_warned"] == before + 1
    assert any("would be exceeded" in r.message for r in caplog.records)


def test_api_errors_count_as_calls(api: FakeAPI, spool: Path) -> None:
    client = _client(api)
    api.fail_next("anthropic", 429)
    with ctxbudget.task("e", max_calls=1) as t:
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(model=MODEL, max_tokens=64, messages=MSG)
        assert t.calls == 1
        with pytest.raises(BudgetExceeded):
            client.messages.create(model=MODEL, max_tokens=64, messages=MSG)


def test_in_flight_calls_reserve_headroom() -> None:
    """Calls still in flight count: 20 concurrent attempts on max_calls=5 let exactly 5 go."""
    from ctxbudget.track._core import before_call, finish_call

    with ctxbudget.task("conc", max_calls=5) as t:
        pending, blocked = [], 0
        for _ in range(20):
            try:
                pending.append(before_call("anthropic", "anthropic", {"model": MODEL}))
            except BudgetExceeded:
                blocked += 1
        assert (len(pending), blocked, t.reserved_calls) == (5, 15, 5)
        for p in pending:
            finish_call(p, None)
        assert (t.calls, t.reserved_calls) == (5, 0)


def test_unpriced_model_does_not_block(spool: Path) -> None:
    from ctxbudget.track._core import before_call

    before = tr.stats()["unpriced_budget_checks"]
    with ctxbudget.task("u", max_cost_usd="0.000001"):
        before_call("openai", "openai-chat", {"model": "no-such-model-xyz", "messages": MSG})
    assert tr.stats()["unpriced_budget_checks"] == before + 1


@settings(max_examples=60, deadline=None)
@given(cap=st.integers(0, 500),
       calls=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 200)), max_size=12))
def test_precheck_and_charge_invariants(cap: int, calls: list[tuple[int, int]]) -> None:
    """A call passes iff spent + estimate <= cap; a call is flagged as overrun iff the
    actual spend is now > cap; once overrun, every later call is blocked."""
    t = TaskContext("h", limits=Limits(max_input_tokens=cap))
    for est_in, actual_in in calls:
        est = _budget.Estimate(usage=Usage(input_tokens=est_in), cost_usd=None, source="count")
        spent = t.input_tokens
        try:
            r = _budget.precheck(t, est)
        except BudgetExceeded as e:
            assert spent + est_in > cap and e.projected == spent + est_in
            continue
        assert spent + est_in <= cap and spent <= cap
        over = _budget.charge(t, r, Usage(input_tokens=actual_in), Decimal(0))
        assert bool(over) == (t.input_tokens > cap) == t.overrun
        assert t.reserved_input_tokens == 0 and t.input_tokens == spent + actual_in
