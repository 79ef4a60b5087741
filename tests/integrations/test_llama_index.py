"""The LlamaIndex instrumentation event handler with the real ``llama-index-core`` and two
LLM classes against the local fakes: chat, async chat, completion and streaming, sync
and async.

* ``LiteLLM`` (``llama-index-llms-litellm``; the OpenAI LLM package pins ``openai<3``):
  its streams carry no usage (recorded ``usage_missing``);
* ``BedrockConverse`` (``llama-index-llms-bedrock-converse``, plain boto3): its streams
  end with the Converse ``metadata`` event, whose usage is recorded."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeapi import FakeAPI
from fakeproviders import FakeProviders
from helpers import assert_same_as_adapter
from track_helpers import recorded

import ctxbudget
from ctxbudget.adapters import from_bedrock, from_openai_chat

pytestmark = [
    pytest.mark.filterwarnings("ignore:Items? .* `ReadOnly` qualifier:UserWarning"),  # litellm
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture
def handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    pytest.importorskip("llama_index.core")
    pytest.importorskip("llama_index.llms.litellm")
    from llama_index.core.instrumentation import get_dispatcher

    from ctxbudget.integrations.llama_index import CtxbudgetEventHandler

    h = CtxbudgetEventHandler()
    d = get_dispatcher()
    d.add_event_handler(h)
    yield h
    d.event_handlers.remove(h)
    gc.collect()


def _llm(api: FakeAPI) -> tuple[Any, dict[str, Any]]:
    from llama_index.llms.litellm import LiteLLM

    body = api.recorded("openai-chat")[0]
    # temperature=1: LiteLLM refuses other temperatures for reasoning models
    return LiteLLM(model="openai/" + body["model"], api_base=api.url + "/v1", api_key="test",
                   temperature=1.0), body


def test_chat_achat_complete(handler: Any, api: FakeAPI, spool: Path) -> None:
    from llama_index.core.llms import ChatMessage

    llm, body = _llm(api)
    for _ in range(3):
        api.respond_next("openai-chat", body)
    msgs = [ChatMessage(role="user", content="hi")]
    with ctxbudget.task("li-1", type="rag"):
        llm.chat(msgs)
        asyncio.run(llm.achat(msgs))
        llm.complete("hi")
    calls, _ = recorded(spool)
    assert len(calls) == 3
    for c in calls:
        assert_same_as_adapter(c, from_openai_chat(body), provider="openai", model=body["model"])
        assert (c.task_id, c.task_type) == ("li-1", "rag")
        assert c.source == "llama-index"
        assert c.request_id == body["id"]


def test_stream_is_recorded_without_usage(handler: Any, api: FakeAPI, spool: Path) -> None:
    """LlamaIndex's LiteLLM stream does not ask for usage (and cannot read the usage chunk):
    the call is still recorded, with its task, flagged usage_missing (not $0 silently)."""
    from llama_index.core.llms import ChatMessage

    llm, body = _llm(api)
    api.respond_next("openai-chat", body)
    api.respond_next("openai-chat", body)
    msgs = [ChatMessage(role="user", content="hi")]

    async def astream() -> None:
        async for _ in await llm.astream_chat(msgs):
            pass

    with ctxbudget.task("li-stream"):
        for _ in llm.stream_chat(msgs):
            pass
        asyncio.run(astream())
    calls, _ = recorded(spool)
    assert len(calls) == 2
    for c in calls:
        assert c.task_id == "li-stream" and c.model == body["model"] and c.provider == "openai"
        assert c.meta == {"usage_missing": True}
        assert c.usage.total_tokens == 0


def test_litellm_include_usage_breaks_its_stream(handler: Any, api: FakeAPI,
                                                spool: Path) -> None:
    """What docs/integrations.md says: asking LlamaIndex's LiteLLM for stream usage
    (``stream_options.include_usage``) makes llama-index-llms-litellm fail on the usage
    chunk (it has no choices). If a release handles it, the usage must be recorded."""
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.litellm import LiteLLM

    body = api.recorded("openai-chat")[0]
    llm = LiteLLM(model="openai/" + body["model"], api_base=api.url + "/v1", api_key="test",
                  temperature=1.0, additional_kwargs={"stream_options": {"include_usage": True}})
    api.respond_next("openai-chat", body)
    try:
        with ctxbudget.task("li-include-usage"):
            for _ in llm.stream_chat([ChatMessage(role="user", content="hi")]):
                pass
    except IndexError:
        assert api.requests[-1][2]["stream_options"] == {"include_usage": True}
        # the failed stream is still recorded (from its ExceptionEvent): answered, unpriced
        (c,), _ = recorded(spool)
        assert c.status == "error" and c.task_id == "li-include-usage"
        assert c.meta == {"error": "IndexError", "usage_missing": True}
        return
    (c,), _ = recorded(spool)
    assert_same_as_adapter(c, from_openai_chat(body), provider="openai", model=body["model"])


def test_failed_call_is_recorded(handler: Any, api: FakeAPI, spool: Path) -> None:
    """A call that raises ends its span with a SpanDropEvent: recorded as an error."""
    from llama_index.core.llms import ChatMessage

    llm, _body = _llm(api)
    llm.max_retries = 0
    api.fail_next("openai-chat", 400, "bad request")
    with pytest.raises(Exception, match="bad request"), ctxbudget.task("li-err"):
        llm.chat([ChatMessage(role="user", content="hi")])
    (c,), _ = recorded(spool)
    assert c.status == "error" and c.task_id == "li-err"
    assert c.meta is not None and c.meta["error"] == "LLMCallFailed"
    assert c.usage.total_tokens == 0 and "usage_missing" not in c.meta
    assert not handler.__dict__.get("_ctxb_pending")  # nothing left pending


B_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


def test_bedrock_converse_streams_carry_usage(handler: Any, providers: FakeProviders,
                                              spool: Path) -> None:
    """BedrockConverse: chat, stream_chat, astream_chat and achat each recorded with the
    recorded Converse usage (cache write, then cache read), streams included."""
    pytest.importorskip("llama_index.llms.bedrock_converse")
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.bedrock_converse import BedrockConverse

    llm = BedrockConverse(model=B_MODEL, region_name="us-east-1", endpoint_url=providers.url,
                          aws_access_key_id="AKIDTEST", aws_secret_access_key="secret")
    msgs = [ChatMessage(role="user", content="What is 10 + 11?")]

    async def run() -> str:
        text = ""
        async for r in await llm.astream_chat(msgs):
            text = str(r.message.content)
        await llm.achat(msgs)
        return text

    with ctxbudget.task("li-bedrock", type="rag"):
        llm.chat(msgs)
        chunks = list(llm.stream_chat(msgs))
        assert chunks and chunks[-1].message.content
        assert asyncio.run(run())
    calls, _ = recorded(spool)
    assert len(calls) == 4
    write, read = (from_bedrock(b) for b in providers.converse)
    for c, want in zip(calls, [write, read, write, read], strict=True):
        assert_same_as_adapter(c, want, provider="aws", model=B_MODEL)
        assert (c.task_id, c.task_type) == ("li-bedrock", "rag")
        assert c.meta is None  # not usage_missing
    assert [c.usage.cache_write_5m_tokens for c in calls] == [1322, 0, 1322, 0]
    assert [c.usage.cache_read_tokens for c in calls] == [0, 1322, 0, 1322]
