"""Provider usage adapters against real recorded responses (../shared/data/api-responses).

Every number asserted here was read from the cassette files by hand; the adapters
must turn each provider's convention into ctxbudget's disjoint buckets exactly once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctxbudget.adapters import (
    PROVIDERS,
    adapt_usage,
    from_anthropic,
    from_bedrock,
    from_deepseek,
    from_gemini,
    from_openai,
    from_openai_chat,
    from_openai_responses,
    from_otel,
)
from ctxbudget.errors import UsageError
from ctxbudget.usage import Usage


def _bodies(data_dir: Path, name: str) -> list[dict[str, Any]]:
    """The parsed response bodies of every interaction in a cassette file."""
    doc = yaml.safe_load((data_dir / "api-responses" / name).read_text(encoding="utf-8"))
    out = []
    for it in doc["interactions"]:
        resp = it["response"]
        out.append(resp.get("parsed_body") or resp["body"])
    return out


# --------------------------------------------------------------------------- recorded


def test_anthropic_recorded_calls(data_dir: Path) -> None:
    first, second = _bodies(data_dir, "test_anthropic_cache_real_api.yaml")
    a1 = from_anthropic(first)
    assert a1.usage == Usage(input_tokens=3, cache_read_tokens=1111, output_tokens=406)
    assert a1.input_inclusive is False
    assert a1.model == "claude-sonnet-4-5-20250929"
    assert a1.request_id == "msg_01UUPT9QdZnZSRzcQJkjG25U"
    assert a1.service_tier == "standard"
    assert a1.usage.prompt_tokens == 3 + 1111

    a2 = from_anthropic(second)
    assert a2.usage == Usage(input_tokens=3, cache_read_tokens=1111, cache_write_5m_tokens=418,
                             cache_write_1h_tokens=0, output_tokens=33)
    assert a2.request_id == "msg_01KPaKTJSqAKoZri7Ujrny58"
    assert a2.usage.prompt_tokens == 3 + 1111 + 418
    # the bare usage object gives the same buckets as the whole body
    assert from_anthropic(second["usage"]).usage == a2.usage


def test_openai_chat_recorded_calls(data_dir: Path) -> None:
    write, read = _bodies(data_dir, "test_openai_chat_prompt_cache_e2e.yaml")
    a1 = from_openai_chat(write)
    # prompt_tokens 4020 includes cache_write_tokens 4012: 8 uncached
    assert a1.usage == Usage(input_tokens=8, cache_write_5m_tokens=4012, output_tokens=4)
    assert a1.input_inclusive is True
    assert a1.usage.prompt_tokens == write["usage"]["prompt_tokens"] == 4020
    assert a1.usage.total_tokens == write["usage"]["total_tokens"] == 4024
    a2 = from_openai_chat(read)
    assert a2.usage == Usage(input_tokens=8, cache_read_tokens=4012, output_tokens=4)
    assert a2.usage.total_tokens == 4024
    assert a2.model == read["model"]
    assert a2.request_id == read["id"]
    # the dispatcher tells the two OpenAI APIs apart
    assert from_openai(read).usage == a2.usage


def test_openai_responses_recorded_calls(data_dir: Path) -> None:
    write, read = _bodies(data_dir, "test_openai_responses_prompt_cache_e2e.yaml")
    a1 = from_openai_responses(write)
    assert a1.usage == Usage(input_tokens=8, cache_write_5m_tokens=4012, output_tokens=5)
    assert a1.usage.total_tokens == write["usage"]["total_tokens"] == 4025
    a2 = from_openai_responses(read)
    assert a2.usage == Usage(input_tokens=8, cache_read_tokens=4012, output_tokens=5)
    assert a2.input_inclusive is True
    assert from_openai(read).usage == a2.usage
    assert adapt_usage("openai-responses", read).usage == a2.usage


def _sse_chunks(body: dict[str, Any]) -> list[dict[str, Any]]:
    text = body["string"]
    return [json.loads(line[len("data: "):]) for line in text.splitlines()
            if line.startswith("data: ")]


def test_gemini_streaming_chunks(data_dir: Path) -> None:
    (body,) = _bodies(data_dir, "test_google_stream_usage_is_live_mid_stream.yaml")
    chunks = _sse_chunks(body)
    assert len(chunks) == 3
    got = [from_gemini(c) for c in chunks]
    # promptTokenCount 18; candidates 31 / 79 / 80; thoughts 35 billed as output
    assert [g.usage for g in got] == [
        Usage(input_tokens=18, output_tokens=31 + 35, reasoning_tokens=35),
        Usage(input_tokens=18, output_tokens=79 + 35, reasoning_tokens=35),
        Usage(input_tokens=18, output_tokens=80 + 35, reasoning_tokens=35),
    ]
    for g, c in zip(got, chunks, strict=True):
        assert g.usage.total_tokens == c["usageMetadata"]["totalTokenCount"]
        assert g.model == "gemini-2.5-flash"
        assert g.request_id == "ru1garvBEoOiqtsP2fznmQw"
        assert g.service_tier == "standard"
        assert g.input_inclusive is True


def test_bedrock_recorded_calls(data_dir: Path) -> None:
    write, read = _bodies(data_dir, "test_bedrock_cache_write_and_read.yaml")
    a1 = from_bedrock(write)
    # inputTokens is exclusive: 2 + write 1322 + output 5 = totalTokens 1329
    assert a1.usage == Usage(input_tokens=2, cache_write_5m_tokens=1322, output_tokens=5)
    assert a1.usage.total_tokens == 1329
    assert a1.input_inclusive is False
    a2 = from_bedrock(read)
    assert a2.usage == Usage(input_tokens=2, cache_read_tokens=1322, output_tokens=5)
    assert a2.usage.total_tokens == 1329


# --------------------------------------------------------------------------- units


def test_anthropic_legacy_cache_creation_is_5m_and_1h_split() -> None:
    legacy = from_anthropic({"input_tokens": 10, "cache_creation_input_tokens": 100,
                             "output_tokens": 7})
    assert legacy.usage == Usage(input_tokens=10, cache_write_5m_tokens=100, output_tokens=7)
    split = from_anthropic({"input_tokens": 10, "cache_creation_input_tokens": 100,
                            "cache_creation": {"ephemeral_5m_input_tokens": 40,
                                               "ephemeral_1h_input_tokens": 60},
                            "output_tokens": 7})
    assert split.usage.cache_write_5m_tokens == 40
    assert split.usage.cache_write_1h_tokens == 60
    with pytest.raises(UsageError) as ei:
        from_anthropic({"cache_creation_input_tokens": 100,
                        "cache_creation": {"ephemeral_5m_input_tokens": 40,
                                           "ephemeral_1h_input_tokens": 50}})
    assert ei.value.field == "usage.cache_creation"


def test_anthropic_thinking_tokens_are_reasoning() -> None:
    a = from_anthropic({"input_tokens": 5, "output_tokens": 100,
                        "output_tokens_details": {"thinking_tokens": 60}})
    assert a.usage.output_tokens == 100
    assert a.usage.reasoning_tokens == 60
    with pytest.raises(UsageError) as ei:
        from_anthropic({"output_tokens": 10, "output_tokens_details": {"thinking_tokens": 11}})
    assert ei.value.field == "usage.output_tokens_details.thinking_tokens"


def test_openai_reasoning_tokens() -> None:
    a = from_openai_chat({"prompt_tokens": 50, "completion_tokens": 300,
                          "prompt_tokens_details": {"cached_tokens": 20},
                          "completion_tokens_details": {"reasoning_tokens": 256}})
    assert a.usage == Usage(input_tokens=30, cache_read_tokens=20, output_tokens=300,
                            reasoning_tokens=256)
    r = from_openai_responses({"input_tokens": 50, "output_tokens": 300,
                               "output_tokens_details": {"reasoning_tokens": 256}})
    assert r.usage == Usage(input_tokens=50, output_tokens=300, reasoning_tokens=256)


def test_gemini_tool_use_prompt_and_cached_content() -> None:
    g = from_gemini({"usageMetadata": {"promptTokenCount": 1000, "cachedContentTokenCount": 600,
                                       "toolUsePromptTokenCount": 50, "candidatesTokenCount": 20,
                                       "thoughtsTokenCount": 30}})
    assert g.usage == Usage(input_tokens=400 + 50, cache_read_tokens=600, output_tokens=50,
                            reasoning_tokens=30)


def test_deepseek_hit_and_miss() -> None:
    d = from_deepseek({"model": "deepseek-chat", "id": "abc",
                       "usage": {"prompt_tokens": 1000, "prompt_cache_hit_tokens": 640,
                                 "prompt_cache_miss_tokens": 360, "completion_tokens": 90,
                                 "completion_tokens_details": {"reasoning_tokens": 40}}})
    assert d.usage == Usage(input_tokens=360, cache_read_tokens=640, output_tokens=90,
                            reasoning_tokens=40)
    assert d.input_inclusive is True
    assert (d.model, d.request_id) == ("deepseek-chat", "abc")
    # without a miss count, miss = prompt - hit
    assert from_deepseek({"prompt_tokens": 100, "prompt_cache_hit_tokens": 64}).usage \
        == Usage(input_tokens=36, cache_read_tokens=64)
    with pytest.raises(UsageError) as ei:
        from_deepseek({"prompt_tokens": 1000, "prompt_cache_hit_tokens": 640,
                       "prompt_cache_miss_tokens": 300})
    assert ei.value.field == "usage.prompt_cache_miss_tokens"
    with pytest.raises(UsageError) as ei:
        from_deepseek({"prompt_tokens": 10, "prompt_cache_hit_tokens": 64})
    assert ei.value.field == "usage.prompt_cache_hit_tokens"


OTEL_FLAT = {
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.cache_read.input_tokens": 800,
    "gen_ai.usage.cache_creation.input_tokens": 300,
    "gen_ai.usage.output_tokens": 250,
    "gen_ai.usage.reasoning.output_tokens": 100,
    "gen_ai.response.model": "claude-sonnet-4-5",
    "gen_ai.response.id": "msg_1",
}
OTEL_EXPECTED = Usage(input_tokens=100, cache_read_tokens=800, cache_write_5m_tokens=300,
                      output_tokens=250, reasoning_tokens=100)


def test_otel_flat_attributes() -> None:
    o = from_otel(OTEL_FLAT)
    assert o.usage == OTEL_EXPECTED
    assert o.input_inclusive is True
    assert (o.model, o.request_id) == ("claude-sonnet-4-5", "msg_1")
    assert from_otel({"attributes": OTEL_FLAT}).usage == OTEL_EXPECTED


def test_otel_otlp_json_attribute_list() -> None:
    attrs = [
        {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
        for k, v in OTEL_FLAT.items()
    ]
    o = from_otel({"attributes": attrs})
    assert o.usage == OTEL_EXPECTED
    assert o.model == "claude-sonnet-4-5"
    assert o.request_id == "msg_1"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("provider", "raw", "field"),
    [
        ("openai-chat", {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 11}},
         "usage.prompt_tokens_details.cached_tokens"),
        ("openai-responses", {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 20}},
         "usage.input_tokens_details.cached_tokens"),
        ("openai-chat", {"prompt_tokens": 10, "prompt_tokens_details":
                         {"cached_tokens": 6, "cache_write_tokens": 5}},
         "usage.prompt_tokens_details.cache_write_tokens"),
        ("gemini", {"promptTokenCount": 5, "cachedContentTokenCount": 6},
         "usageMetadata.cachedContentTokenCount"),
        ("otel", {"gen_ai.usage.input_tokens": 5, "gen_ai.usage.cache_read.input_tokens": 6},
         "gen_ai.usage.cache_read.input_tokens"),
        ("anthropic", {"input_tokens": -1}, "usage.input_tokens"),
        ("bedrock", {"inputTokens": 2, "outputTokens": -5}, "usage.outputTokens"),
        ("openai-chat", {"prompt_tokens": "12"}, "usage.prompt_tokens"),
        ("anthropic", {"input_tokens": 1.5}, "usage.input_tokens"),
        ("anthropic", {"output_tokens": True}, "usage.output_tokens"),
        ("gemini", {"promptTokenCount": [3]}, "usageMetadata.promptTokenCount"),
        ("openai-chat", {"completion_tokens": 5,
                         "completion_tokens_details": {"reasoning_tokens": 6}},
         "usage.completion_tokens_details.reasoning_tokens"),
        ("openai-responses", {"output_tokens": 5,
                              "output_tokens_details": {"reasoning_tokens": 6}},
         "usage.output_tokens_details.reasoning_tokens"),
        ("otel", {"gen_ai.usage.output_tokens": 5, "gen_ai.usage.reasoning.output_tokens": 9},
         "gen_ai.usage.reasoning.output_tokens"),
        ("deepseek", {"completion_tokens": 5, "completion_tokens_details":
                      {"reasoning_tokens": 9}},
         "usage.completion_tokens_details.reasoning_tokens"),
        ("bedrock", {"inputTokens": 2, "outputTokens": 5, "cacheWriteInputTokens": 1322,
                     "totalTokens": 1000}, "usage.totalTokens"),
    ],
)
def test_inconsistent_input_names_the_field(provider: str, raw: dict[str, Any],
                                             field: str) -> None:
    with pytest.raises(UsageError) as ei:
        adapt_usage(provider, raw)
    assert ei.value.field == field
    assert field.rsplit(".", 1)[-1] in str(ei.value)


def test_integral_floats_are_accepted() -> None:
    # JSON encoders sometimes write 12.0; an integral float is still a count
    assert from_anthropic({"input_tokens": 12.0}).usage.input_tokens == 12


def test_unknown_provider() -> None:
    with pytest.raises(UsageError) as ei:
        adapt_usage("cohere", {})
    assert ei.value.field == "provider"
    assert "anthropic" in str(ei.value)


def test_openai_dispatch_rejects_non_openai() -> None:
    with pytest.raises(UsageError):
        from_openai({"promptTokenCount": 3})


def test_every_provider_is_registered() -> None:
    assert set(PROVIDERS) >= {"anthropic", "openai", "gemini", "bedrock", "deepseek", "otel"}


# --------------------------------------------------------------------------- SDK objects


def test_anthropic_sdk_usage_object() -> None:
    from anthropic.types import CacheCreation
    from anthropic.types import Usage as AUsage

    u = AUsage(input_tokens=3, output_tokens=33, cache_read_input_tokens=1111,
               cache_creation_input_tokens=418,
               cache_creation=CacheCreation(ephemeral_5m_input_tokens=400,
                                            ephemeral_1h_input_tokens=18))
    a = from_anthropic(u)
    assert a.usage == Usage(input_tokens=3, cache_read_tokens=1111, cache_write_5m_tokens=400,
                            cache_write_1h_tokens=18, output_tokens=33)


def test_openai_sdk_usage_objects() -> None:
    from openai.types import CompletionUsage
    from openai.types.completion_usage import CompletionTokensDetails, PromptTokensDetails
    from openai.types.responses import ResponseUsage
    from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

    cu = CompletionUsage(prompt_tokens=4020, completion_tokens=300, total_tokens=4320,
                         prompt_tokens_details=PromptTokensDetails(cached_tokens=4012),
                         completion_tokens_details=CompletionTokensDetails(reasoning_tokens=256))
    assert from_openai(cu).usage == Usage(input_tokens=8, cache_read_tokens=4012,
                                          output_tokens=300, reasoning_tokens=256)
    ru = ResponseUsage(input_tokens=4020, output_tokens=5, total_tokens=4025,
                       input_tokens_details=InputTokensDetails(cached_tokens=4000,
                                                              cache_write_tokens=10),
                       output_tokens_details=OutputTokensDetails(reasoning_tokens=0))
    assert from_openai(ru).usage == Usage(input_tokens=10, cache_read_tokens=4000,
                                          cache_write_5m_tokens=10, output_tokens=5)
