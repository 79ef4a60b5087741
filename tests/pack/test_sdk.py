"""Rendered bodies go through the real ``anthropic`` / ``openai`` SDKs' ``create(**body)``
to a local server that validates the shape (see conftest.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ctxbudget.pack import (
    Chunk,
    Packer,
    PackerConfig,
    render_anthropic,
    render_openai_chat,
    render_openai_responses,
)


def words(text: str) -> int:
    return len(text.split())


def agent_session() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    tools = [{"type": "function", "function": {
        "name": n, "description": f"{n} the repo",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}},
                       "required": ["q"]}}} for n in ("grep", "read", "edit")]
    hist: list[dict[str, Any]] = [{"role": "user", "content": "fix the failing test " * 5}]
    for i in range(30):
        hist.append({"role": "assistant", "content": "checking" if i % 3 == 0 else None,
                     "tool_calls": [{"id": f"call_{i}_{j}", "type": "function",
                                     "function": {"name": "grep",
                                                  "arguments": json.dumps({"q": f"x{i}"})}}
                                    for j in range(1 + i % 2)]})
        for j in range(1 + i % 2):
            hist.append({"role": "tool", "tool_call_id": f"call_{i}_{j}",
                         "content": f"match {i} " * 40})
    return tools, hist


def packed_calls(provider: str) -> list[Any]:
    cfg = PackerConfig(window=3000, output_reserve=256, provider=provider,  # type: ignore[arg-type]
                       min_cacheable_tokens=100, model="claude-sonnet-4-6")
    packer = Packer(cfg, counter=words)
    tools, hist = agent_session()
    out = []
    for n in (1, 21, 41, len(hist)):
        out.append(packer.pack(system="You are a coding agent. " * 40, tools=tools,
                               history=hist[:n], docs=["README says hello. " * 30],
                               chunks=[Chunk(id="a", text="Tests live in tests/.", score=0.8)],
                               volatile="date: 2026-11-28"))
    return out


def test_anthropic_sdk_accepts_bodies(fake_api: Any) -> None:
    anthropic = pytest.importorskip("anthropic")
    client = anthropic.Anthropic(base_url=fake_api.url, api_key="test", max_retries=0)
    try:
        for packed in packed_calls("anthropic"):
            body = render_anthropic(packed)
            msg = client.messages.create(**body)
            assert msg.content[0].text == "ok"
    finally:
        client.close()
    assert len(fake_api.requests) == 4
    assert all(not errs for _, _, errs in fake_api.requests)
    # breakpoints were really sent, and never more than 4
    sent = [json.dumps(b).count("cache_control") for _, b, _ in fake_api.requests]
    assert all(1 <= n <= 4 for n in sent), sent


def test_openai_sdk_accepts_chat_and_responses(fake_api: Any) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=fake_api.url + "/v1", api_key="test", max_retries=0)
    try:
        for packed in packed_calls("openai"):
            chat = client.chat.completions.create(**render_openai_chat(packed))
            assert chat.choices[0].message.content == "ok"
            resp = client.responses.create(**render_openai_responses(packed))
            assert resp.output_text == "ok"
    finally:
        client.close()
    assert len(fake_api.requests) == 8
    assert all(not errs for _, _, errs in fake_api.requests)
    keys = {b["prompt_cache_key"] for _, b, _ in fake_api.requests}
    assert len(keys) == 1  # same static prefix -> same cache key


def test_server_rejects_a_split_tool_pair(fake_api: Any) -> None:
    """The validator can fail: a body with a tool_use and no result is refused."""
    anthropic = pytest.importorskip("anthropic")
    client = anthropic.Anthropic(base_url=fake_api.url, api_key="test", max_retries=0)
    bad = {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "x",
                                           "input": {}}]},
        {"role": "user", "content": [{"type": "text", "text": "and?"}]}]}
    try:
        with pytest.raises(anthropic.BadRequestError):
            client.messages.create(**bad)
    finally:
        client.close()


def test_rendered_anthropic_body_is_in_prefix_order() -> None:
    for packed in packed_calls("anthropic"):
        body = render_anthropic(packed)
        keys = [k for k in body if k in ("tools", "system", "messages")]
        assert keys == ["tools", "system", "messages"]
        # stable groups come first: system text, then docs
        assert body["system"][0]["text"].startswith("You are a coding agent.")
        assert body["messages"][-1]["content"][-1]["text"].startswith("<document")
