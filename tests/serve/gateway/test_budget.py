"""Budgets in the request path: 64 concurrent streaming clients against a $1.00 daily
budget (one gateway on the embedded ledger; two gateways sharing Redis), the calendar
reset with an injected clock, client aborts, soft limits."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from fake_upstream import FakeUpstream

from conftest import base_config
from ctxbudget.budgets import MemoryLedger
from ctxbudget.prices import default_pricebook
from ctxbudget.serve.gateway import GatewayConfig, build_app

MODEL = "claude-sonnet-4-5"
BUDGET = {"name": "team-daily", "match": {"key": "sk-team-*"}, "limit_usd": "1.00",
          "window": "day", "timezone": "UTC"}


def _priced(calls: list[Any]) -> Decimal:
    pb = default_pricebook()
    return sum((pb.total_usd(c.usage, c.model, c.provider, c.ts) for c in calls), Decimal(0))


async def _hammer(urls: list[str], clients: int = 64) -> dict[str, Any]:
    import anthropic

    stats: dict[str, Any] = {"ok": 0, "blocked": 0, "bodies": set(), "reservations": []}

    async def client(i: int) -> None:
        c = anthropic.AsyncAnthropic(base_url=urls[i % len(urls)], api_key=f"sk-team-{i}",
                                     max_retries=0)
        blocks = 0
        try:
            while blocks < 4:
                try:
                    stream = await c.messages.create(
                        model=MODEL, max_tokens=2000, stream=True,
                        messages=[{"role": "user", "content": f"client {i} says hi"}],
                        extra_headers={"x-fake-chunks": "5", "x-fake-delay-ms": "4",
                                       "x-fake-output-tokens": "1000"})
                    async for _ in stream:
                        pass
                    stats["ok"] += 1
                    blocks = 0
                except anthropic.RateLimitError as exc:
                    body = exc.body if isinstance(exc.body, dict) else {}
                    stats["bodies"].add(json.dumps(body.get("error", {}).get("type")))
                    assert exc.response.headers["x-ctxbudget-budget"] == "team-daily"
                    assert "x-ctxbudget-remaining-usd" in exc.response.headers
                    assert exc.response.headers["x-ctxbudget-reset"].startswith(
                        (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d"))
                    stats["blocked"] += 1
                    blocks += 1
                    await asyncio.sleep(0.05)
        finally:
            await c.close()

    await asyncio.gather(*[client(i) for i in range(clients)])
    return stats


def _check_overrun(calls: list[Any], stats: dict[str, Any]) -> None:
    reservation = max(Decimal(c.meta["estimate"]["usd"]) for c in calls)
    spent = _priced(calls)
    assert len(calls) == stats["ok"] > 30
    assert stats["bodies"] == {'"budget_exceeded"'}
    # never more than one reservation above the limit; and the limit was used up
    assert Decimal("1.00") - reservation < spent <= Decimal("1.00") + reservation
    assert spent <= Decimal("1.00")  # actual <= reservation for a priced model here


def test_64_streaming_clients_one_gateway(upstream: FakeUpstream, gateway_factory: Any,
                                          tmp_path: Path) -> None:
    gw = gateway_factory(base_config(upstream, budget_store=str(tmp_path / "b.journal"),
                                     budgets=[BUDGET]))
    upstream.record = False
    stats = asyncio.run(_hammer([gw.url]))
    gw.stop()
    _check_overrun(gw.calls(), stats)
    led = MemoryLedger(tmp_path / "b.journal")  # the journal agrees with the records
    from ctxbudget.budgets import Budget, Charge, Window

    st = led.states([Charge(Budget(name="team-daily", limit=Decimal(1),
                                   window=Window.parse("day")), "")])[0]
    assert st.held == 0 and abs(st.spent - _priced(gw.calls())) < Decimal("0.000001") * 100
    led.close()


def test_64_streaming_clients_two_gateways_on_redis(upstream: FakeUpstream,
                                                    gateway_factory: Any,
                                                    redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    cfg = base_config(upstream, budget_store=redis_url, budgets=[BUDGET])
    g1 = gateway_factory(cfg, name="g1")
    g2 = gateway_factory(cfg, name="g2")
    upstream.record = False
    stats = asyncio.run(_hammer([g1.url, g2.url]))
    g1.stop()
    g2.stop()
    calls = g1.calls() + g2.calls()
    assert g1.calls() and g2.calls()  # both gateways served
    _check_overrun(calls, stats)


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def _app(upstream: FakeUpstream, clock: Clock, tmp_path: Path, **extra: Any) -> Any:
    cfg = GatewayConfig.from_dict(base_config(upstream, budgets=[BUDGET], **extra))
    recorded: list[Any] = []
    app = build_app(cfg, ledger=MemoryLedger(tmp_path / "j", clock=clock), clock=clock,
                    recorder=recorded.append)
    return app, recorded


def test_calendar_reset_with_injected_clock(upstream: FakeUpstream, tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 12, 2, 23, 58, tzinfo=UTC))
    app, recorded = _app(upstream, clock, tmp_path)
    body = json.dumps({"model": MODEL, "max_tokens": 20000,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    hdrs = {"x-api-key": "sk-team-a", "x-fake-output-tokens": "20000"}

    async def main() -> list[int]:
        await app.startup()
        codes = []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://gw") as c:
            for _ in range(4):  # $0.30 each (20k output): 3 pass, the 4th would pass $1
                codes.append((await c.post("/v1/messages", content=body, headers=hdrs))
                             .status_code)
            r = await c.post("/v1/messages", content=body, headers=hdrs)
            codes.append(r.status_code)
            assert r.headers["x-ctxbudget-reset"] == "2026-12-03T00:00:00+00:00"
            clock.t = datetime(2026, 12, 3, 0, 0, 1, tzinfo=UTC)  # past midnight UTC
            r = await c.post("/v1/messages", content=body, headers=hdrs)
            codes.append(r.status_code)
            assert r.headers["x-ctxbudget-reset"] == "2026-12-04T00:00:00+00:00"
            # a key the budget does not match is never blocked
            r = await c.post("/v1/messages", content=body, headers={"x-api-key": "sk-other"})
            codes.append(r.status_code)
            assert "x-ctxbudget-budget" not in r.headers
        await app.shutdown()
        return codes

    assert asyncio.run(main()) == [200, 200, 200, 429, 429, 200, 200]
    assert len(recorded) == 5


def test_client_abort_mid_stream_is_recorded_with_usage_so_far(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 12, 2, 12, tzinfo=UTC))
    app, recorded = _app(upstream, clock, tmp_path)
    body = json.dumps({"model": MODEL, "max_tokens": 1000, "stream": True,
                       "messages": [{"role": "user", "content": "tell me a story"}]}).encode()

    async def main() -> int:
        await app.startup()
        got = 0
        hdrs = {"x-api-key": "sk-team-a", "x-fake-chunks": "200", "x-fake-delay-ms": "5"}
        async with httpx.AsyncClient(transport=_StreamingASGI(app), base_url="http://gw") as c, \
                c.stream("POST", "/v1/messages", content=body, headers=hdrs) as r:
            async for chunk in r.aiter_raw():
                got += chunk.count(b"text_delta")
                if got >= 20:
                    break  # the client goes away mid-stream
        for _ in range(100):
            if recorded:
                break
            await asyncio.sleep(0.02)
        await app.shutdown()
        return got

    assert asyncio.run(main()) >= 20
    assert len(recorded) == 1
    call = recorded[0]
    assert call.meta["aborted"] is True and call.meta["usage_source"] == "stream-partial"
    assert call.usage.input_tokens == 25 and call.usage.cache_read_tokens == 200
    assert 20 <= call.usage.output_tokens < 200  # the text received so far, counted
    assert default_pricebook().total_usd(call.usage, MODEL, "anthropic") > 0
    st = app.ledger.states(app._charges(app._who([(b"x-api-key", b"sk-team-a")]),
                                        app.config.upstreams[0], MODEL))[0]
    assert st.held == 0 and st.spent > 0  # settled, never $0


class _StreamingASGI(httpx.AsyncBaseTransport):
    """Runs the ASGI app per request and streams its body as it is sent (httpx's
    ASGITransport buffers the whole response), and reports a client disconnect to the
    app when the response is closed early."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        q: asyncio.Queue[Any] = asyncio.Queue()
        gone = asyncio.Event()
        started: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        sent_body = False

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                started.set_result(msg)
            else:
                await q.put(msg.get("body", b""))
                if not msg.get("more_body"):
                    await q.put(None)

        scope = {"type": "http", "method": request.method, "path": request.url.path,
                 "query_string": request.url.query, "headers": [
                     (k.lower(), v) for k, v in request.headers.raw], "http_version": "1.1",
                 "scheme": "http", "asgi": {"version": "3.0"}}
        task = asyncio.ensure_future(self.app(scope, receive, send))
        task.add_done_callback(lambda _: q.put_nowait(None))  # returned without completing
        start = await started

        class Body(httpx.AsyncByteStream):
            async def __aiter__(self) -> Any:
                while True:
                    c = await q.get()
                    if c is None:
                        return
                    yield c

            async def aclose(self) -> None:
                gone.set()
                await asyncio.wait([task], timeout=5)

        return httpx.Response(start["status"], headers=start["headers"], stream=Body())


