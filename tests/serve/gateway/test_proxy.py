"""The real anthropic and openai SDKs through ``ctxbudget gateway`` to the fake upstream:
bytes unchanged both ways (streams included), every call recorded with its buckets."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx2 as httpx
import pytest
from fake_upstream import FakeUpstream

from conftest import base_config
from ctxbudget.prices import default_pricebook


class Tee:
    """Records the request bodies an SDK sends and the exact response bytes it reads."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.responses: list[bytearray] = []

    def _track(self, request: httpx.Request) -> bytearray:
        self.requests.append(request.read())
        buf = bytearray()
        self.responses.append(buf)
        return buf


class SyncTee(httpx.HTTPTransport):
    def __init__(self, tee: Tee) -> None:
        super().__init__()
        self.tee = tee

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        buf = self.tee._track(request)
        resp = super().handle_request(request)
        inner = resp.stream

        class S(httpx.SyncByteStream):
            def __iter__(self) -> Iterator[bytes]:
                for c in inner:  # type: ignore[union-attr]
                    buf.extend(c)
                    yield c

            def close(self) -> None:
                inner.close()  # type: ignore[union-attr]

        return httpx.Response(resp.status_code, headers=resp.headers, stream=S(),
                              extensions=resp.extensions, request=request)


class AsyncTee(httpx.AsyncHTTPTransport):
    def __init__(self, tee: Tee) -> None:
        super().__init__()
        self.tee = tee

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        buf = self.tee._track(request)
        resp = await super().handle_async_request(request)
        inner = resp.stream

        class S(httpx.AsyncByteStream):
            async def __aiter__(self) -> Any:
                async for c in inner:  # type: ignore[union-attr]
                    buf.extend(c)
                    yield c

            async def aclose(self) -> None:
                await inner.aclose()  # type: ignore[union-attr]

        return httpx.Response(resp.status_code, headers=resp.headers, stream=S(),
                              extensions=resp.extensions, request=request)


