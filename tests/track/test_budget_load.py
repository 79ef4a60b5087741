"""Budgets that bind under concurrency, streams without usage, dropped streams and SDK
retries (issue #18, point 8; the bound is in docs/budgets.md, "Overrun bound")."""

from __future__ import annotations

import gc
import json
import math
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fakeapi import FakeAPI
from track_helpers import closing, recorded

import ctxbudget
import ctxbudget.track as tr
from ctxbudget.errors import BudgetExceeded
from ctxbudget.track import _budget

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

O_MODEL = "gpt-4o"
A_MODEL = "claude-sonnet-4-5"
MSG = [{"role": "user", "content": "Please explain what Python is."}]


class InflatingChatAPI:
    """A local OpenAI Chat Completions endpoint whose reported prompt tokens are ``ratio``
    times the tracker's own pre-call estimate of the request (what a miscounted prompt or
    unseen cache writes do to a budget). Each response takes ``delay`` seconds, so calls
    from many threads overlap."""

    def __init__(self, ratio: float, delay: float = 0.02) -> None:
        self.ratio = ratio
        self.delay = delay
        self.estimates: list[int] = []
        self.ratios: list[float] = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                est = _budget.estimate_request("openai", "openai-chat", body["model"], body)
                prompt = math.ceil(est.usage.prompt_tokens * api.ratio)
                with api.lock:
                    api.estimates.append(est.usage.prompt_tokens)
                    api.ratios.append(prompt / max(1, est.usage.prompt_tokens))
                time.sleep(api.delay)
                payload = json.dumps({
                    "id": "chatcmpl-load", "object": "chat.completion", "created": 1,
                    "model": "gpt-4o-2024-08-06",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "ok"}}],
                    "usage": {"prompt_tokens": prompt, "completion_tokens": 5,
                              "total_tokens": prompt + 5},
                }).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def inflating() -> Iterator[InflatingChatAPI]:
    api = InflatingChatAPI(ratio=1.5)
    yield api
    api.close()


