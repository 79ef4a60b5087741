"""The LiteLLM callback with the real ``litellm`` package against the local fake API.

LiteLLM runs its success callbacks after returning (a thread pool for sync calls, a
task for async ones), so the test waits until the spool holds the expected records."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeapi import FakeAPI
from helpers import assert_same_as_adapter
from track_helpers import recorded

import ctxbudget
import ctxbudget.track as tr
from ctxbudget.adapters import from_openai_chat
from ctxbudget.usage import Call

# litellm's own import-time and call-time warnings (pydantic TypedDict ReadOnly notes...)
pytestmark = [
    pytest.mark.filterwarnings("ignore:Items? .* `ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

MSG = [{"role": "user", "content": "Please explain what Python is."}]


def _litellm(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map fetch
    monkeypatch.setenv("LITELLM_LOG", "ERROR")
    return pytest.importorskip("litellm")


@pytest.fixture(autouse=True)
def _collect_litellm_garbage() -> Iterator[None]:
    """litellm leaves sockets / event loops for the GC: collect them here, under this
    module's warning filters, not in whichever test runs next."""
    yield
    gc.collect()


def wait_calls(spool: Path, n: int) -> list[Call]:
    deadline = time.monotonic() + 30
    while True:
        calls, _ = recorded(spool)
        if len(calls) >= n or time.monotonic() > deadline:
            return calls
        time.sleep(0.05)


@pytest.fixture
def litellm(monkeypatch: pytest.MonkeyPatch) -> Any:
    mod = _litellm(monkeypatch)
    cb = tr.litellm_callback()
    mod.callbacks = [cb]
    yield mod
    # litellm copies callbacks into its success / failure lists: remove ours everywhere
    for name in ("callbacks", "input_callback", "success_callback", "failure_callback",
                 "_async_success_callback", "_async_failure_callback"):
        lst = getattr(mod, name, None)
        if isinstance(lst, list):
            setattr(mod, name, [c for c in lst if c is not cb])


def test_completion_sync_and_stream(litellm: Any, api: FakeAPI, spool: Path) -> None:
    body = api.recorded("openai-chat")[0]
    kw = {"model": "openai/" + body["model"], "api_base": api.url + "/v1", "api_key": "test",
          "messages": MSG}
    with ctxbudget.task("ll-1", type="chat"):
        litellm.completion(**kw)
        for _ in litellm.completion(**kw, stream=True, stream_options={"include_usage": True}):
            pass
    calls = wait_calls(spool, 2)
    assert len(calls) == 2
    bodies = api.recorded("openai-chat")
    for call, b in zip(sorted(calls, key=lambda c: c.ts), bodies, strict=False):
        assert_same_as_adapter(call, from_openai_chat(b), provider="openai", model=b["model"])
        assert (call.task_id, call.task_type) == ("ll-1", "chat")
        assert call.source == "litellm"


def test_acompletion(litellm: Any, api: FakeAPI, spool: Path) -> None:
    body = api.recorded("openai-chat")[0]

    async def run() -> list[Call]:
        with ctxbudget.task("ll-async"):
            await litellm.acompletion(model="openai/" + body["model"],
                                      api_base=api.url + "/v1", api_key="test", messages=MSG)
        # the async success callback runs as a task of this loop: let it run
        deadline = time.monotonic() + 30
        while not (calls := recorded(spool)[0]) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return calls

    calls = asyncio.run(run())
    assert len(calls) == 1
    assert_same_as_adapter(calls[0], from_openai_chat(body), provider="openai",
                           model=body["model"])
    assert calls[0].task_id == "ll-async"


def test_acompletion_stream(litellm: Any, api: FakeAPI, spool: Path) -> None:
    body = api.recorded("openai-chat")[0]

    async def run() -> list[Call]:
        with ctxbudget.task("ll-astream", type="chat"):
            stream = await litellm.acompletion(
                model="openai/" + body["model"], api_base=api.url + "/v1", api_key="test",
                messages=MSG, stream=True, stream_options={"include_usage": True})
            async for _ in stream:
                pass
        deadline = time.monotonic() + 30
        while not (calls := recorded(spool)[0]) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return calls

    calls = asyncio.run(run())
    assert len(calls) == 1
    assert_same_as_adapter(calls[0], from_openai_chat(body), provider="openai",
                           model=body["model"])
    assert (calls[0].task_id, calls[0].task_type) == ("ll-astream", "chat")


def test_failure_is_recorded(litellm: Any, api: FakeAPI, spool: Path) -> None:
    api.fail_next("openai-chat", 400, "bad request")
    with pytest.raises(litellm.BadRequestError), ctxbudget.task("ll-err"):
        litellm.completion(model="openai/gpt-4o", api_base=api.url + "/v1", api_key="test",
                           messages=MSG, num_retries=0)
    calls = wait_calls(spool, 1)
    assert len(calls) == 1
    assert calls[0].status == "error" and calls[0].task_id == "ll-err"


def test_proxy_custom_callbacks_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """The LiteLLM proxy's ``callbacks: ctxbudget.integrations.litellm_proxy.handler``
    hook resolves a module attribute to a CustomLogger instance."""
    _litellm(monkeypatch)
    from litellm.integrations.custom_logger import CustomLogger
    from litellm.proxy.types_utils.utils import get_instance_fn

    handler = get_instance_fn("ctxbudget.integrations.litellm_proxy.handler")
    assert isinstance(handler, CustomLogger)
    assert type(handler).__name__ == "CtxbudgetLiteLLMCallback"
