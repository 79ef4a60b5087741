"""Cache audit on request bodies rendered by the packer (ctxbudget.pack)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pack = pytest.importorskip("ctxbudget.pack")

from ctxbudget.analyze.audit import Request, audit_requests  # noqa: E402
from ctxbudget.analyze.requests import build_request  # noqa: E402

T0 = datetime(2026, 11, 28, 9, tzinfo=UTC)
SYSTEM = "You are the support assistant for Acme. " + "Follow the refund policy. " * 250
TOOLS = [
    {"name": "lookup_order", "description": "Find an order.",
     "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}}},
    {"name": "refund", "description": "Refund an order.",
     "input_schema": {"type": "object", "properties": {"id": {"type": "string"},
                                                        "amount": {"type": "number"}}}},
]


def session(system_at: Any = None, volatile_at: Any = None, calls: int = 4) -> list[Request]:
    cfg = pack.PackerConfig(window=200_000, model="claude-sonnet-4-5", provider="anthropic")
    pk = pack.Packer(cfg, counter=lambda s: max(1, len(s) // 4))
    history: list[dict[str, str]] = []
    out = []
    for i in range(calls):
        ts = T0 + timedelta(seconds=30 * i)
        user = f"Question {i}: " + "where is my order? " * 20
        system = SYSTEM + (system_at(ts) if system_at else "")
        p = pk.pack(system=system, tools=TOOLS, history=history, user=user,
                    volatile=volatile_at(ts) if volatile_at else None)
        body = pack.render_anthropic(p, model="claude-sonnet-4-5", max_tokens=512)
        out.append(build_request(body, index=i, where=f"call {i}", ts=ts))
        history = [*history, {"role": "user", "content": user},
                   {"role": "assistant", "content": f"Answer {i}: " + "it ships soon. " * 30}]
    return out


def test_packed_session_is_stable() -> None:
    reqs = session()
    assert all(r.breakpoints for r in reqs)
    assert audit_requests(reqs).findings == ()


def test_date_as_volatile_context_keeps_the_cache() -> None:
    # the packer places volatile context after the cached prefix: nothing to report
    reqs = session(volatile_at=lambda ts: f"Current time: {ts.isoformat()}")
    assert audit_requests(reqs).findings == ()


def test_date_in_the_system_prompt_breaks_every_call() -> None:
    reqs = session(system_at=lambda ts: f" Current time: {ts.isoformat()}")
    findings = audit_requests(reqs).findings
    assert [f.index for f in findings] == [1, 2, 3]
    for f in findings:
        assert f.cause == "system_changed" and "timestamp" in f.flags
        r = reqs[f.index]
        prev = reqs[f.index - 1]
        # lost: the changed system block plus the messages the previous call had cached
        # (up to its last cache breakpoint)
        prev_canon = {b.canon for b in prev.blocks[:max(prev.breakpoints) + 1]}
        expected = sum(b.tokens for b in r.blocks if b.component == "system" or (
            b.component == "messages" and b.canon in prev_canon))
        assert f.lost_tokens == expected
