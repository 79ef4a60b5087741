"""Responses with server-side tool fees, sampling iterations or modality detail through the
gateway: the report's total equals ``ctxbudget usage FILE --cost`` on the same body,
exactly, and the budget is settled at that same figure.

The gateway (built in-process, its records going to the tracker's spool, as in
production) forwards to the local fake API of ``tests/track/fakeapi.py``, which answers
each recorded real body of ``tests/core/data/responses``."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "track"))  # fakeapi
sys.path.insert(0, str(HERE.parents[1]))  # fees_parity

from fakeapi import FakeAPI  # noqa: E402

import ctxbudget.track as tr  # noqa: E402
from ctxbudget.budgets import MemoryLedger  # noqa: E402
from ctxbudget.serve.gateway import GatewayConfig, build_app  # noqa: E402
from ctxbudget.store.spool import ingest_spool  # noqa: E402
from fees_parity import (  # noqa: E402
    ANTHROPIC,
    COMPATIBLE,
    OPENAI_CHAT,
    OPENAI_RESPONSES,
    assert_same_total,
    body,
    usage_cost,
)

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
MSG = [{"role": "user", "content": "What is new in Python 3.14?"}]
#: name -> (upstream, gateway path, fake API endpoint kind)
ROUTES = {
    **{n: ("anthropic", "/v1/messages", "anthropic") for n in ANTHROPIC},
    **{n: ("openai", "/v1/chat/completions", "openai-chat") for n in OPENAI_CHAT},
    **{n: ("openai", "/v1/responses", "openai-responses") for n in OPENAI_RESPONSES},
    **{n: (p, f"/{p}/v1/chat/completions", "openai-chat") for n, p in COMPATIBLE},
}


@pytest.fixture
def api(data_dir: Path) -> Any:
    with FakeAPI(data_dir / "api-responses") as server:
        yield server
    assert not server.errors, server.errors


def _request(path: str, model: str) -> dict[str, Any]:
    if path.endswith("/messages"):
        return {"model": model, "max_tokens": 256, "messages": MSG}
    if path.endswith("/responses"):
        return {"model": model, "input": "hi"}
    return {"model": model, "messages": MSG}


@pytest.mark.parametrize("name", [*ANTHROPIC, *OPENAI_CHAT, *OPENAI_RESPONSES,
                                  *(n for n, _ in COMPATIBLE)])
def test_gateway_records_and_settles_what_usage_cost_prices(
        name: str, api: FakeAPI, tmp_path: Path) -> None:
    b = body(name)
    upstream, path, kind = ROUTES[name]
    api.respond_next(kind, b)
    spool = tmp_path / "spool"
    tr.configure(spool_dir=spool, flush_interval=0.05)
    cfg = GatewayConfig.from_dict({
        "upstreams": {
            "anthropic": {"base_url": api.url},
            "openai": {"base_url": api.url},
            "openrouter": {"base_url": api.url, "api": "openai", "prefix": "/openrouter"},
            "x-ai": {"base_url": api.url, "api": "openai", "prefix": "/x-ai"},
        },
        "budgets": [{"name": "all", "match": {"key": "*"}, "limit_usd": "100",
                     "window": "day"}],
    })
    ledger = MemoryLedger(tmp_path / "journal", clock=lambda: NOW)
    app = build_app(cfg, ledger=ledger, clock=lambda: NOW)
    hdrs = {"x-api-key": "sk-test", "authorization": "Bearer sk-test",
            "anthropic-version": "2023-06-01", "content-type": "application/json"}

    async def main() -> int:
        await app.startup()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://gw") as c:
                r = await c.post(path, content=json.dumps(_request(path, b["model"])),
                                 headers=hdrs)
                assert json.loads(r.content) == b  # passed through unchanged
                return r.status_code
        finally:
            await app.shutdown()

    try:
        assert asyncio.run(main()) == 200
        tr.flush()
    finally:
        tr.configure()
    db = tmp_path / "u.duckdb"
    assert ingest_spool(db, spool).rejected == 0
    up = next(u for u in cfg.upstreams if u.name == upstream)
    priced = usage_cost(name, NOW.date(), provider=up.provider)
    assert_same_total(db, priced)
    # the budget was settled at the same figure
    st = ledger.states(app._charges(app._who([(b"x-api-key", b"sk-test")]), up,
                                    b["model"]))[0]
    assert st.held == 0 and st.spent == Decimal(priced["total_usd"])
