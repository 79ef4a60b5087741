"""The OpenAI Agents SDK tracing processor with the real ``openai-agents`` package against the
local fake API: Responses models (sync, async, streamed) and a Chat Completions model."""

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
from ctxbudget.adapters import from_openai_chat, from_openai_responses

agents = pytest.importorskip("agents")
openai = pytest.importorskip("openai")

# Runner.run_sync's event loop ends with the client's pooled connection still open
pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


@pytest.fixture(autouse=True)
def _collect() -> Iterator[None]:
    yield
    close_sync_loop()
    gc.collect()


@pytest.fixture
def processor() -> Iterator[Any]:
    from ctxbudget.integrations.openai_agents import CtxbudgetTracingProcessor

    p = CtxbudgetTracingProcessor()
    agents.set_trace_processors([p])  # only ours: no export to OpenAI from the tests
    yield p
    agents.set_trace_processors([])


def _client(api: FakeAPI) -> Any:
    return openai.AsyncOpenAI(base_url=api.url + "/v1", api_key="test", max_retries=0)


def test_responses_model_sync_async_streamed(processor: Any, api: FakeAPI,
                                             spool: Path) -> None:
    from agents import Agent, Runner
    from agents.models.openai_responses import OpenAIResponsesModel

    body = api.recorded("openai-responses")[0]
    for _ in range(3):
        api.respond_next("openai-responses", body)
    with ctxbudget.task("ag-1", type="qa"):
        # run_sync runs its own event loop: a client of its own
        Runner.run_sync(Agent(name="helper", model=OpenAIResponsesModel(
            body["model"], _client(api))), "hi")

        async def run() -> None:
            client = _client(api)
            agent = Agent(name="helper", model=OpenAIResponsesModel(body["model"], client))
            await Runner.run(agent, "hi")
            streamed = Runner.run_streamed(agent, "hi")
            async for _ in streamed.stream_events():
                pass
            await client.close()

        asyncio.run(run())
    calls, _ = recorded(spool)
    assert len(calls) == 3
    for c in calls:
        assert_same_as_adapter(c, from_openai_responses(body), provider="openai",
                               model=body["model"])
        assert (c.task_id, c.task_type) == ("ag-1", "qa")
        assert c.request_id == body["id"]
        assert c.source == "openai-agents"


def test_chat_model_and_trace_as_task(processor: Any, api: FakeAPI, spool: Path) -> None:
    from agents import Agent, Runner, trace
    from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel

    body = api.recorded("openai-chat")[0]
    api.respond_next("openai-chat", body)
    client = _client(api)
    agent = Agent(name="helper", model=OpenAIChatCompletionsModel(body["model"], client))

    async def run() -> None:
        with trace("Support workflow"):
            await Runner.run(agent, "hi")
        await client.close()

    asyncio.run(run())
    (c,), _ = recorded(spool)
    assert_same_as_adapter(c, from_openai_chat(body), provider="openai", model=body["model"])
    assert c.task_id is not None and c.task_id.startswith("openai-agents:trace_")
    assert c.task_type == "Support workflow"


def test_chat_model_streamed_run(processor: Any, api: FakeAPI, spool: Path) -> None:
    """A Chat Completions model, streamed: with ModelSettings(include_usage=True) the SDK
    asks for the usage chunk and its generation span carries it; without it the span holds
    zeros, recorded as usage_missing (not as a $0 call)."""
    from agents import Agent, ModelSettings, Runner
    from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel

    body = api.recorded("openai-chat")[0]
    api.respond_next("openai-chat", body)
    api.respond_next("openai-chat", body)
    client = _client(api)
    model = OpenAIChatCompletionsModel(body["model"], client)
    with_usage = Agent(name="helper", model=model,
                       model_settings=ModelSettings(include_usage=True))
    without = Agent(name="helper", model=model)

    async def run() -> None:
        with ctxbudget.task("ag-chat-stream", type="qa"):
            for agent in (with_usage, without):
                streamed = Runner.run_streamed(agent, "hi")
                async for _ in streamed.stream_events():
                    pass
        await client.close()

    asyncio.run(run())
    calls, _ = recorded(spool)
    assert [b.get("stream_options") for _, _, b in api.requests] == [
        {"include_usage": True}, None]
    assert len(calls) == 2
    assert_same_as_adapter(calls[0], from_openai_chat(body), provider="openai",
                           model=body["model"])
    assert calls[0].meta == {"span": "generation"}
    assert calls[1].meta == {"span": "generation", "usage_missing": True}
    assert calls[1].usage.total_tokens == 0
    for c in calls:
        assert (c.task_id, c.task_type) == ("ag-chat-stream", "qa")


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