def test_soft_budget_alerts_without_blocking(upstream: FakeUpstream, tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 12, 2, 12, tzinfo=UTC))
    soft = {"name": "warn", "limit_usd": "0.01", "window": "day", "soft": True}
    cfg = GatewayConfig.from_dict(base_config(upstream, budgets=[soft],
                                              alert_webhook=upstream.url + "/hook"))
    app = build_app(cfg, ledger=MemoryLedger(None, clock=clock), clock=clock,
                    recorder=lambda c: None)
    body = json.dumps({"model": MODEL, "max_tokens": 1000,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()

    async def main() -> list[int]:
        await app.startup()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://gw") as c:
            codes = [(await c.post("/v1/messages", content=body)).status_code
                     for _ in range(2)]
        await app.shutdown()
        return codes

    assert asyncio.run(main()) == [200, 200]
    hooks = [r for r in upstream.received if r.path == "/hook"]
    assert len(hooks) == 2 and json.loads(hooks[0].body)["event"] == "soft_budget_exceeded"
    assert app.metrics.alerts == 2


@pytest.mark.parametrize("fail,code", [("closed", 503), ("open", 200)])
def test_budget_store_unreachable(upstream: FakeUpstream, fail: str, code: int) -> None:
    from ctxbudget.budgets import RedisLedger

    cfg = GatewayConfig.from_dict(base_config(upstream, budgets=[BUDGET], fail=fail))
    app = build_app(cfg, ledger=RedisLedger("redis://127.0.0.1:9/0", socket_timeout=0.5),
                    recorder=lambda c: None)
    body = json.dumps({"model": MODEL, "max_tokens": 10,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()

    async def main() -> int:
        await app.startup()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://gw") as c:
            r = await c.post("/v1/messages", content=body, headers={"x-api-key": "sk-team-1"})
        await app.shutdown()
        return r.status_code

    assert asyncio.run(main()) == code


def test_body_limit_and_upstream_timeout(upstream: FakeUpstream) -> None:
    cfg = GatewayConfig.from_dict(base_config(upstream, max_body_bytes=1000,
                                              upstream_timeout=0.3))
    recorded: list[Any] = []
    app = build_app(cfg, recorder=recorded.append)
    small = json.dumps({"model": MODEL, "max_tokens": 10, "stream": True,
                        "messages": [{"role": "user", "content": "hi"}]}).encode()

    async def main() -> tuple[int, int, str, bytes]:
        await app.startup()
        async with httpx.AsyncClient(transport=_StreamingASGI(app), base_url="http://gw") as c:
            big = await c.post("/v1/messages", content=b"x" * 1001)
            async with c.stream("POST", "/v1/messages", content=small, headers={
                    "x-fake-delay-ms": "500", "x-fake-chunks": "3"}) as slow:
                got = b"".join([x async for x in slow.aiter_raw()])
        await app.shutdown()
        return big.status_code, slow.status_code, big.json()["error"]["type"], got

    big, slow, kind, got = asyncio.run(main())
    assert big == 413 and kind == "request_too_large"
    # the stream had started (200) when the upstream went quiet for longer than
    # upstream_timeout: the response ends there (never completed: the client sees a cut
    # stream) and the call is recorded as cut short
    assert slow == 200 and b"message_stop" not in got
    assert len(recorded) == 1 and recorded[0].meta["aborted"] is True
    assert "Timeout" in recorded[0].meta["error"]


def test_unreachable_upstream_releases_the_reservation(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    calls_budget = {"name": "calls", "limit_calls": 5, "window": "day"}
    cfg = GatewayConfig.from_dict({"upstreams": {"anthropic": {"base_url": dead}},
                                   "budgets": [calls_budget]})
    recorded: list[Any] = []
    led = MemoryLedger(None)
    app = build_app(cfg, ledger=led, recorder=recorded.append)
    body = json.dumps({"model": MODEL, "max_tokens": 10,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()

    async def main() -> list[int]:
        await app.startup()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://gw") as c:
            codes = [(await c.post("/v1/messages", content=body)).status_code
                     for _ in range(7)]
        await app.shutdown()
        return codes

    assert asyncio.run(main()) == [502] * 7  # never blocked: nothing was charged
    st = led.states(app._charges(app._who([]), cfg.upstreams[0], MODEL))[0]
    assert st.spent == 0 and st.held == 0
    assert len(recorded) == 7 and all(c.status == "error" for c in recorded)
