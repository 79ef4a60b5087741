"""Reservation pricing from request bodies: counts equal the token counters', buckets and
tiers are the ones the body can be billed at, and blocks are counted once."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctxbudget.budgets import RequestPricer
from ctxbudget.errors import InputFormatError
from ctxbudget.prices import default_pricebook
from ctxbudget.tokens import count_tokens
from ctxbudget.usage import Usage


def _bodies(data_dir: Path, name: str) -> list[dict[str, Any]]:
    doc = yaml.safe_load((data_dir / "api-responses" / name).read_text())
    return [i["request"]["parsed_body"] for i in doc["interactions"]
            if i["request"].get("parsed_body")]


def claude_code_body(turns: int, text_kb: int = 4) -> dict[str, Any]:
    """A body shaped like Claude Code's: tools, a cached system prompt, a long history
    with tool_use / tool_result blocks and a cache breakpoint on the last message."""
    tools = [{"name": f"Tool{i}", "description": "Does a thing. " * 40,
              "input_schema": {"type": "object", "properties": {"path": {"type": "string"}},
                               "required": ["path"]}} for i in range(12)]
    msgs: list[dict[str, Any]] = []
    for t in range(turns):
        msgs.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"tu{t}",
             "content": [{"type": "text", "text": f"line {t} " + "x = 1\n" * (text_kb * 170)}]}]})
        msgs.append({"role": "assistant", "content": [
            {"type": "text", "text": f"Reading file {t}."},
            {"type": "tool_use", "id": f"tu{t + 1}", "name": "Tool1",
             "input": {"path": f"/src/f{t}.py"}}]})
    msgs.append({"role": "user", "content": [
        {"type": "text", "text": "continue", "cache_control": {"type": "ephemeral"}}]})
    return {"model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": True,
            "metadata": {"user_id": "user_abc_account__session_5c0375b4"},
            "system": [{"type": "text", "text": "You are Claude Code. " * 300,
                        "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            "tools": tools, "messages": msgs}


def test_counts_equal_count_tokens_on_real_bodies(data_dir: Path) -> None:
    p = RequestPricer()
    cases = [(b, "anthropic") for b in _bodies(data_dir, "test_anthropic_cache_real_api.yaml")]
    cases += [(b, "openai-chat")
              for b in _bodies(data_dir, "test_openai_chat_prompt_cache_e2e.yaml")]
    cases += [(b, "openai-responses")
              for b in _bodies(data_dir, "test_openai_responses_prompt_cache_e2e.yaml")]
    cases.append((claude_code_body(5), "anthropic"))
    assert len(cases) >= 6
    for body, api in cases:
        est = p.estimate(json.dumps(body).encode(), api)
        assert est.usage.prompt_tokens == count_tokens(body, body["model"]).tokens, (api, body)


def test_anthropic_buckets_follow_cache_breakpoints() -> None:
    p = RequestPricer()
    body = claude_code_body(3)
    est = p.estimate(json.dumps(body).encode(), "anthropic")
    u = est.usage
    # tools + system are before the 1h breakpoint; the history up to the last message's
    # 5m breakpoint is a 5m write; nothing is left at the input rate
    no_hist = dict(body, messages=[])
    prefix = count_tokens(no_hist, "claude-sonnet-4-5").tokens
    assert u.cache_write_1h_tokens == prefix
    assert u.cache_write_5m_tokens == u.prompt_tokens - prefix and u.input_tokens == 0
    assert u.output_tokens == 32000 and est.stream and est.user and not est.exact
    pb = default_pricebook()
    assert est.cost_usd == pb.total_usd(u, "claude-sonnet-4-5")
    # without markers: everything is input
    plain = json.loads(json.dumps(body).replace('"cache_control"', '"x_cc"'))
    u2 = p.estimate(json.dumps(plain).encode(), "anthropic").usage
    assert u2.cache_write_tokens == 0 and u2.input_tokens == u.prompt_tokens


def test_top_level_cache_control_makes_the_whole_prompt_a_write(data_dir: Path) -> None:
    body = _bodies(data_dir, "test_anthropic_cache_real_api.yaml")[0]
    assert body["cache_control"] == {"ttl": "5m", "type": "ephemeral"}
    u = RequestPricer().estimate(json.dumps(body).encode(), "anthropic").usage
    assert u.input_tokens == 0 and u.cache_write_5m_tokens == u.prompt_tokens > 1000


def test_long_prompt_is_priced_at_the_tier() -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10,
            "messages": [{"role": "user", "content": "word " * 240_000}]}
    est = RequestPricer().estimate(json.dumps(body).encode(), "anthropic")
    price = default_pricebook().resolve("claude-sonnet-4-5", "anthropic")
    assert price.tiers and est.usage.prompt_tokens > price.tiers[0].above_prompt_tokens
    rates = price.tiers[0].rates
    want = (est.usage.input_tokens * rates.input_mtok + 10 * rates.output_mtok) / 1_000_000
    assert est.cost_usd == want and rates.input_mtok > price.base.input_mtok


@pytest.mark.parametrize("fast_hash", [True, False])
def test_blocks_are_counted_once_across_turns(fast_hash: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from ctxbudget.budgets import _estimate

    if not fast_hash:  # without xxhash: Python's hash of a copy of each block
        monkeypatch.setattr(_estimate, "_XXH", [None])
    else:
        assert _estimate._xxh() is not None  # xxhash is in the test extra
    p = RequestPricer()
    body = claude_code_body(60)
    first = p.estimate(json.dumps(body).encode(), "anthropic")
    misses = p.cache.misses
    body["messages"].insert(-1, {"role": "assistant", "content": "one more turn"})
    second = p.estimate(json.dumps(body).encode(), "anthropic")
    assert p.cache.misses - misses == 1  # only the new message was counted
    assert second.usage.prompt_tokens > first.usage.prompt_tokens
    assert len(json.dumps(body)) > 300_000


def test_openai_shapes() -> None:
    p = RequestPricer()
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
            "stream": True, "stream_options": {"include_usage": True}, "n": 2,
            "max_completion_tokens": 50}
    e = p.estimate(json.dumps(chat).encode(), "openai-chat")
    assert e.exact and e.include_usage and e.usage.output_tokens == 100
    assert e.usage == Usage(input_tokens=count_tokens(chat, "gpt-4o").tokens, output_tokens=100)
    r = p.estimate(b'{"model":"gpt-4o","input":"hello there","max_output_tokens":7}',
                   "openai-responses")
    assert r.usage.output_tokens == 7 and r.usage.input_tokens == count_tokens(
        {"input": "hello there"}, "gpt-4o").tokens
    emb = p.estimate(b'{"model":"text-embedding-3-small","input":["a b c", [1, 2, 3]]}',
                     "openai-embeddings", provider="openai")
    assert emb.usage.output_tokens == 0 and emb.usage.input_tokens == 3 + 3
    assert emb.cost_usd is not None and emb.cost_usd > 0
    unpriced = p.estimate(b'{"model":"my-local-llama","messages":[]}', "openai-chat")
    assert unpriced.cost_usd is None and unpriced.amount.usd == Decimal(0)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"messages": []}',
                                  b'{"model": "x", "max_tokens": "many"}'])
def test_bad_bodies(body: bytes) -> None:
    with pytest.raises(InputFormatError, match="request body"):
        RequestPricer().estimate(body, "anthropic")