def test_sdks_bytes_unchanged_and_recorded(upstream: FakeUpstream, gateway_factory: Any) -> None:
    import anthropic
    import openai

    gw = gateway_factory(base_config(upstream))
    tee = Tee()
    hdr = {"X-Ctxbudget-Task": "t-1", "X-Ctxbudget-Type": "review"}
    a = anthropic.Anthropic(base_url=gw.url, api_key="sk-ant-test", max_retries=0,
                            http_client=httpx.Client(transport=SyncTee(tee)),
                            default_headers=hdr)
    o = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-oai-test", max_retries=0,
                      http_client=httpx.Client(transport=SyncTee(tee)), default_headers=hdr)
    msgs: Any = [{"role": "user", "content": "Hello, \u00e9t\u00e9 \u2603"}]
    # Anthropic Messages: plain, streamed (create) and streamed (helper)
    m = a.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=msgs)
    assert m.usage.output_tokens == 5 and m.usage.cache_read_input_tokens == 200
    chunks = list(a.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=msgs,
                                    stream=True))
    assert chunks[-1].type == "message_stop"
    with a.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=msgs,
                           extra_headers={"x-fake-chunks": "9"}) as s:
        assert s.get_final_message().usage.output_tokens == 9
    # OpenAI: chat plain, streamed with and without include_usage, Responses, embeddings
    c = o.chat.completions.create(model="gpt-4o", messages=msgs, max_tokens=32)
    assert c.usage is not None and c.usage.prompt_tokens == 89
    last = list(o.chat.completions.create(model="gpt-4o", messages=msgs, stream=True,
                                          stream_options={"include_usage": True}))[-1]
    assert last.usage is not None and last.usage.completion_tokens == 5
    text = "".join(ch.choices[0].delta.content or "" for ch in o.chat.completions.create(
        model="gpt-4o", messages=msgs, stream=True, extra_headers={"x-fake-chunks": "7"})
        if ch.choices)
    assert text == "word " * 7
    r = o.responses.create(model="gpt-4o", input="hi", max_output_tokens=20)
    assert r.usage is not None and r.usage.output_tokens == 5
    evs = list(o.responses.create(model="gpt-4o", input="hi", stream=True))
    assert evs[-1].type == "response.completed"
    e = o.embeddings.create(model="text-embedding-3-small", input=["a b c"])
    assert e.usage.prompt_tokens == 25
    # async clients
    async def run_async() -> None:
        aa = anthropic.AsyncAnthropic(base_url=gw.url, api_key="sk-ant-test", max_retries=0,
                                      http_client=httpx.AsyncClient(transport=AsyncTee(tee)))
        ao = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="sk-oai-test",
                                max_retries=0,
                                http_client=httpx.AsyncClient(transport=AsyncTee(tee)))
        stream = await aa.messages.create(model="claude-haiku-4-5", max_tokens=16,
                                          messages=msgs, stream=True)
        assert [ev.type async for ev in stream][-1] == "message_stop"
        cc = await ao.chat.completions.create(model="gpt-4o-mini", messages=msgs)
        assert cc.choices[0].message.content == "word word word word word"
        await aa.close()
        await ao.close()

    asyncio.run(run_async())
    a.close()
    o.close()
    n = 11
    assert len(tee.requests) == len(upstream.received) == len(upstream.sent) == n
    for i in range(n):
        assert upstream.received[i].body == tee.requests[i], i  # the provider got our bytes
        assert bytes(tee.responses[i]) == upstream.sent[i], i  # we got the provider's bytes
        h = {k.lower(): v for k, v in upstream.received[i].headers.items()}
        assert not any(k.startswith("x-ctxbudget-") for k in h)
        assert h.get("x-api-key", h.get("authorization", "")).endswith(
            ("sk-ant-test", "sk-oai-test"))
    gw.stop()  # graceful: flushes the spool
    calls = gw.calls()
    assert len(calls) == n
    by = {}
    for call in calls:
        by.setdefault((call.model, call.meta["api"], bool(call.meta.get("stream"))),
                      []).append(call)
    plain = by[("claude-sonnet-4-5", "anthropic", False)][0]
    assert (plain.usage.input_tokens, plain.usage.cache_write_5m_tokens,
            plain.usage.cache_read_tokens, plain.usage.output_tokens) == (25, 100, 200, 5)
    assert plain.task_id == "t-1" and plain.task_type == "review"
    assert plain.source == "gateway" and plain.status == "ok"
    assert plain.request_id and plain.request_id.startswith("msg_")
    assert plain.meta["key_id"] and "sk-ant-test" not in json.dumps(dict(plain.meta))
    assert plain.prefix_fingerprint and len(plain.prefix_fingerprint) == 1
    streamed = sorted(c.usage.output_tokens for c in by[("claude-sonnet-4-5", "anthropic",
                                                         True)])
    assert streamed == [5, 9]
    assert all(c.meta["usage_source"] == "response" and "ttft_ms" in c.meta
               for c in by[("claude-sonnet-4-5", "anthropic", True)])
    chat_streams = by[("gpt-4o", "openai-chat", True)]
    with_usage = next(c for c in chat_streams if c.meta["usage_source"] == "response")
    assert (with_usage.usage.input_tokens, with_usage.usage.cache_read_tokens,
            with_usage.usage.output_tokens) == (25, 64, 5)
    counted = next(c for c in chat_streams if c.meta["usage_source"] == "counted")
    from ctxbudget.tokens import count_tokens

    assert counted.usage.output_tokens == count_tokens("word " * 7, "gpt-4o").tokens > 0
    assert counted.usage.input_tokens == counted.meta["estimate"]["prompt_tokens"] > 0
    resp = by[("gpt-4o", "openai-responses", True)][0]
    assert (resp.usage.input_tokens, resp.usage.cache_read_tokens) == (25, 32)
    emb = by[("text-embedding-3-small", "openai-embeddings", False)][0]
    assert emb.usage.input_tokens == 25 and emb.usage.output_tokens == 0
    # ctxbudget report reads them unchanged
    out = subprocess.run([sys.executable, "-m", "ctxbudget.cli.main", "report", "--by", "model",
                          "--json"], capture_output=True, text=True, env=gw.env, check=True)
    rep = json.loads(out.stdout)
    rows = {r["key"]: r for r in rep["rows"]}
    assert sum(r["calls"] for r in rows.values()) == n
    pb = default_pricebook()
    for model in ("claude-sonnet-4-5", "gpt-4o", "text-embedding-3-small"):
        mine = [c for c in calls if c.model == model]
        assert rows[model]["calls"] == len(mine)
        want = sum((pb.total_usd(c.usage, c.model, c.provider, c.ts) for c in mine),
                   Decimal(0))
        assert Decimal(rows[model]["cost_usd"]) == want > 0
        assert rows[model]["output_tokens"] == sum(c.usage.output_tokens for c in mine)
        assert rows[model]["unpriced_calls"] == 0


def test_errors_and_passthrough(upstream: FakeUpstream, gateway_factory: Any) -> None:
    gw = gateway_factory(base_config(upstream))
    with httpx.Client(base_url=gw.url) as c:
        r = c.post("/v1/messages", content=b'{"model":"claude-sonnet-4-5","max_tokens":5,'
                   b'"messages":[]}', headers={"x-fake-status": "529", "x-api-key": "k"})
        assert r.status_code == 529 and r.headers["retry-after"] == "7"
        assert r.json()["error"]["type"] == "overloaded_error"
        r = c.post("/v1/messages/count_tokens", content=b'{"model":"x","messages":[]}')
        assert r.json() == {"input_tokens": 42}
        assert r.headers["anthropic-ratelimit-requests-remaining"] == "999"
        assert c.get("/nope").status_code == 404
        r = c.post("/v1/messages", content=b"{not json")
        assert r.status_code == 400 and r.json()["type"] == "error"
        assert c.get("/healthz").json() == {"status": "ok"}
        metrics = c.get("/metrics").text
        assert 'ctxbudget_gateway_requests_total{upstream="anthropic",route="/v1/messages",' \
               'status="529"} 1' in metrics
        assert "ctxbudget_gateway_upstream_seconds_bucket" in metrics
    gw.stop()
    calls = gw.calls()
    assert len(calls) == 1 and calls[0].status == "error"
    assert calls[0].meta["http_status"] == 529


@pytest.fixture(autouse=True)
def _tiktoken_env() -> None:
    assert os.environ.get("TIKTOKEN_CACHE_DIR")
