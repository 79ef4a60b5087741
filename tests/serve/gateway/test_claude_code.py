"""Claude Code's request shape, rebuilt from a recorded session, passes through
unchanged and is recorded with its session id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2 as httpx
from claude_code_body import claude_code_request
from fake_upstream import FakeUpstream

from conftest import base_config


def test_claude_code_session_through_the_gateway(upstream: FakeUpstream, gateway_factory: Any,
                                                 data_dir: Path, tmp_path: Path) -> None:
    logs = sorted((data_dir / "claude-code" / "projects" / "sample-project").glob("*.jsonl"))
    budget = {"name": "cc", "limit_usd": "50", "window": "day", "per": "user",
              "match": {"key": "sk-ant-*"}}
    keys = [{"match": "sk-ant-oat01-*", "user": "dev-1", "team": "core"}]
    gw = gateway_factory(base_config(upstream, budget_store=str(tmp_path / "j"),
                                     budgets=[budget], keys=keys))
    sent: list[tuple[bytes, str]] = []
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        for log in logs:
            body, headers, session = claude_code_request(log)
            with c.stream("POST", "/v1/messages?beta=true", content=body,
                          headers={**headers, "x-api-key": "sk-ant-oat01-secret"}) as r:
                raw = b"".join(r.iter_raw())
            assert r.status_code == 200 and r.headers["x-ctxbudget-budget"] == "cc"
            sent.append((body, session))
            assert raw == upstream.sent[len(sent) - 1]
    assert max(len(b) for b, _ in sent) > 30_000
    for (body, _), rec in zip(sent, upstream.received, strict=True):
        assert rec.body == body and rec.path == "/v1/messages?beta=true"
        assert rec.headers["anthropic-beta"].startswith("claude-code-20250219,")
        assert rec.headers["x-app"] == "cli" and rec.headers["x-api-key"] == \
            "sk-ant-oat01-secret"
    gw.stop()
    calls = sorted(gw.calls(), key=lambda c: c.ts)
    assert [c.session_id for c in calls] == [s for _, s in sent]
    for c in calls:
        assert c.meta["user"] == "dev-1" and c.meta["team"] == "core"
        assert c.usage.cache_read_tokens == 200 and c.meta["stream"] is True
        assert len(c.prefix_fingerprint or ()) > 10
    spool = b"".join(p.read_bytes() for p in (gw.home / "spool").glob("*.jsonl*"))
    assert b"sk-ant-oat01-secret" not in spool and b"interactive CLI tool" not in spool
    journal = (tmp_path / "j").read_bytes()
    assert b"secret" not in journal and b"dev-1" in journal
