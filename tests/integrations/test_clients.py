"""``ctxbudget.track()`` on google-genai, boto3 bedrock-runtime and OpenAI-compatible clients.

Each client is the real package, pointed at a local fake server replaying recorded
responses; the recorded buckets and cost must equal the adapter's on the same response,
and the task context must reach the record."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fakeapi import FakeAPI
from fakeproviders import FakeProviders
from helpers import assert_same_as_adapter
from track_helpers import closing, recorded

import ctxbudget
from ctxbudget.adapters import (
    from_bedrock,
    from_bedrock_anthropic,
    from_deepseek,
    from_gemini,
    from_openai_chat,
    from_xai,
)

G_MODEL = "gemini-2.5-flash"
B_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


# --------------------------------------------------------------------------- google-genai


def _genai(url: str) -> Any:
    genai = pytest.importorskip("google.genai")
    return closing(genai.Client(api_key="test-key", http_options={"base_url": url}))


def test_genai_sync_and_stream(providers: FakeProviders, spool: Path) -> None:
    client = ctxbudget.track(_genai(providers.url))
    assert ctxbudget.track(client) is client  # idempotent
    final = providers.gemini_chunks[-1]
    with ctxbudget.task("g-1", type="summarize"):
        r = client.models.generate_content(model=G_MODEL, contents="Count to 30")
        assert r.text
        chunks = list(client.models.generate_content_stream(model=G_MODEL,
                                                            contents="Count to 30"))
        assert len(chunks) == len(providers.gemini_chunks)
    calls, _ = recorded(spool)
    assert len(calls) == 2
    want = from_gemini(final)
    for call in calls:
        assert_same_as_adapter(call, want, provider="google", model=G_MODEL)
        assert (call.task_id, call.task_type) == ("g-1", "summarize")
        assert call.request_id == final["responseId"]
        assert call.usage.reasoning_tokens == 35
    assert calls[1].meta == {"stream": True}


# google-genai subclasses aiohttp.ClientSession when aiohttp is installed
@pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
def test_genai_async_and_async_stream(providers: FakeProviders, spool: Path) -> None:
    client = ctxbudget.track(_genai(providers.url))

    async def run() -> int:
        with ctxbudget.task("g-async"):
            await client.aio.models.generate_content(model=G_MODEL, contents="hi")
            n = 0
            async for _ in await client.aio.models.generate_content_stream(model=G_MODEL,
                                                                          contents="hi"):
                n += 1
            await client.aio.aclose()
            return n

    assert asyncio.run(run()) == 3
    calls, _ = recorded(spool)
    assert [c.task_id for c in calls] == ["g-async", "g-async"]
    for call in calls:
        assert_same_as_adapter(call, from_gemini(providers.gemini_chunks[-1]),
                               provider="google", model=G_MODEL)


def test_genai_stream_closed_early_is_recorded_incomplete(providers: FakeProviders,
                                                          spool: Path) -> None:
    client = ctxbudget.track(_genai(providers.url))
    stream = client.models.generate_content_stream(model=G_MODEL, contents="hi")
    next(iter(stream))
    stream.close()
    calls, _ = recorded(spool)
    assert len(calls) == 1
    assert calls[0].meta == {"stream": True, "stream_incomplete": True}
    # the first chunk's cumulative usage: 18 prompt, 31 + 35 thoughts output
    assert calls[0].usage == from_gemini(providers.gemini_chunks[0]).usage


def test_genai_api_error_is_recorded_and_raised(providers: FakeProviders, spool: Path) -> None:
    genai = pytest.importorskip("google.genai")
    client = ctxbudget.track(_genai(providers.url))
    providers.fail_next(429)
    with pytest.raises(genai.errors.ClientError), ctxbudget.task("g-err"):
        client.models.generate_content(model=G_MODEL, contents="hi")
    calls, _ = recorded(spool)
    assert len(calls) == 1 and calls[0].status == "error" and calls[0].task_id == "g-err"


# --------------------------------------------------------------------------- bedrock


def _bedrock(url: str) -> Any:
    boto3 = pytest.importorskip("boto3")
    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=url,
                          aws_access_key_id="AKIDTEST", aws_secret_access_key="secret")
    return closing(client)


MSGS = [{"role": "user", "content": [{"text": "What is 10 + 11?"}]}]


def test_bedrock_converse_and_stream(providers: FakeProviders, spool: Path) -> None:
    client = ctxbudget.track(_bedrock(providers.url))
    assert ctxbudget.track(client) is client
    want = [from_bedrock(b) for b in providers.converse]
    with ctxbudget.task("b-1", type="qa"):
        r1 = client.converse(modelId=B_MODEL, messages=MSGS)
        r2 = client.converse(modelId=B_MODEL, messages=MSGS)
        assert r1["usage"]["cacheWriteInputTokens"] == 1322
        assert r2["usage"]["cacheReadInputTokens"] == 1322
        s = client.converse_stream(modelId=B_MODEL, messages=MSGS)
        events = list(s["stream"])
        assert any("metadata" in e for e in events)
    calls, _ = recorded(spool)
    assert len(calls) == 3
    for call, w in zip(calls, [want[0], want[1], want[0]], strict=True):
        assert_same_as_adapter(call, w, provider="aws", model=B_MODEL)
        assert (call.task_id, call.task_type) == ("b-1", "qa")
    assert calls[0].usage.cache_write_5m_tokens == 1322
    assert calls[1].usage.cache_read_tokens == 1322
    assert calls[0].request_id and calls[0].request_id.startswith("fake-req-")
    assert calls[2].meta == {"stream": True}


def test_bedrock_invoke_model_anthropic_body(providers: FakeProviders, spool: Path) -> None:
    client = ctxbudget.track(_bedrock(providers.url))
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}]}
    with ctxbudget.task("b-invoke"):
        resp = client.invoke_model(modelId=B_MODEL, body=json.dumps(body))
    doc = json.loads(resp["body"].read())  # the caller still gets the whole body
    assert doc == providers.anthropic[0]
    calls, _ = recorded(spool)
    assert len(calls) == 1
    assert_same_as_adapter(calls[0], from_bedrock_anthropic(providers.anthropic[0]),
                           provider="aws", model=B_MODEL)
    assert calls[0].task_id == "b-invoke"
    assert calls[0].usage.cache_read_tokens + calls[0].usage.cache_write_5m_tokens > 0


def _chunks(events: Any) -> list[dict[str, Any]]:
    return [json.loads(e["chunk"]["bytes"]) for e in events]


def test_bedrock_invoke_model_with_response_stream_anthropic(providers: FakeProviders,
                                                            spool: Path) -> None:
    client = ctxbudget.track(_bedrock(providers.url))
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}]}
    with ctxbudget.task("b-stream", type="qa"):
        resp = client.invoke_model_with_response_stream(modelId=B_MODEL, body=json.dumps(body))
        docs = _chunks(resp["body"])
        # the second call's events: read with a context manager, as EventStream allows
        resp2 = client.invoke_model_with_response_stream(modelId=B_MODEL, body=json.dumps(body))
        with resp2["body"] as events:
            docs2 = _chunks(events)
    # the caller sees Bedrock's chunks unchanged
    assert docs[0]["type"] == "message_start"
    assert docs[-1]["type"] == "message_stop" and "amazon-bedrock-invocationMetrics" in docs[-1]
    assert "".join(d["delta"]["text"] for d in docs if d["type"] == "content_block_delta") \
        == providers.anthropic[0]["content"][0]["text"]
    assert docs2[-1]["type"] == "message_stop"
    calls, _ = recorded(spool)
    assert len(calls) == 2
    for call, want in zip(calls, providers.anthropic[:2], strict=True):
        # the merged message_start + message_delta usage equals the whole body's
        assert_same_as_adapter(call, from_bedrock_anthropic(want), provider="aws",
                               model=B_MODEL)
        assert (call.task_id, call.task_type) == ("b-stream", "qa")
        assert call.meta == {"api": "invoke_model_with_response_stream", "stream": True}
        assert call.request_id == want["id"]
    # message_start's cache counts reach the record (the write as a 5-minute write)
    assert calls[1].usage.cache_write_5m_tokens == 418
    assert calls[1].usage.cache_read_tokens == 1111


def test_bedrock_invoke_stream_metrics_only_model(providers: FakeProviders,
                                                  spool: Path) -> None:
    """A non-Anthropic model: the last chunk's amazon-bedrock-invocationMetrics."""
    client = ctxbudget.track(_bedrock(providers.url))
    model = "meta.llama3-1-70b-instruct-v1:0"
    conv = providers.next_converse()
    with ctxbudget.task("b-llama"):
        resp = client.invoke_model_with_response_stream(
            modelId=model, body=json.dumps({"prompt": "What is 10 + 11?", "max_gen_len": 64}))
        docs = _chunks(resp["body"])
    assert docs[0]["generation"]
    calls, _ = recorded(spool)
    assert len(calls) == 1
    u = conv["usage"]
    want = from_bedrock({"usage": {"inputTokens": u["inputTokens"],
                                   "outputTokens": u["outputTokens"],
                                   "totalTokens": u["inputTokens"] + u["outputTokens"]}})
    assert_same_as_adapter(calls[0], want, provider="aws", model=model)
    assert calls[0].task_id == "b-llama"
    assert calls[0].request_id and calls[0].request_id.startswith("fake-req-")
    assert "stream_incomplete" not in (calls[0].meta or {})


