"""The LlamaIndex instrumentation event handler with the real ``llama-index-core`` and its
LiteLLM LLM (``llama-index-llms-litellm``: the OpenAI LLM package pins ``openai<3``)
against the local fake API: chat, async chat, completion and streaming."""

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
from ctxbudget.adapters import from_openai_chat

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
    with ctxbudget.task("li-stream"):
        for _ in llm.stream_chat([ChatMessage(role="user", content="hi")]):
            pass
    (c,), _ = recorded(spool)
    assert c.task_id == "li-stream" and c.model == body["model"] and c.provider == "openai"
    assert c.meta == {"usage_missing": True}