def test_16_threads_under_max_input_tokens_overrun_within_the_bound(
        inflating: InflatingChatAPI, spool: Path) -> None:
    """Responses 1.5x the estimate, 16 threads in one task: the overrun is at most
    (ratio - 1) x min(cap, threads x largest reservation) (docs/budgets.md)."""
    client = ctxbudget.track(closing(openai.OpenAI(base_url=inflating.url, api_key="t",
                                                   max_retries=0)))
    cap, threads = 10_000, 16
    # ~300 prompt tokens a call: the cap allows ~22 calls at the reported size
    msgs = [{"role": "user", "content": "tokens and budgets " * 100}]
    blocked = [0] * threads
    sent = [0] * threads

    def worker(k: int) -> None:
        while True:
            try:
                client.chat.completions.create(model=O_MODEL, messages=msgs, max_tokens=16)
            except BudgetExceeded:
                blocked[k] += 1
                return
            sent[k] += 1

    with ctxbudget.task("load", max_input_tokens=cap) as t:
        pool = [threading.Thread(target=ctxbudget.track.propagate(worker), args=(k,))
                for k in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
    reservation = max(inflating.estimates)
    ratio = max(inflating.ratios)  # 1.5, a hair more where ceil() rounded up
    bound = (ratio - 1) * min(cap, threads * reservation)
    overrun = t.input_tokens - cap
    print(f"\n16 threads, cap {cap}, reservation {reservation}: spent {t.input_tokens}, "
          f"overrun {overrun} (bound {bound:.0f}), calls {t.calls}")
    assert sum(blocked) == threads  # every thread was stopped by the cap
    assert t.calls == sum(sent) == len(inflating.estimates)
    assert overrun <= bound
    assert t.reserved_input_tokens == 0 and t.reserved_calls == 0  # all settled
    assert t.overrun  # the 1.5x responses did pass the cap: the bound is what held


@pytest.mark.parametrize("cap_kind", ["max_input_tokens", "max_cost_usd"])
def test_openai_streams_without_usage_stop_at_the_cap(api: FakeAPI, spool: Path,
                                                      cap_kind: str) -> None:
    client = ctxbudget.track(closing(openai.OpenAI(base_url=api.url + "/v1", api_key="t",
                                                   max_retries=0)))
    kw: dict[str, Any] = {"model": O_MODEL, "messages": MSG, "max_tokens": 64, "stream": True}
    est = _budget.estimate_request("openai", "openai-chat", O_MODEL, kw)
    assert est.cost_usd is not None
    # room for exactly 5 calls at their reservation
    caps: dict[str, Any] = {"max_input_tokens": 5 * est.usage.prompt_tokens,
                            "max_cost_usd": 5 * est.cost_usd}
    sent = 0
    with ctxbudget.task("streams", **{cap_kind: caps[cap_kind]}) as t:
        for _ in range(50):
            try:
                stream = client.chat.completions.create(**kw)
            except BudgetExceeded as e:
                assert e.phase == "pre-call"
                break
            for _ch in stream:
                pass
            sent += 1
    assert sent == 5 and len(api.requests) == 5
    assert t.input_tokens == 5 * est.usage.prompt_tokens
    assert t.spent_usd == 5 * est.cost_usd and not t.overrun
    calls, _ = recorded(spool)
    assert len(calls) == 5
    for c in calls:
        assert c.meta is not None and c.meta["usage_missing"] is True
        assert c.meta["usage_estimated"] == "reservation"
        assert c.usage == est.usage


def test_dropped_stream_is_settled_when_collected(api: FakeAPI, spool: Path) -> None:
    a = ctxbudget.track(closing(anthropic.Anthropic(base_url=api.url, api_key="t",
                                                    max_retries=0)))
    with ctxbudget.task("drop", max_calls=10, max_input_tokens=10**6) as t:
        s = a.messages.create(model=A_MODEL, max_tokens=64, messages=MSG, stream=True)
        next(iter(s))  # message_start: input usage known
        assert t.reserved_calls == 1 and t.calls == 0
        s.response.close()  # the app walks away without closing the proxy
        del s
        gc.collect()
        tr.flush()  # a safe point: queued settlements run here (or at the next call)
        assert t.reserved_calls == 0 and t.reserved_input_tokens == 0
        assert t.calls == 1
    (c,), _ = recorded(spool)
    assert c.meta is not None and c.meta["stream_dropped"] is True
    assert c.meta["stream_incomplete"] is True
    assert c.usage.input_tokens > 0 and t.input_tokens == c.usage.prompt_tokens


def test_dropped_openai_stream_without_usage_is_charged_its_reservation(
        api: FakeAPI, spool: Path) -> None:
    o = ctxbudget.track(closing(openai.OpenAI(base_url=api.url + "/v1", api_key="t",
                                              max_retries=0)))
    kw: dict[str, Any] = {"model": O_MODEL, "messages": MSG, "max_tokens": 64, "stream": True}
    est = _budget.estimate_request("openai", "openai-chat", O_MODEL, kw)
    with ctxbudget.task("drop-o", max_cost_usd="1") as t:
        s = o.chat.completions.create(**kw)
        s.response.close()
        del s
        gc.collect()
        o.chat.completions.create(model=O_MODEL, messages=MSG)  # next call: a safe point
    assert t.calls == 2 and t.reserved_calls == 0 and t.reserved_usd == 0
    calls, _ = recorded(spool)
    dropped = [c for c in calls if c.meta and c.meta.get("stream_dropped")]
    assert len(dropped) == 1 and dropped[0].usage == est.usage


def test_stream_helper_never_entered_releases_its_reservation(api: FakeAPI,
                                                              spool: Path) -> None:
    a = ctxbudget.track(closing(anthropic.Anthropic(base_url=api.url, api_key="t",
                                                    max_retries=0)))
    with ctxbudget.task("never", max_calls=1) as t:
        mgr = a.messages.stream(model=A_MODEL, max_tokens=64, messages=MSG)
        assert t.reserved_calls == 1
        del mgr
        gc.collect()
        tr.flush()
        assert t.reserved_calls == 0 and t.calls == 0
        with a.messages.stream(model=A_MODEL, max_tokens=64, messages=MSG) as s:
            s.until_done()  # the cap's one call is still available
    assert t.calls == 1 and api.requests and len(api.requests) == 1
    calls, _ = recorded(spool)
    assert len(calls) == 1


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_sdk_retries_count_as_attempts(api: FakeAPI, spool: Path, sdk: str) -> None:
    if sdk == "openai":
        client = ctxbudget.track(closing(openai.OpenAI(base_url=api.url + "/v1",
                                                       api_key="t", max_retries=2)))
        api.fail_next("openai-chat", 500)

        def call() -> Any:
            return client.chat.completions.create(model=O_MODEL, messages=MSG)
    else:
        client = ctxbudget.track(closing(anthropic.Anthropic(base_url=api.url, api_key="t",
                                                             max_retries=2)))
        api.fail_next("anthropic", 529)

        def call() -> Any:
            return client.messages.create(model=A_MODEL, max_tokens=64, messages=MSG)

    with ctxbudget.task("retries", max_calls=3) as t:
        call()  # one failed attempt, retried by the SDK, then a success
        assert t.calls == 2
        call()  # one attempt: 3 calls, the cap
        with pytest.raises(BudgetExceeded) as ei:
            call()
    assert (ei.value.metric, ei.value.spent) == ("calls", 3)
    assert len(api.requests) == 3
    calls, _ = recorded(spool)
    assert [c.meta.get("attempts") if c.meta else None for c in calls] == [2, None]


def test_cost_cap_with_unknown_usage_still_counts_decimal(api: FakeAPI, spool: Path) -> None:
    """The reservation charged for a stream without usage is the same Decimal the
    pre-call check projected (one pricing path)."""
    o = ctxbudget.track(closing(openai.OpenAI(base_url=api.url + "/v1", api_key="t",
                                              max_retries=0)))
    kw: dict[str, Any] = {"model": O_MODEL, "messages": MSG, "max_tokens": 10, "stream": True}
    est = _budget.estimate_request("openai", "openai-chat", O_MODEL, kw)
    with ctxbudget.task("dec", max_cost_usd=Decimal(1)) as t:
        for _ch in o.chat.completions.create(**kw):
            pass
    assert isinstance(t.spent_usd, Decimal) and t.spent_usd == est.cost_usd


def test_async_client_retries_and_dropped_stream(api: FakeAPI, spool: Path) -> None:
    import asyncio

    async def main() -> tuple[int, int]:
        o = ctxbudget.track(openai.AsyncOpenAI(base_url=api.url + "/v1", api_key="t",
                                               max_retries=1))
        try:
            with ctxbudget.task("async", max_calls=10) as t:
                api.fail_next("openai-chat", 500)
                await o.chat.completions.create(model=O_MODEL, messages=MSG)
                s = await o.chat.completions.create(model=O_MODEL, messages=MSG, stream=True,
                                                    stream_options={"include_usage": True})
                await s.__anext__()
                await s.response.aclose()
                del s
                gc.collect()
                tr.flush()
                return t.calls, t.reserved_calls
        finally:
            await o.close()

    assert asyncio.run(main()) == (3, 0)  # 2 attempts + the dropped stream, none held
    calls, _ = recorded(spool)
    assert [c.meta.get("attempts") for c in calls if c.meta] == [2, None]
    assert calls[1].meta is not None and calls[1].meta["stream_dropped"] is True