def test_bedrock_invoke_stream_cut_short_is_recorded_incomplete(providers: FakeProviders,
                                                                spool: Path) -> None:
    client = ctxbudget.track(_bedrock(providers.url))
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}]}
    providers.stream_cut = 1  # the connection ends after message_start
    resp = client.invoke_model_with_response_stream(modelId=B_MODEL, body=json.dumps(body))
    assert [d["type"] for d in _chunks(resp["body"])] == ["message_start"]
    calls, _ = recorded(spool)
    assert len(calls) == 1
    assert calls[0].meta == {"api": "invoke_model_with_response_stream", "stream": True,
                             "stream_incomplete": True}
    # what message_start told: the input and cache counts, one output token so far
    full = providers.anthropic[0]["usage"]
    assert calls[0].usage.input_tokens == full["input_tokens"]
    assert calls[0].usage.cache_read_tokens == full["cache_read_input_tokens"]
    assert calls[0].usage.output_tokens == 1


def test_bedrock_error_is_recorded_and_raised(providers: FakeProviders, spool: Path) -> None:
    pytest.importorskip("botocore")
    import botocore.config
    import botocore.exceptions

    boto3 = pytest.importorskip("boto3")
    client = ctxbudget.track(closing(boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=providers.url,
        aws_access_key_id="a", aws_secret_access_key="b",
        config=botocore.config.Config(retries={"max_attempts": 1}))))
    providers.fail_next(400)
    with pytest.raises(botocore.exceptions.ClientError), ctxbudget.task("b-err"):
        client.converse(modelId=B_MODEL, messages=MSGS)
    calls, _ = recorded(spool)
    assert len(calls) == 1 and calls[0].status == "error" and calls[0].task_id == "b-err"
    assert calls[0].meta is not None and calls[0].meta["error"] == "ValidationException"


