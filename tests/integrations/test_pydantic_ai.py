"""pydantic-ai agent runs (run_sync, run, run_stream) with the real package against the local
fake API (OpenAI Chat Completions and Anthropic Messages recordings)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeapi import FakeAPI
from helpers import assert_same_as_adapter
from track_helpers import recorded

import ctxbudget
from ctxbudget.adapters import from_anthropic, from_openai_chat
from ctxbudget.usage import Usage

pytest.importorskip("pydantic_ai")


# run_sync leaves its event loops unclosed (pydantic-ai): collected here, under these filters
pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


@pytest.fixture(autouse=True)
def _collect() -> Iterator[None]:
    yield
    close_sync_loop()
    gc.collect()


def no_pool() -> Any:
    """An HTTP client that keeps no connection open: run_sync runs each run in its own
    event loop, and a pooled connection would outlive it (a ResourceWarning later)."""
    import httpx2  # the HTTP client the SDKs use

    return httpx2.AsyncClient(limits=httpx2.Limits(max_keepalive_connections=0))


def _core(u: Usage) -> Usage:
    """The token buckets (pydantic-ai does not say whether audio detail was reported)."""
    return Usage(input_tokens=u.input_tokens, cache_read_tokens=u.cache_read_tokens,
                 cache_write_5m_tokens=u.cache_write_5m_tokens,
                 cache_write_1h_tokens=u.cache_write_1h_tokens, output_tokens=u.output_tokens,
                 reasoning_tokens=u.reasoning_tokens)


def _openai_agent(api: FakeAPI, name: str | None = None) -> tuple[Any, dict[str, Any]]:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    from ctxbudget.integrations.pydantic_ai import track_agent

    body = api.recorded("openai-chat")[0]
    model = OpenAIChatModel(body["model"], provider=OpenAIProvider(
        base_url=api.url + "/v1", api_key="test", http_client=no_pool()))
    return track_agent(Agent(model, name=name)), body


def _check(call: Any, adapted: Any, provider: str, model: str) -> None:
    import dataclasses

    want = dataclasses.replace(adapted, usage=_core(adapted.usage))
    got = dataclasses.replace(call, usage=_core(call.usage))
    assert_same_as_adapter(got, want, provider=provider, model=model)


def test_run_sync_run_and_stream(api: FakeAPI, spool: Path) -> None:
    agent, body = _openai_agent(api)
    for _ in range(3):
        api.respond_next("openai-chat", body)
    with ctxbudget.task("pa-1", type="qa"):
        r = agent.run_sync("hi")
        assert r.output

        async def run() -> None:
            await agent.run("hi")
            async with agent.run_stream("hi") as s:
                async for _ in s.stream_text():
                    pass

        asyncio.run(run())
    calls, _ = recorded(spool)
    assert len(calls) == 3
    for c in calls:
        _check(c, from_openai_chat(body), "openai", body["model"])
        assert (c.task_id, c.task_type) == ("pa-1", "qa")
        assert c.source == "pydantic-ai"
        assert c.meta == {"agent_requests": 1}
    assert calls[0].request_id == body["id"]


def test_run_stream_sync_and_run_stream_events(api: FakeAPI, spool: Path) -> None:
    """The other streaming entry points go through the tracked run_stream / run."""
    agent, body = _openai_agent(api)
    for _ in range(2):
        api.respond_next("openai-chat", body)
    with ctxbudget.task("pa-streams"):
        # recorded when the stream is closed, as pydantic-ai documents its use
        with agent.run_stream_sync("hi") as s:
            assert "".join(s.stream_text(delta=True))

        async def run() -> int:
            n = 0
            async with agent.run_stream_events("hi") as events:
                async for _ in events:
                    n += 1
            return n

        assert asyncio.run(run()) > 0
    calls, _ = recorded(spool)
    assert len(calls) == 2
    for c in calls:
        _check(c, from_openai_chat(body), "openai", body["model"])
        assert c.task_id == "pa-streams"
    # the streamed requests asked for usage (pydantic-ai sets include_usage)
    assert all(b["stream_options"] == {"include_usage": True}
               for _, _, b in api.requests)


def test_run_is_the_task_without_one(api: FakeAPI, spool: Path) -> None:
    agent, body = _openai_agent(api, name="support-agent")
    api.respond_next("openai-chat", body)
    result = agent.run_sync("hi")
    (c,), _ = recorded(spool)
    assert c.task_id == f"pydantic-ai:{result.run_id}"
    assert c.task_type == "support-agent"


def test_anthropic_cache_buckets(api: FakeAPI, spool: Path) -> None:
    """Anthropic's exclusive input + cache writes / reads, via pydantic-ai's inclusive
    RequestUsage, land in the same disjoint buckets as our Anthropic adapter."""
    from pydantic_ai import Agent
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.providers.anthropic import AnthropicProvider

    from ctxbudget.integrations.pydantic_ai import record_run

    bodies = api.recorded("anthropic")
    model = AnthropicModel(bodies[0]["model"], provider=AnthropicProvider(
        base_url=api.url, api_key="test", http_client=no_pool()))
    agent = Agent(model)
    with ctxbudget.task("pa-anthropic"):
        for _ in bodies:
            assert record_run(agent.run_sync("hi")) == 1
    calls, _ = recorded(spool)
    assert len(calls) == len(bodies)
    for c, b in zip(calls, bodies, strict=True):
        _check(c, from_anthropic(b), "anthropic", b["model"])
    assert sum(c.usage.cache_write_5m_tokens for c in calls) > 0
    assert sum(c.usage.cache_read_tokens for c in calls) > 0


def test_anthropic_run_stream_cache_buckets(api: FakeAPI, spool: Path) -> None:
    """Streamed: pydantic-ai merges message_start (input, cache) and message_delta (output)
    usage; the recorded buckets equal our adapter's on the whole response."""
    from pydantic_ai import Agent
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.providers.anthropic import AnthropicProvider

    from ctxbudget.integrations.pydantic_ai import track_agent

    bodies = api.recorded("anthropic")
    model = AnthropicModel(bodies[0]["model"], provider=AnthropicProvider(
        base_url=api.url, api_key="test", http_client=no_pool()))
    agent = track_agent(Agent(model, name="streamer"))

    async def run() -> None:
        for _ in bodies:
            async with agent.run_stream("hi") as s:
                async for _ in s.stream_text():
                    pass

    with ctxbudget.task("pa-anthropic-stream"):
        asyncio.run(run())
    calls, _ = recorded(spool)
    assert len(calls) == len(bodies)
    for c, b in zip(calls, bodies, strict=True):
        _check(c, from_anthropic(b), "anthropic", b["model"])
        assert c.task_id == "pa-anthropic-stream"
    assert calls[1].usage.cache_write_5m_tokens == 418


def close_sync_loop() -> None:
    """run_sync leaves the event loop it set for the thread open: close it here, so it is
    not collected (with a ResourceWarning) during some later test."""
    import asyncio
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            loop = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            return
        if not loop.is_running():
            loop.close()
        asyncio.set_event_loop(None)
