"""Message and tool framing: OpenAI's documented formula, real recorded prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tiktoken
import yaml

from ctxbudget.errors import InputFormatError
from ctxbudget.tokens import canonical_json, count_tokens, count_tools

#: The example conversation of OpenAI's cookbook "How to count tokens with tiktoken".
COOKBOOK_MESSAGES = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that "
     "translates corporate jargon into plain English."},
    {"role": "system", "name": "example_user",
     "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant",
     "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more "
     "bandwidth to touch base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant",
     "content": "Let's talk later when we're less busy about how to do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean "
     "for the client deliverable."},
]


def cookbook_num_tokens(messages: list[dict[str, str]], encoding: str) -> int:
    """OpenAI cookbook ``num_tokens_from_messages`` for gpt-4o / gpt-4-0613 and later."""
    enc = tiktoken.get_encoding(encoding)
    tokens_per_message, tokens_per_name = 3, 1
    n = 0
    for message in messages:
        n += tokens_per_message
        for key, value in message.items():
            n += len(enc.encode(value))
            if key == "name":
                n += tokens_per_name
    return n + 3  # every reply is primed with <|start|>assistant<|message|>


@pytest.mark.parametrize(("model", "encoding", "api_figure"),
                         [("gpt-4o", "o200k_base", 124), ("gpt-4-0613", "cl100k_base", 129)])
def test_openai_messages_follow_the_cookbook(model: str, encoding: str, api_figure: int) -> None:
    c = count_tokens(COOKBOOK_MESSAGES, model)
    assert c.tokens == cookbook_num_tokens(COOKBOOK_MESSAGES, encoding)
    # the figure the cookbook reports the API returned for this conversation
    assert c.tokens == api_figure
    assert c.framing_tokens == 3 * len(COOKBOOK_MESSAGES) + 4 + 3  # 4 names
    assert c.exact is True


def test_openai_real_recorded_prompt(data_dir: Path) -> None:
    """A recorded gpt-5.6 chat call: the API billed 4,020 prompt tokens."""
    doc = yaml.safe_load((data_dir / "api-responses" / "test_openai_chat_prompt_cache_e2e.yaml")
                         .read_text(encoding="utf-8"))
    for inter in doc["interactions"]:
        body = inter["request"]["parsed_body"]
        observed = inter["response"]["parsed_body"]["usage"]["prompt_tokens"]
        assert observed == 4020
        c = count_tokens(body, body["model"])
        assert c.method == "tiktoken:o200k_base"
        assert abs(c.tokens - observed) <= 1  # cookbook formula: 4,021 (gpt-5 frames 1 fewer)
        assert c.exact is False  # content-part lists / gpt-5 framing are not documented


def _anthropic_calls(data_dir: Path) -> list[tuple[dict[str, Any], int]]:
    doc = yaml.safe_load((data_dir / "api-responses" / "test_anthropic_cache_real_api.yaml")
                         .read_text(encoding="utf-8"))
    out = []
    for inter in doc["interactions"]:
        u = inter["response"]["parsed_body"]["usage"]
        observed = (u["input_tokens"] + u["cache_read_input_tokens"]
                    + u["cache_creation_input_tokens"])
        out.append((inter["request"]["parsed_body"], observed))
    return out


def test_anthropic_estimate_close_to_recorded_usage(data_dir: Path) -> None:
    calls = _anthropic_calls(data_dir)
    assert [obs for _, obs in calls] == [1114, 1532]
    for body, observed in calls:
        c = count_tokens(body, body["model"])
        assert c.exact is False and c.method.startswith("estimate:o200k*")
        assert "Claude has no public tokenizer" in c.note
        assert abs(c.tokens - observed) / observed < 0.02, (c.tokens, observed)


def test_gemini_estimate_on_recorded_call(data_dir: Path) -> None:
    doc = yaml.safe_load((data_dir / "api-responses" /
                          "test_google_stream_usage_is_live_mid_stream.yaml").read_text("utf-8"))
    body = doc["interactions"][0]["request"]["parsed_body"]
    c = count_tokens(body, "gemini-2.5-flash")
    assert c.exact is False
    assert c.tokens == 18  # promptTokenCount in the recorded response


WEATHER = {"name": "get_weather", "description": "Current weather for a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"},
                                                             "unit": {"enum": ["C", "F"]}},
                            "required": ["city"]}}
SEARCH = {"type": "function", "function": {
    "name": "search_docs", "description": "Full-text search over the docs.",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash"])
def test_tools_total_is_per_tool_sum_plus_block_overhead(model: str) -> None:
    tools = [WEATHER, SEARCH]
    per = count_tools(tools, model)
    assert [name for name, _ in per] == ["get_weather", "search_docs"]
    whole = count_tokens(tools, model)
    block = {"gpt-4o": 12, "claude-sonnet-4-5": 346, "gemini-2.5-flash": 0}[model]
    assert whole.tokens == sum(c.tokens for _, c in per) + block
    assert whole.exact is False and all(not c.exact for _, c in per)


def test_tool_counts_use_canonical_json() -> None:
    enc = tiktoken.get_encoding("o200k_base")
    (name, c), = count_tools([WEATHER], "gpt-4o")
    assert name == "get_weather"
    text = canonical_json(WEATHER)
    assert text.startswith('{"description":"Current weather') and ", " not in text[:40]
    assert c.tokens == len(enc.encode_ordinary(text)) + 8
    reordered = dict(reversed(list(WEATHER.items())))
    assert count_tools([reordered], "gpt-4o")[0][1] == c
    with_cache = {**WEATHER, "cache_control": {"type": "ephemeral"}}
    assert count_tools([with_cache], "gpt-4o")[0][1].tokens == c.tokens


def test_anthropic_blocks_are_counted() -> None:
    enc = tiktoken.get_encoding("o200k_base")
    msgs = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "tu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "tu_1", "content": "18°C, cloudy"}]},
    ]
    c = count_tokens(msgs, "gpt-4o", provider="openai")
    texts = ["user", "What is the weather in Paris?", "assistant", "Let me check.",
             "get_weather", '{"city":"Paris"}', "user", "18°C, cloudy"]
    assert c.content_tokens == sum(len(enc.encode_ordinary(t)) for t in texts)
    assert c.framing_tokens == 3 * 3 + 3


def test_images_are_an_estimate() -> None:
    msgs = [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}}]}]
    c = count_tokens(msgs, "claude-sonnet-4-5")
    assert not c.exact and "images" in c.note
    assert c.content_tokens >= 1600


def test_request_body_counts_system_messages_and_tools() -> None:
    msgs = [{"role": "user", "content": "hello"}]
    body = {"system": "Be brief.", "messages": msgs, "tools": [WEATHER]}
    model = "claude-sonnet-4-5"
    whole = count_tokens(body, model)
    parts = (count_tokens(msgs, model).tokens + count_tokens("Be brief.", model).tokens
             + count_tokens([WEATHER], model).tokens)
    assert whole.tokens == parts  # the 4-token request base is in the messages' count once


@pytest.mark.parametrize("bad", [[1, 2], [{"role": "user", "content": "x"}, WEATHER], 3.5,
                                 {"foo": "bar"}, [{"foo": "bar"}]])
def test_unreadable_content_is_a_clear_error(bad: Any) -> None:
    with pytest.raises(InputFormatError):
        count_tokens(bad, "gpt-4o")


def test_empty_message_list_is_zero() -> None:
    assert count_tokens([], "gpt-4o").tokens == 0