def test_other_boto3_clients_are_refused() -> None:
    boto3 = pytest.importorskip("boto3")
    s3 = closing(boto3.client("s3", region_name="us-east-1", aws_access_key_id="a",
                              aws_secret_access_key="b"))
    with pytest.raises(TypeError, match="bedrock-runtime"):
        ctxbudget.track(s3)


# --------------------------------------------------------------------------- OpenAI-compatible


def test_openai_sdk_provider_from_base_url_and_model(api: FakeAPI, spool: Path) -> None:
    openai = pytest.importorskip("openai")
    from ctxbudget.track._providers import provider_for_url

    assert provider_for_url("https://api.deepseek.com/v1") == "deepseek"
    assert provider_for_url("https://api.groq.com/openai/v1") == "groq"
    assert provider_for_url("https://generativelanguage.googleapis.com/v1beta/openai/") \
        == "google"
    assert provider_for_url(api.url + "/v1") is None  # a local proxy: resolved from the model

    body = api.recorded("openai-chat")[0]
    ds_body = {**body, "model": "deepseek-chat", "usage": {
        "prompt_tokens": body["usage"]["prompt_tokens"],
        "completion_tokens": body["usage"]["completion_tokens"],
        "prompt_cache_hit_tokens": 1024,
        "prompt_cache_miss_tokens": body["usage"]["prompt_tokens"] - 1024}}
    api.respond_next("openai-chat", ds_body)
    api.respond_next("openai-chat", {**body, "model": "gemini-2.5-flash"})
    # xAI bills reasoning beside completion_tokens: its own adapter, picked by the model
    xai_body = {**body, "model": "grok-4", "usage": {
        "prompt_tokens": 200, "completion_tokens": 30, "total_tokens": 330,
        "prompt_tokens_details": {"cached_tokens": 128},
        "completion_tokens_details": {"reasoning_tokens": 100}}}
    api.respond_next("openai-chat", xai_body)
    client = ctxbudget.track(closing(openai.OpenAI(base_url=api.url + "/v1", api_key="t",
                                                   max_retries=0)))
    with ctxbudget.task("compat"):
        client.chat.completions.create(model="deepseek-chat",
                                       messages=[{"role": "user", "content": "hi"}])
        client.chat.completions.create(model="gemini-2.5-flash",
                                       messages=[{"role": "user", "content": "hi"}])
        client.chat.completions.create(model="grok-4",
                                       messages=[{"role": "user", "content": "hi"}])
    calls, _ = recorded(spool)
    assert [c.provider for c in calls] == ["deepseek", "google", "x-ai"]
    assert_same_as_adapter(calls[2], from_xai(xai_body), provider="x-ai", model="grok-4")
    assert calls[2].usage.output_tokens == 130  # reasoning added to the billed output
    # DeepSeek's own cache fields are read (a plain OpenAI adapter would miss the hits)
    assert_same_as_adapter(calls[0], from_deepseek(ds_body), provider="deepseek",
                           model="deepseek-chat")
    assert calls[0].usage.cache_read_tokens == 1024
    assert all(c.task_id == "compat" for c in calls)


