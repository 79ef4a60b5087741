"""The packer inside real agent loops: hysteresis when the hard limit binds first, the
window's unused share, tool-output truncation under pressure, extended thinking, the
SDKs' own response objects as history, and the ledger's wording."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ctxbudget.pack import (
    Chunk,
    HistoryPolicy,
    Message,
    Packer,
    PackerConfig,
    Thinking,
    ToolCall,
    ToolOutputPolicy,
    render_anthropic,
)


def words(text: str) -> int:
    return len(text.split())


TOOLS = [{"name": n, "description": f"{n} files", "input_schema": {
    "type": "object", "properties": {"path": {"type": "string"}}}} for n in ("read", "grep")]


def agent_rounds(n: int, seed: int = 7) -> list[Message]:
    """A coding-agent turn: one task message, then ``n`` tool rounds with results of
    150-550 words (a fixed pseudo-random sequence)."""
    hist = [Message(role="user", text="Fix the failing test in tests/test_io.py " * 4)]
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) % 2**31
        size = 150 + x % 400
        hist.append(Message(role="assistant", text=f"Step {i}: reading the next file.",
                            tool_calls=(ToolCall(id=f"toolu_{i}", name="read",
                                                 arguments=json.dumps({"path": f"f{i}.py"})),)))
        hist.append(Message(role="tool", tool_call_id=f"toolu_{i}",
                            text=" ".join(f"line{i}_{k}" for k in range(size))))
    return hist


def replay(cfg: PackerConfig, system: str, hist: list[Message], first: int = 3
           ) -> list[Any]:
    packer = Packer(cfg, counter=words)
    out = []
    for end in range(first, len(hist) + 1, 2):  # one call per round (history ends with a result)
        out.append(packer.pack(system=system, tools=TOOLS, history=hist[:end]))
    return out


@pytest.mark.parametrize("system_words", [1_000, 6_000])
def test_hysteresis_holds_when_the_hard_limit_binds(system_words: int) -> None:
    """16k window, 6k system prompt: the watermarks apply to what the fixed parts leave
    under the limit, so the cut jumps to 60% and then stays put for several calls."""
    cfg = PackerConfig(window=16_000, history=HistoryPolicy(low_watermark=0.6))
    calls = replay(cfg, "policy " * system_words, agent_rounds(59))
    assert len(calls) == 59
    assert all(p.ledger.total_tokens <= cfg.limit for p in calls)
    moves = [p.ledger.cut_moved for p in calls]
    first = moves.index(True)
    over = len(moves) - first  # calls from the first time the history outgrew its budget
    assert sum(moves) >= 2
    assert sum(moves) <= over / 5, (sum(moves), over)
    # the task message is always kept
    assert all(p.messages[0].text.startswith("Fix the failing test") for p in calls)
    led = calls[-1].ledger
    conv = led.extra["conversation_budget"]
    assert conv <= cfg.limit - led.components["system"] - led.components["tools"]
    text = " ".join(d.reason for p in calls for d in p.ledger.decisions
                    if d.action == "reallocated")
    if system_words == 6_000:
        assert "capped at the" in text


def test_cut_move_reads_the_kept_task_message_from_cache() -> None:
    """A single-task loop with a short system prompt: the task message stays in front of
    the history whatever the cut does, so it carries a breakpoint on every call and the
    call that moves the cut reads system + task from cache instead of rewriting them."""
    cfg = PackerConfig(window=16_000, model="claude-sonnet-4-5",
                       history=HistoryPolicy(low_watermark=0.6))
    hist = agent_rounds(59)
    hist[0] = Message(role="user", text="Fix the failing test in tests/test_io.py " * 200)
    calls = replay(cfg, "You are a coding agent.", hist)
    moved = [p for p in calls if p.ledger.cut_moved]
    assert len(moved) >= 2
    for p in calls:
        led = p.ledger
        task = led.groups.index("history")  # block of the task message
        assert p.messages[0] is hist[0]
        assert task in led.breakpoints and len(led.breakpoints) <= 4
        body = render_anthropic(p)
        assert "cache_control" in body["messages"][0]["content"][-1]
    for p in moved:
        led = p.ledger
        through_task = sum(led.block_tokens[:led.groups.index("history") + 1])
        assert through_task >= 1024
        assert led.expected_cache_read_tokens == through_task
    # without that breakpoint, a cut move reads nothing (the system prompt alone is under
    # Sonnet's 1,024-token minimum): the cost the breakpoint saves on every move
    assert sum(calls[0].ledger.block_tokens[:1 + len(TOOLS)]) < 1024


def test_naive_trim_moves_every_call_for_contrast() -> None:
    """The same replay with ``low_watermark=1.0`` (keep the last N tokens) moves the cut on
    nearly every call once full: the test above can fail."""
    cfg = PackerConfig(window=16_000, history=HistoryPolicy(low_watermark=1.0))
    calls = replay(cfg, "policy " * 6_000, agent_rounds(59))
    moves = [p.ledger.cut_moved for p in calls]
    over = len(moves) - moves.index(True)
    assert sum(moves) > over * 0.8


def test_unused_retrieval_budget_flows_to_history() -> None:
    hist = agent_rounds(60)
    cfg = PackerConfig(window=32_000, tool_outputs=ToolOutputPolicy(max_tokens=None))
    no_chunks = Packer(cfg, counter=words).pack(system="s " * 500, tools=TOOLS, history=hist)
    with_chunks = Packer(cfg, counter=words).pack(
        system="s " * 500, tools=TOOLS, history=hist,
        chunks=[Chunk(id=f"d{i}", text="fact " * 1500, score=1 - i / 10) for i in range(4)])
    a, b = no_chunks.ledger, with_chunks.ledger
    assert b.components["retrieved"] > 0
    # without chunks, the retrieval share (25% of the window) goes to the conversation
    kept_a = a.components["history"] + a.components["tool_outputs"]
    kept_b = b.components["history"] + b.components["tool_outputs"]
    assert kept_a > kept_b + 0.15 * 32_000
    assert a.extra["conversation_budget"] > 0.5 * 32_000 + 0.2 * 32_000
    assert kept_a <= a.extra["conversation_budget"]
    (flow,) = [d for d in a.decisions if d.action == "reallocated"]
    assert "unused retrieved 8000" in flow.reason
    assert a.total_tokens <= cfg.limit and b.total_tokens <= cfg.limit


def test_tool_outputs_truncated_only_under_pressure() -> None:
    big = [Message(role="user", text="summarize the logs"),
           Message(role="assistant", tool_calls=(ToolCall(id="t1", name="read"),)),
           Message(role="tool", tool_call_id="t1", text="log " * 5_000)]
    cfg = PackerConfig(window=200_000)  # default policy: max_tokens=2000, under pressure
    packer = Packer(cfg, counter=words)
    p = packer.pack(system="sys", history=big)
    assert p.messages[-1].text == big[-1].text  # everything fits: sent whole
    assert not any(d.action == "truncated" for d in p.ledger.decisions)
    small = PackerConfig(window=6_000, output_reserve=1_000)
    p2 = Packer(small, counter=words).pack(system="sys", history=big)
    assert words(p2.messages[-1].text) <= 2_000 + 10
    (d,) = [d for d in p2.ledger.decisions if d.action == "truncated"]
    assert d.item == "tool result t1 (message 2)"
    assert d.tokens_before > 5_000 > 2_000 >= d.tokens_after - 10 > 0
    # "always" truncates from the first call whatever the room
    always = PackerConfig(window=200_000, tool_outputs=ToolOutputPolicy(truncate="always"))
    p3 = Packer(always, counter=words).pack(system="sys", history=big)
    assert words(p3.messages[-1].text) <= 2_010


def test_ledger_before_counts_framing_and_over_budget_said_once() -> None:
    cfg = PackerConfig(window=4_000, output_reserve=500)
    packer = Packer(cfg, counter=words)
    hist = agent_rounds(20)
    seen = []
    for end in range(3, len(hist) + 1, 2):
        led = packer.pack(system="rules " * 900, tools=TOOLS, history=hist[:end]).ledger
        for k, v in led.components.items():
            assert led.components_before[k] >= v, k
        seen.append(sum(d.action == "over_budget" for d in led.decisions))
    assert seen[0] == 1 and sum(seen) == 1  # system_tools over its 15%: said once


# --------------------------------------------------------------------------- thinking

SIG = "EqQBCkgIAhABGAIiQL7vQ0ZQ+signature+bytes=="


def thinking_turn() -> list[Any]:
    """A real shape: Anthropic dicts with thinking + tool_use, then the tool result."""
    return [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "The user wants the weather; call the tool.",
             "signature": SIG},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
             "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18 C, cloudy"}]},
    ]


def test_thinking_blocks_round_trip_through_render(fake_api: Any) -> None:
    anthropic = pytest.importorskip("anthropic")
    cfg = PackerConfig(window=50_000, model="claude-sonnet-4-6", min_cacheable_tokens=10)
    packer = Packer(cfg, counter=words)
    hist = thinking_turn()
    hist[1]["content"].insert(1, {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va"})
    packed = packer.pack(system="You are helpful. " * 10, history=hist)
    body = render_anthropic(packed, thinking={"type": "enabled", "budget_tokens": 2048})
    blocks = body["messages"][1]["content"]
    assert blocks[0] == hist[1]["content"][0]  # unchanged, signature included
    assert blocks[1] == {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va"}
    assert blocks[2]["type"] == "tool_use"
    # counted: the thinking text and the redacted data are part of the history tokens
    plain = Packer(cfg, counter=words).pack(system="You are helpful. " * 10, history=[
        hist[0], {"role": "assistant", "content": [hist[1]["content"][2]]}, hist[2]])
    assert packed.ledger.total_tokens == plain.ledger.total_tokens + 8 + 1
    client = anthropic.Anthropic(base_url=fake_api.url, api_key="test", max_retries=0)
    try:
        client.messages.create(**body)
        # the validator can fail: thinking enabled but the block stripped
        bad = json.loads(json.dumps(body))
        bad["messages"][1]["content"] = bad["messages"][1]["content"][2:]
        with pytest.raises(anthropic.BadRequestError):
            client.messages.create(**bad)
    finally:
        client.close()
    assert [bool(e) for _, _, e in fake_api.requests] == [False, True]


def test_earlier_turns_thinking_is_dropped_and_not_billed() -> None:
    cfg = PackerConfig(window=50_000, model="claude-sonnet-4-6")
    packer = Packer(cfg, counter=words)
    hist = thinking_turn()
    first = packer.pack(history=hist)
    hist += [{"role": "assistant", "content": "It is 18 C and cloudy in Paris."},
             {"role": "user", "content": "And tomorrow?"}]
    second = packer.pack(history=hist)
    body = render_anthropic(second)
    sent = json.dumps(body)
    assert "thinking" not in sent and SIG not in sent
    assert second.messages[1].thinking == () and first.messages[1].thinking != ()
    assert second.ledger.cut_moved is False
    # the OpenAI renderers never carry thinking, and it is not counted there
    oa = Packer(PackerConfig(window=50_000, provider="openai"), counter=words)
    assert oa.pack(history=thinking_turn()).messages[1].thinking == ()


# --------------------------------------------------------------------------- SDK objects

def test_anthropic_sdk_response_objects_as_history(fake_api: Any) -> None:
    anthropic = pytest.importorskip("anthropic")
    fake_api.replies["/v1/messages"] = [{
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": [{"type": "thinking", "thinking": "Need the weather tool.",
                     "signature": SIG},
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_9", "name": "get_weather",
                     "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5}}]
    client = anthropic.Anthropic(base_url=fake_api.url, api_key="test", max_retries=0)
    packer = Packer(PackerConfig(window=50_000, model="claude-sonnet-4-6"), counter=words)
    history: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    try:
        resp = client.messages.create(**render_anthropic(packer.pack(history=history)))
        assert type(resp.content[0]).__name__ == "ThinkingBlock"
        history.append({"role": "assistant", "content": resp.content})  # the natural loop
        history.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": resp.content[2].id, "content": "18 C"}]})
        packed = packer.pack(history=history)
        body = render_anthropic(packed, thinking={"type": "enabled", "budget_tokens": 1024})
        client.messages.create(**body)
    finally:
        client.close()
    # the Message object itself is accepted too
    from ctxbudget.pack import parse_messages

    as_obj = parse_messages([history[0], resp, history[2]])
    assert as_obj[1] == packed.messages[1]
    assert [m.role for m in packed.messages] == ["user", "assistant", "tool"]
    a = packed.messages[1]
    assert a.text == "Let me check." and a.tool_calls[0].name == "get_weather"
    assert a.thinking == (Thinking(thinking="Need the weather tool.", signature=SIG),)
    assert all(not e for _, _, e in fake_api.requests)


def test_openai_sdk_objects_as_history(fake_api: Any) -> None:
    openai = pytest.importorskip("openai")
    fake_api.replies["/v1/chat/completions"] = [{
        "id": "chatcmpl-9", "object": "chat.completion", "created": 0, "model": "gpt-4.1",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}]
    fake_api.replies["/v1/responses"] = [{
        "id": "resp_9", "object": "response", "created_at": 0, "model": "gpt-4.1",
        "status": "completed", "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "id": "m1", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "get_weather",
             "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
            {"type": "function_call", "id": "fc_2", "call_id": "call_b", "name": "get_weather",
             "arguments": "{\"city\":\"Rome\"}", "status": "completed"}],
        "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4,
                  "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": 0}}}]
    from ctxbudget.pack import render_openai_chat, render_openai_responses

    client = openai.OpenAI(base_url=fake_api.url + "/v1", api_key="test", max_retries=0)
    try:
        chat_cfg = PackerConfig(window=50_000, provider="openai", model="gpt-4.1")
        p = Packer(chat_cfg, counter=words)
        hist: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
        resp = client.chat.completions.create(**render_openai_chat(p.pack(history=hist)))
        hist.append(resp.choices[0].message)  # a ChatCompletionMessage
        hist.append({"role": "tool", "tool_call_id": "call_1", "content": "18 C"})
        client.chat.completions.create(**render_openai_chat(p.pack(history=hist)))
        packed = p.pack(history=hist)
        assert packed.messages[1].tool_calls[0].arguments == '{"city":"Paris"}'

        r_cfg = PackerConfig(window=50_000, provider="openai", model="gpt-4.1",
                             openai_api="responses")
        q = Packer(r_cfg, counter=words)
        items: list[Any] = [{"role": "user", "content": "Weather in Paris and Rome?"}]
        r = client.responses.create(**render_openai_responses(q.pack(history=items)))
        items += r.output  # Responses output items, reasoning included
        items += [{"type": "function_call_output", "call_id": "call_a", "output": "18 C"},
                  {"type": "function_call_output", "call_id": "call_b", "output": "21 C"}]
        packed_r = q.pack(history=items)
        client.responses.create(**render_openai_responses(packed_r))
    finally:
        client.close()
    a = packed_r.messages[1]
    assert a.text == "Checking." and [c.id for c in a.tool_calls] == ["call_a", "call_b"]
    assert [m.role for m in packed_r.messages] == ["user", "assistant", "tool", "tool"]
    assert all(not e for _, _, e in fake_api.requests)
