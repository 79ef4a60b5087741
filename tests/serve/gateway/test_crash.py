"""SIGKILL of the gateway during 200 in-flight streamed requests, then a restart: no
record twice, the store readable, the ledger consistent (orphans expire)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2 as httpx
from fake_upstream import FakeUpstream

from conftest import base_config
from ctxbudget.budgets import Budget, Charge, MemoryLedger, Window
from ctxbudget.prices import default_pricebook

BUDGET = {"name": "all", "limit_usd": "1000", "window": "day"}
BODY = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
                   "messages": [{"role": "user", "content": "hello"}]}).encode()


async def _fire(url: str, n: int, chunks: int, delay_ms: int) -> list[str]:
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
        async def one(i: int) -> str:
            try:
                async with c.stream("POST", "/v1/messages", content=BODY, headers={
                        "x-api-key": f"k{i}", "x-fake-chunks": str(chunks),
                        "x-fake-delay-ms": str(delay_ms)}) as r:
                    async for _ in r.aiter_raw():
                        pass
                return "ok"
            except httpx.HTTPError as exc:
                return type(exc).__name__

        return await asyncio.gather(*[one(i) for i in range(n)])


def test_sigkill_with_200_in_flight_then_restart(upstream: FakeUpstream, gateway_factory: Any,
                                                 tmp_path: Path) -> None:
    journal = tmp_path / "budget.journal"
    cfg = base_config(upstream, budget_store=str(journal), budgets=[BUDGET],
                      reservation_ttl=3)
    gw = gateway_factory(cfg)
    # a few complete calls first (they must survive the crash, once)
    assert asyncio.run(_fire(gw.url, 10, 2, 0)) == ["ok"] * 10
    time.sleep(0.5)  # the spool writer flushes every 0.2 s

    async def crash() -> list[str]:
        fire = asyncio.ensure_future(_fire(gw.url, 200, 100, 30))  # ~3 s streams
        while len(upstream.received) < 210:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGKILL)
        return await fire

    results = asyncio.run(crash())
    gw.proc.wait()
    assert len(upstream.received) == 210 and results.count("ok") < 200
    before = gw.calls()
    assert 10 <= len(before) <= 210
    # restart on the same spool and journal: 200 orphaned reservations are held...
    gw.start()
    ch = [Charge(Budget(name="all", limit=Decimal(1000), window=Window.parse("day")), "")]
    time.sleep(3.2)  # ...until reservation_ttl (3 s) passes
    assert asyncio.run(_fire(gw.url, 5, 2, 0)) == ["ok"] * 5
    time.sleep(0.5)
    gw.stop()
    calls = gw.calls()
    ids = [c.request_id for c in calls]
    assert len(ids) == len(set(ids)) == len(before) + 5  # nothing written twice
    led = MemoryLedger(journal)
    st = led.states(ch)[0]
    assert st.held == 0  # orphans expired
    spent = sum((default_pricebook().total_usd(c.usage, c.model, c.provider, c.ts)
                 for c in calls), Decimal(0))
    # every recorded call was settled in the ledger; calls cut by the crash were never
    # settled (their holds expired), so ledger spend == recorded spend
    assert abs(st.spent - spent) <= Decimal("0.000000001") * len(calls)
    led.close()
    # the store is readable: ingest + report
    out = subprocess.run([sys.executable, "-m", "ctxbudget.cli.main", "ingest", "--json"],
                         capture_output=True, text=True, env=gw.env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["rejected"] == 0
    rep = subprocess.run([sys.executable, "-m", "ctxbudget.cli.main", "report", "--json"],
                         capture_output=True, text=True, env=gw.env)
    assert rep.returncode == 0, rep.stderr


def test_sigterm_finishes_in_flight_streams_and_flushes(upstream: FakeUpstream,
                                                        gateway_factory: Any,
                                                        tmp_path: Path) -> None:
    cfg = base_config(upstream, budget_store=str(tmp_path / "j"), budgets=[BUDGET])
    gw = gateway_factory(cfg)

    async def run() -> list[str]:
        fire = asyncio.ensure_future(_fire(gw.url, 20, 40, 25))  # ~1 s streams
        while len(upstream.received) < 20:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGTERM)
        return await fire

    results = asyncio.run(run())
    # uvicorn re-raises SIGTERM once its graceful shutdown is done
    assert gw.proc is not None and gw.proc.wait(30) in (0, -signal.SIGTERM)
    assert results == ["ok"] * 20  # every stream ran to its end
    calls = gw.calls()
    assert len(calls) == 20 and all(c.usage.output_tokens == 40 for c in calls)
    led = MemoryLedger(tmp_path / "j")
    st = led.states([Charge(Budget(name="all", limit=Decimal(1000),
                                   window=Window.parse("day")), "")])[0]
    assert st.held == 0 and st.spent > 0
    led.close()