def test_openai_compatible_async_stream(api: FakeAPI, spool: Path) -> None:
    """AsyncOpenAI at a local proxy, streamed: the provider resolved from the model, and its
    own adapter reads the usage chunk (DeepSeek's cache-hit fields)."""
    openai = pytest.importorskip("openai")
    body = api.recorded("openai-chat")[0]
    ds_body = {**body, "model": "deepseek-chat", "usage": {
        "prompt_tokens": body["usage"]["prompt_tokens"],
        "completion_tokens": body["usage"]["completion_tokens"],
        "prompt_cache_hit_tokens": 1024,
        "prompt_cache_miss_tokens": body["usage"]["prompt_tokens"] - 1024}}
    api.respond_next("openai-chat", ds_body)
    api.respond_next("openai-chat", {**body, "model": "gemini-2.5-flash"})

    async def run() -> None:
        client = ctxbudget.track(openai.AsyncOpenAI(base_url=api.url + "/v1", api_key="t",
                                                    max_retries=0))
        with ctxbudget.task("compat-async", type="chat"):
            for model in ("deepseek-chat", "gemini-2.5-flash"):
                stream = await client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "hi"}], stream=True,
                    stream_options={"include_usage": True})
                async for _ in stream:
                    pass
        await client.close()

    asyncio.run(run())
    calls, _ = recorded(spool)
    assert [c.provider for c in calls] == ["deepseek", "google"]
    assert_same_as_adapter(calls[0], from_deepseek(ds_body), provider="deepseek",
                           model="deepseek-chat")
    assert calls[0].usage.cache_read_tokens == 1024
    assert_same_as_adapter(calls[1], from_openai_chat({**body, "model": "gemini-2.5-flash"}),
                           provider="google", model="gemini-2.5-flash")
    for c in calls:
        assert (c.task_id, c.task_type) == ("compat-async", "chat")
        assert c.meta == {"stream": True}
