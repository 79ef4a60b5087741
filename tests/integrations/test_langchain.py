"""The LangChain callback handler with the real langchain-openai ChatOpenAI (sync, stream,
async, async stream) and a LangGraph graph against the local fake API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fakeapi import FakeAPI
from helpers import assert_same_as_adapter
from track_helpers import recorded

import ctxbudget
from ctxbudget.adapters import from_openai_chat

lc_openai = pytest.importorskip("langchain_openai")


def _llm(api: FakeAPI, **kw: Any) -> Any:
    body = api.recorded("openai-chat")[0]
    return lc_openai.ChatOpenAI(model=body["model"], base_url=api.url + "/v1", api_key="test",
                                max_retries=0, use_responses_api=False, **kw), body


def _handler() -> Any:
    from ctxbudget.integrations.langchain import CtxbudgetCallbackHandler

    return CtxbudgetCallbackHandler()


def test_invoke_stream_and_ainvoke(api: FakeAPI, spool: Path) -> None:
    llm, body = _llm(api, stream_usage=True)
    h = _handler()
    for _ in range(4):
        api.respond_next("openai-chat", body)
    with ctxbudget.task("lc-1", type="qa"):
        llm.invoke("hi", config={"callbacks": [h]})
        for _ in llm.stream("hi", config={"callbacks": [h]}):
            pass

        async def run() -> None:
            await llm.ainvoke("hi", config={"callbacks": [h]})
            async for _ in llm.astream("hi", config={"callbacks": [h]}):
                pass

        asyncio.run(run())
    calls, _ = recorded(spool)
    assert len(calls) == 4
    # both streams asked for usage (stream_usage=True)
    assert [b.get("stream_options") for _, _, b in api.requests] == [
        None, {"include_usage": True}, None, {"include_usage": True}]
    want = from_openai_chat(body)
    for c in calls:
        assert_same_as_adapter(c, want, provider="openai", model=body["model"])
        assert (c.task_id, c.task_type) == ("lc-1", "qa")
        assert c.source == "langchain"
    assert calls[0].request_id == body["id"]


def test_task_is_the_run_tree_root(api: FakeAPI, spool: Path) -> None:
    """Without ctxbudget.task, the outermost run (here a LangGraph graph) is the task."""
    from langchain_core.messages import HumanMessage
    from langgraph.graph import START, MessagesState, StateGraph

    llm, body = _llm(api)
    for _ in range(2):
        api.respond_next("openai-chat", body)

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [llm.invoke(state["messages"])]}

    def again(state: MessagesState) -> dict[str, Any]:
        return {"messages": [llm.invoke(state["messages"][:1])]}

    g = StateGraph(MessagesState)
    g.add_node("agent", agent)
    g.add_node("again", again)
    g.add_edge(START, "agent")
    g.add_edge("agent", "again")
    graph = g.compile(name="support-graph")
    graph.invoke({"messages": [HumanMessage("hi")]}, config={"callbacks": [_handler()]})
    calls, _ = recorded(spool)
    assert len(calls) == 2
    assert len({c.task_id for c in calls}) == 1
    assert calls[0].task_id is not None and calls[0].task_id.startswith("langchain:")
    assert calls[0].task_type == "support-graph"
    for c in calls:
        assert_same_as_adapter(c, from_openai_chat(body), provider="openai",
                               model=body["model"])


def test_error_is_recorded(api: FakeAPI, spool: Path) -> None:
    llm, _ = _llm(api)
    api.fail_next("openai-chat", 400, "bad")
    with pytest.raises(Exception, match="bad"), ctxbudget.task("lc-err"):
        llm.invoke("hi", config={"callbacks": [_handler()]})
    calls, _ = recorded(spool)
    assert len(calls) == 1 and calls[0].status == "error" and calls[0].task_id == "lc-err"
    api.errors.clear()


def test_usage_metadata_with_cache_details() -> None:
    from ctxbudget.integrations.langchain import adapt_usage_metadata

    a = adapt_usage_metadata({"input_tokens": 3 + 1111 + 500, "output_tokens": 391,
                              "input_token_details": {"cache_read": 500, "cache_creation": 1111,
                                                      "ephemeral_1h_input_tokens": 111},
                              "output_token_details": {"reasoning": 50}})
    u = a.usage
    assert (u.input_tokens, u.cache_read_tokens, u.cache_write_5m_tokens,
            u.cache_write_1h_tokens, u.output_tokens, u.reasoning_tokens) == (
        3, 500, 1000, 111, 391, 50)
