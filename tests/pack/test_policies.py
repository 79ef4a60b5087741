"""Each packer policy, on small hand-built sessions (counts are whitespace words)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest

from ctxbudget.errors import SpecError
from ctxbudget.pack import (
    Budget,
    Chunk,
    HistoryPolicy,
    Message,
    Packer,
    PackerConfig,
    RetrievalPolicy,
    ToolCall,
    ToolDef,
    ToolOutputPolicy,
    ToolPolicy,
    canonical_json,
    min_cacheable_tokens,
    parse_messages,
    parse_tools,
    render_anthropic,
)


def words(text: str) -> int:
    return len(text.split())


def agent_loop(rounds: int, result_words: int = 50) -> list[Message]:
    hist = [Message(role="user", text="earlier question"),
            Message(role="assistant", text="earlier answer"),
            Message(role="user", text="please fix the failing build")]
    for i in range(rounds):
        hist.append(Message(role="assistant", tool_calls=(
            ToolCall(id=f"c{i}", name="run", arguments=canonical_json({"step": i})),)))
        hist.append(Message(role="tool", tool_call_id=f"c{i}", text=f"out{i} " * result_words))
    return hist


def test_agent_loop_keeps_newest_complete_rounds_and_the_loop_start() -> None:
    cfg = PackerConfig(window=1500, output_reserve=100,
                       budgets={"history": Budget(tokens=700), "tool_outputs": Budget(tokens=0)},
                       history=HistoryPolicy(low_watermark=1.0))
    packed = Packer(cfg, counter=words).pack(system="agent", history=agent_loop(40))
    msgs = packed.messages
    assert msgs[0].text == "please fix the failing build"
    # the rest are whole (assistant, tool) pairs, the newest ones, in order
    rest = msgs[1:]
    assert len(rest) % 2 == 0 and len(rest) >= 2
    steps = [json.loads(m.tool_calls[0].arguments)["step"] for m in rest[::2]]
    assert steps == list(range(40 - len(steps), 40))
    assert all(a.tool_calls[0].id == r.tool_call_id for a, r in zip(rest[::2], rest[1::2],
                                                                     strict=True))
    assert packed.ledger.components["history"] + packed.ledger.components["tool_outputs"] <= 700
    dropped = [d for d in packed.ledger.decisions if d.action == "dropped"]
    assert dropped and "the user message that started this turn" in dropped[-1].reason
    assert packed.ledger.total_tokens <= cfg.limit


def test_hysteresis_moves_the_cut_rarely_and_keeps_more_cache() -> None:
    def session(low: float) -> tuple[int, int]:
        cfg = PackerConfig(window=4000, output_reserve=200, min_cacheable_tokens=50,
                           budgets={"history": Budget(tokens=1200),
                                    "tool_outputs": Budget(tokens=0)},
                           history=HistoryPolicy(low_watermark=low))
        p = Packer(cfg, counter=words)
        hist: list[Message] = []
        moves = reads = 0
        for t in range(40):
            packed = p.pack(system="rules " * 300, history=hist, user=f"question {t} " * 20)
            moves += packed.ledger.cut_moved
            reads += packed.ledger.expected_cache_read_tokens
            hist += [Message(role="user", text=f"question {t} " * 20),
                     Message(role="assistant", text=f"answer {t} " * 60)]
        return moves, reads

    moves_h, reads_h = session(0.5)
    moves_naive, reads_naive = session(1.0)
    assert moves_h <= 8  # (1200 - 600) / ~170 tokens per turn: a move every ~4 turns
    assert moves_naive >= 25
    assert reads_h > reads_naive


def test_turns_mode_keeps_last_turns_with_hysteresis() -> None:
    cfg = PackerConfig(window=100_000, output_reserve=0,
                       history=HistoryPolicy(mode="turns", max_turns=6, keep_turns=3))
    p = Packer(cfg, counter=words)
    hist: list[Message] = []
    kept_turns = []
    for t in range(12):
        hist += [Message(role="user", text=f"q{t}"), Message(role="assistant", text=f"a{t}")]
        packed = p.pack(history=hist)
        kept_turns.append(sum(m.role == "user" for m in packed.messages))
    assert max(kept_turns) <= 6
    assert kept_turns[:6] == [1, 2, 3, 4, 5, 6]
    assert kept_turns[6] == 3  # jumped to the low mark, then grows again


def test_pin_first_user_keeps_the_sessions_first_message() -> None:
    cfg = PackerConfig(window=100_000, output_reserve=0,
                       history=HistoryPolicy(mode="turns", max_turns=2, keep_turns=1,
                                             pin_first_user=True))
    hist = []
    for t in range(5):
        hist += [Message(role="user", text=f"q{t}"), Message(role="assistant", text=f"a{t}")]
    packed = Packer(cfg, counter=words).pack(history=hist)
    assert [m.text for m in packed.messages] == ["q0", "q4", "a4"]


def _summary_cfg(fn: object) -> PackerConfig:
    return PackerConfig(window=2000, output_reserve=0,
                        budgets={"history": Budget(tokens=300), "tool_outputs": Budget(tokens=0)},
                        history=HistoryPolicy(low_watermark=0.5, summarizer=fn,  # type: ignore
                                              summary_max_tokens=40))


def _long_history() -> list[Message]:
    hist = []
    for t in range(12):
        hist += [Message(role="user", text=f"q{t} " * 10), Message(role="assistant",
                                                                  text=f"a{t} " * 10)]
    return hist


def test_summarize_at_threshold_sync() -> None:
    seen: list[tuple[str | None, int]] = []

    def summarize(prev: str | None, dropped: Sequence[Message]) -> str:
        seen.append((prev, len(dropped)))
        return f"summary of {len(dropped)} messages " + "x " * 100

    packed = Packer(_summary_cfg(summarize), counter=words).pack(history=_long_history())
    assert seen and seen[0][0] is None and seen[0][1] > 0
    assert packed.epoch and packed.epoch[0].startswith("summary of")
    assert packed.ledger.components["summary"] <= 40 + 4  # truncated to summary_max_tokens
    assert any(d.action == "summarized" for d in packed.ledger.decisions)
    body = render_anthropic(packed)
    assert body["system"][-1]["text"].startswith("summary of")


def test_summarize_async_with_apack_and_pack() -> None:
    async def summarize(prev: str | None, dropped: Sequence[Message]) -> str:
        await asyncio.sleep(0)
        return f"async summary {len(dropped)}"

    packed = asyncio.run(Packer(_summary_cfg(summarize), counter=words)
                         .apack(history=_long_history()))
    assert packed.epoch[0].startswith("async summary")
    packed2 = Packer(_summary_cfg(summarize), counter=words).pack(history=_long_history())
    assert packed2.epoch == packed.epoch


def test_retrieval_floor_topk_trim_and_edges() -> None:
    cfg = PackerConfig(window=100_000, output_reserve=0,
                       retrieval=RetrievalPolicy(min_relevance=0.2, top_k=4, max_chunk_tokens=8,
                                                 template="{text}"))
    chunks = [Chunk(id=f"d{i}", text=f"Sentence one of d{i}. Then more words here. Tail.",
                    score=s) for i, s in enumerate([0.9, 0.1, 0.8, 0.7, 0.6, 0.5])]
    packed = Packer(cfg, counter=words).pack(user="q", chunks=chunks)
    texts = packed.final[:-1]
    # d1 below the floor, d5 beyond top-4; best at the edges: ranks 1,3 | 4,2
    assert [t.split()[3] for t in texts] == ["d0.", "d3.", "d4.", "d2."]
    assert all(t.endswith(".") for t in texts)  # cut at a sentence boundary
    reasons = " ".join(d.reason for d in packed.ledger.decisions)
    assert "min_relevance" in reasons and "top_k=4" in reasons and "sentence" in reasons


def test_tool_subsets_stay_stable_within_a_session() -> None:
    tools = [ToolDef(name=n, parameters='{"type":"object"}') for n in ("a", "b", "c", "d")]
    cfg = PackerConfig(window=100_000, output_reserve=0,
                       tools=ToolPolicy(subsets={"billing": ["b", "a"], "search": ["c"]}))
    p = Packer(cfg, counter=words)
    first = p.pack(tools=tools, user="x", task_type="billing")
    assert [t.name for t in first.tools] == ["a", "b"]  # catalog order, not subset order
    same = p.pack(tools=tools, user="y", task_type="billing")
    assert same.ledger.prefix_fingerprint[:2] == first.ledger.prefix_fingerprint[:2]
    grown = p.pack(tools=tools, user="z", task_type="search")
    assert [t.name for t in grown.tools] == ["a", "b", "c"] and grown.ledger.static_changed
    with pytest.raises(SpecError):
        p.pack(tools=tools, task_type="unknown")


def test_canonical_tool_json_is_order_independent() -> None:
    a = parse_tools([{"name": "t", "input_schema": {"type": "object", "properties": {
        "x": {"type": "string", "description": "d"}}}}])
    b = parse_tools([{"type": "function", "function": {"name": "t", "parameters": {
        "properties": {"x": {"description": "d", "type": "string"}}, "type": "object"}}}])
    assert a == b
    assert a[0].parameters == '{"properties":{"x":{"description":"d","type":"string"}},' \
                              '"type":"object"}'


def test_tool_output_truncation_and_batch_clearing() -> None:
    cfg = PackerConfig(window=100_000, output_reserve=0,
                       tool_outputs=ToolOutputPolicy(max_tokens=20, keep_recent=2, clear_batch=3,
                                                         truncate="always"))
    p = Packer(cfg, counter=words)
    hist = [Message(role="user", text="go")]
    cleared_at = []
    for i in range(12):
        hist += [Message(role="assistant", tool_calls=(ToolCall(id=f"c{i}", name="t"),)),
                 Message(role="tool", tool_call_id=f"c{i}", text=" ".join(f"w{i}_{k}"
                                                                          for k in range(100)))]
        packed = p.pack(history=hist)
        results = [m for m in packed.messages if m.role == "tool"]
        n_cleared = sum(m.text == cfg.tool_outputs.placeholder for m in results)
        cleared_at.append(n_cleared)
        live = [m for m in results if m.text != cfg.tool_outputs.placeholder]
        assert all(words(m.text) <= 20 for m in live)
        assert all("tokens truncated" in m.text for m in live)
        assert live[-1].text.startswith(f"w{i}_0") and live[-1].text.endswith(f"w{i}_99")
    # cleared in batches: the count jumps, it does not creep up one by one
    assert cleared_at == [0, 0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8]


def test_breakpoints_skip_groups_below_the_minimum_and_roll_with_history() -> None:
    assert min_cacheable_tokens("claude-opus-4-6") == 4096
    assert min_cacheable_tokens("claude-sonnet-4-6") == 1024
    assert min_cacheable_tokens("claude-3-5-haiku-20241022") == 2048
    tools = [ToolDef(name="t", description="short tool")]
    cfg = PackerConfig(window=200_000, output_reserve=0, model="claude-sonnet-4-6")
    p = Packer(cfg, counter=words)
    hist: list[Message] = [Message(role="user", text="start " * 10)]
    packed = p.pack(tools=tools, system="rules " * 1100, history=hist)
    groups = packed.ledger.groups
    bps = packed.ledger.breakpoints
    # tools alone (3 tokens) are below 1024: no breakpoint there; system and history get one
    assert [groups[i] for i in bps] == ["system", "history"]
    # an agent loop adds 30 blocks in one go: the previous history breakpoint is kept so
    # the 20-block lookback still finds the cached prefix
    for i in range(15):
        hist += [Message(role="assistant", tool_calls=(ToolCall(id=f"c{i}", name="t"),)),
                 Message(role="tool", tool_call_id=f"c{i}", text="ok")]
    prev_end = bps[-1]
    packed2 = p.pack(tools=tools, system="rules " * 1100, history=hist)
    assert prev_end in packed2.ledger.breakpoints
    assert len(packed2.ledger.breakpoints) <= 4
    cum = 0
    for i, n in enumerate(packed2.ledger.block_tokens):
        cum += n
        if i == prev_end:
            break
    assert packed2.ledger.expected_cache_read_tokens == cum


def test_openai_expected_cache_read_in_128_token_steps() -> None:
    cfg = PackerConfig(window=200_000, output_reserve=0, provider="openai")
    p = Packer(cfg, counter=words)
    first = p.pack(system="rules " * 1500, user="one")
    assert first.ledger.expected_cache_read_tokens == 0
    second = p.pack(system="rules " * 1500, user="two")
    prefix = second.ledger.block_tokens[0]
    assert second.ledger.expected_cache_read_tokens == prefix - (prefix - 1024) % 128


def test_parse_anthropic_and_openai_history_agree() -> None:
    oa = [{"role": "user", "content": "hi"},
          {"role": "assistant", "content": "look", "tool_calls": [
              {"id": "t1", "type": "function", "function": {"name": "f",
                                                            "arguments": '{"b":1,"a":2}'}}]},
          {"role": "tool", "tool_call_id": "t1", "content": "r"}]
    an = [{"role": "user", "content": "hi"},
          {"role": "assistant", "content": [{"type": "text", "text": "look"},
                                            {"type": "tool_use", "id": "t1", "name": "f",
                                             "input": {"a": 2, "b": 1}}]},
          {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                        "content": "r"}]}]
    assert parse_messages(oa) == parse_messages(an)


def test_history_that_is_not_an_extension_resets_the_session() -> None:
    cfg = PackerConfig(window=100_000, output_reserve=0,
                       history=HistoryPolicy(mode="turns", max_turns=2, keep_turns=1))
    p = Packer(cfg, counter=words)
    hist = [Message(role="user", text=f"q{i}") for i in range(4)]
    p.pack(history=hist)
    other = p.pack(history=[Message(role="user", text="new")])
    assert [m.text for m in other.messages] == ["new"]
    assert any("reset" in d.reason for d in other.ledger.decisions)


def test_from_spec_reads_window_reserve_allocation_and_policy(tmp_path: object) -> None:
    from ctxbudget.plan.spec import parse_spec

    spec = parse_spec("window: 32000\noutput_reserve: 2000\nmodels: [claude-sonnet-4-6]\n"
                      "allocation:\n  preset: seed-32k\n  targets: {retrieved: 40}\n"
                      "history_policies:\n  - sliding_window: {turns: 10}\n"
                      "caching:\n  min_cacheable_tokens: 512\n").spec
    p = Packer.from_spec(spec, counter=words)
    cfg = p.config
    assert (cfg.window, cfg.output_reserve, cfg.model) == (32000, 2000, "claude-sonnet-4-6")
    assert cfg.budget("retrieved") == 12800 and cfg.budget("history") == 9600
    assert cfg.history.mode == "turns" and cfg.history.max_turns == 10
    assert cfg.min_cacheable_tokens == 512
    with pytest.raises(SpecError, match="window"):
        Packer.from_spec({"models": ["gpt-4.1"]}, counter=words)


def test_ledger_is_what_the_tracker_reads() -> None:
    from ctxbudget.track._core import _ledger_fields

    packed = Packer(PackerConfig(window=10_000, output_reserve=0), counter=words).pack(
        system="s", user="u")
    fields = _ledger_fields(packed.ledger)
    assert fields["components"]["system"] == 1 + 4
    assert fields["prefix_fingerprint"] == packed.ledger.prefix_fingerprint
    assert fields["expected_cache_read_tokens"] == 0


def test_async_summarizer_inside_a_running_loop_needs_apack() -> None:
    async def summarize(prev: str | None, dropped: Sequence[Message]) -> str:
        return "s"

    async def main() -> None:
        with pytest.raises(SpecError, match="apack"):
            Packer(_summary_cfg(summarize), counter=words).pack(history=_long_history())

    asyncio.run(main())


def test_ledger_blocks_view_matches_the_fingerprint() -> None:
    cfg = PackerConfig(window=100_000, output_reserve=0, min_cacheable_tokens=1)
    packed = Packer(cfg, counter=words).pack(
        system="s " * 10, tools=[ToolDef(name="t")],
        history=[Message(role="user", text="a"), Message(role="assistant", text="b")],
        user="c")
    rows = packed.ledger.blocks()
    assert [r["group"] for r in rows] == ["tools", "system", "history", "history", "volatile"]
    assert [r["hash"] for r in rows] == list(packed.ledger.prefix_fingerprint)
    assert sum(r["tokens"] for r in rows) == packed.ledger.total_tokens
    assert [r["index"] for r in rows if r["breakpoint"]] == [1, 3]
