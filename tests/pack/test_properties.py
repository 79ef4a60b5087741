"""Hypothesis invariants of the packer over random sessions, tools and chunks.

- the packed request never exceeds window - output reserve - margin, recounted from the
  rendered bodies with the same counter;
- tool call / result pairs are intact in every rendered body;
- over consecutive calls of a session, the rendered prefix is byte-identical up to the
  previous call's last breakpoint unless the cut moved or a static component changed;
- packing is deterministic.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctxbudget.pack import (
    Budget,
    Chunk,
    ContextOverflow,
    HistoryPolicy,
    Message,
    Packer,
    PackerConfig,
    RetrievalPolicy,
    ToolCall,
    ToolDef,
    ToolOutputPolicy,
    canonical_json,
    render_anthropic,
    render_openai_chat,
    render_openai_responses,
)

WORDS = ["alpha", "beta", "gamma", "delta", "eps.", "zeta!", "eta", "theta?", "iota", "kappa"]
OV = 4


def count(text: str) -> int:
    """Additive over whitespace joins: the recount below can split or join freely."""
    return len(text.split())


texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=40).map(" ".join)


@st.composite
def sessions(draw: Any) -> list[list[Message]]:
    """Turns, each: user message, 0-4 tool rounds (1-3 calls), optional final answer."""
    turns = []
    n = 0
    for _ in range(draw(st.integers(1, 8))):
        turn = [Message(role="user", text=draw(texts))]
        for _ in range(draw(st.integers(0, 4))):
            calls = []
            for _ in range(draw(st.integers(1, 3))):
                n += 1
                calls.append(ToolCall(id=f"call_{n}", name="search",
                                      arguments=canonical_json({"q": draw(texts)})))
            turn.append(Message(role="assistant", text=draw(st.sampled_from(["", "let me look"])),
                                tool_calls=tuple(calls)))
            turn += [Message(role="tool", tool_call_id=c.id, text=draw(texts)) for c in calls]
        if draw(st.booleans()):
            turn.append(Message(role="assistant", text=draw(texts)))
        turns.append(turn)
    return turns


tool_defs = st.lists(st.builds(lambda i, d: ToolDef(name=f"tool_{i}", description=d,
                                                    parameters='{"type":"object"}'),
                               st.integers(0, 50), texts),
                     max_size=6, unique_by=lambda t: t.name)
chunk_lists = st.lists(st.builds(lambda i, t, s: Chunk(id=f"c{i}", text=t, score=s),
                                 st.integers(0, 99), texts, st.floats(0, 1)),
                       max_size=8, unique_by=lambda c: c.id)


def summarize(prev: str | None, dropped: Any) -> str:
    """Deterministic: folds the previous summary and the first words of each message."""
    return " ".join([prev or "summary:"] + [m.text.split(" ")[0] or "call" for m in dropped])


@st.composite
def histories(draw: Any) -> HistoryPolicy:
    low = draw(st.floats(0.2, 1.0))
    turns = draw(st.booleans())
    keep = draw(st.integers(1, 3))
    return HistoryPolicy(low_watermark=low, high_watermark=draw(st.floats(low, 1.0)),
                         pin_first_user=draw(st.booleans()),
                         mode="turns" if turns else "tokens",
                         max_turns=keep + draw(st.integers(0, 3)) if turns else None,
                         keep_turns=keep if turns else None,
                         summarizer=draw(st.sampled_from([None, summarize])),
                         summary_max_tokens=draw(st.integers(5, 30)))


@st.composite
def configs(draw: Any) -> PackerConfig:
    shares = {b: Budget(share=draw(st.floats(0.05, 0.6)), priority=p) for b, p in
              (("history", 30), ("tool_outputs", 20), ("retrieved", 10))}
    return PackerConfig(
        window=draw(st.integers(200, 1500)), output_reserve=draw(st.integers(0, 100)),
        budgets=shares, message_overhead=OV, min_cacheable_tokens=draw(st.integers(0, 300)),
        history=draw(histories()),
        retrieval=RetrievalPolicy(top_k=draw(st.none() | st.integers(1, 5)),
                                  max_chunk_tokens=draw(st.none() | st.integers(3, 30))),
        tool_outputs=ToolOutputPolicy(max_tokens=draw(st.none() | st.integers(5, 30)),
                                      keep_recent=draw(st.none() | st.integers(1, 4)),
                                      clear_batch=draw(st.integers(1, 4))))


def recount_anthropic(body: dict[str, Any]) -> int:
    """The rendered body counted the way ``ctxbudget.tokens`` lays out an Anthropic request
    (each text separately, role strings, 4 per request, OV per message, 346 for the tool
    block + 4 per tool), minus nothing: merged tool results count one message."""
    n = 4
    tools = body.get("tools", [])
    if tools:
        n += 346
    for t in tools:
        n += 4 + count(canonical_json({k: v for k, v in t.items() if k != "cache_control"}))
    for b in body.get("system", []):
        n += count(b["text"])
    for m in body["messages"]:
        n += OV + count(m["role"])
        for b in m["content"]:
            if b["type"] == "text":
                n += count(b["text"])
            elif b["type"] == "tool_use":
                n += count(b["name"]) + count(canonical_json(b["input"]))
            else:
                n += count(b.get("content", ""))
    return n


def merged_results_overcharge(body: dict[str, Any]) -> int:
    """The packer charges each tool result as a message; the body merges a round's
    results into one user message."""
    extra = 0
    for m in body["messages"]:
        k = sum(1 for b in m["content"] if b["type"] == "tool_result")
        extra += max(k - 1, 0) * (OV + count("user"))
    return extra


def tool_pairs_ok(body: dict[str, Any]) -> bool:
    pending: set[str] = set()
    for m in body["messages"]:
        results = {b["tool_use_id"] for b in m["content"] if b["type"] == "tool_result"}
        if results != pending:
            return False
        pending = {b["id"] for b in m["content"] if b["type"] == "tool_use"}
    return not pending


def strip_cc(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: strip_cc(v) for k, v in obj.items() if k != "cache_control"}
    if isinstance(obj, list):
        return [strip_cc(v) for v in obj]
    return obj


def prefix_upto_last_breakpoint(body: dict[str, Any]) -> str:
    """Bytes of tools + system + messages up to the message with the last breakpoint."""
    last = -1
    for i, m in enumerate(body["messages"]):
        if "cache_control" in json.dumps(m):
            last = i
    return json.dumps(strip_cc([body.get("tools"), body.get("system"),
                                body["messages"][:last + 1]]))


def run_session(cfg: PackerConfig, turns: list[list[Message]], tools: list[ToolDef],
                chunks: list[Chunk], system: str) -> list[tuple[Any, dict[str, Any]] | None]:
    packer = Packer(cfg, counter=count)
    out: list[tuple[Any, dict[str, Any]] | None] = []
    history: list[Message] = []
    for turn in turns:
        # one call per model step: the user message, then after each tool round
        steps = [i for i, m in enumerate(turn) if m.role == "assistant"]
        history_before = list(history)
        try:
            packed = packer.pack(system=system, tools=tools, history=history_before,
                                 user=turn[0].text, chunks=chunks, volatile="today")
            out.append((packed, render_anthropic(packed)))
        except ContextOverflow:
            out.append(None)
        for s in steps:
            upto = s + 1
            while upto < len(turn) and turn[upto].role == "tool":
                upto += 1
            try:
                packed = packer.pack(system=system, tools=tools,
                                     history=history_before + turn[:upto], chunks=chunks)
                out.append((packed, render_anthropic(packed)))
            except ContextOverflow:
                out.append(None)
        history += turn
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs(), turns=sessions(), tools=tool_defs, chunks=chunk_lists,
       system=st.sampled_from(["", "be brief", "you are a careful agent " * 20]))
def test_packer_invariants(cfg: PackerConfig, turns: list[list[Message]],
                           tools: list[ToolDef], chunks: list[Chunk], system: str) -> None:
    results = run_session(cfg, turns, tools, chunks, system)
    prev = None
    for r in results:
        if r is None:
            prev = None
            continue
        packed, body = r
        led = packed.ledger
        # never exceeds, recounted from the rendered body with the same counter
        assert recount_anthropic(body) + merged_results_overcharge(body) \
            == led.total_tokens <= cfg.limit
        assert sum(led.components.values()) == led.total_tokens
        assert tool_pairs_ok(body)
        assert len(led.breakpoints) <= 4
        for other in (render_openai_chat(packed), render_openai_responses(packed)):
            assert other["prompt_cache_key"].startswith("ctxb-")
        # the static groups (tools, system prompt) are byte-identical across every call,
        # breakpoint markers included, whatever the history does
        if prev is not None and not led.static_changed:
            n_static = sum(1 for g in led.groups if g == "system")
            assert json.dumps([body.get("tools"), body.get("system", [])[:n_static]]) == \
                json.dumps([prev[1].get("tools"), prev[1].get("system", [])[:n_static]])
        # cache-stable prefix across consecutive calls
        if prev is not None and not led.static_changed and not led.cut_moved \
                and led.history_cut == prev[0].ledger.history_cut \
                and "cleared" not in {d.action for d in led.decisions}:
            before = prefix_upto_last_breakpoint(prev[1])
            now = json.dumps(strip_cc([body.get("tools"), body.get("system"),
                                       body["messages"][:len(json.loads(before)[2])]]))
            assert now == before
            assert led.common_prefix_blocks >= sum(
                1 for g in prev[0].ledger.groups if g != "volatile")
        prev = r
    # deterministic: a fresh packer replays the same bodies byte for byte
    again = run_session(cfg, turns, tools, chunks, system)
    assert [json.dumps(r[1]) if r else None for r in results] == \
           [json.dumps(r[1]) if r else None for r in again]


@settings(max_examples=40, deadline=None)
@given(cfg=configs(), turns=sessions(), tools=tool_defs, chunks=chunk_lists)
def test_overflow_only_when_untrimmable_parts_do_not_fit(
        cfg: PackerConfig, turns: list[list[Message]], tools: list[ToolDef],
        chunks: list[Chunk]) -> None:
    history = [m for t in turns for m in t]
    users = [m for m in history if m.role == "user"]
    tool_tok = sum(4 + count(canonical_json({"name": t.name, "description": t.description,
                                             "input_schema": t.schema})) for t in tools)
    floor = 4 + (346 + tool_tok if tools else 0) + count("sys") \
        + OV + count("user") + count("go on") + OV + count("user") + count(users[-1].text)
    if cfg.history.pin_first_user and users[0] is not users[-1]:
        floor += count(users[0].text) + OV + count("user")
    packer = Packer(cfg, counter=count)
    try:
        packed = packer.pack(system="sys", tools=tools, history=history, user="go on",
                             chunks=chunks)
    except ContextOverflow as exc:
        assert exc.needed > cfg.limit
        assert floor > cfg.limit  # raised only when the untrimmable floor does not fit
    else:
        assert floor <= packed.ledger.total_tokens <= cfg.limit


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(turns=sessions(), tools=tool_defs, chunks=chunk_lists, window=st.integers(400, 3000),
       api=st.sampled_from(["chat", "responses"]))
def test_counts_equal_ctxbudget_tokens_on_the_rendered_openai_body(
        turns: list[list[Message]], tools: list[ToolDef], chunks: list[Chunk], window: int,
        api: str) -> None:
    """With the real counter (tiktoken o200k for gpt-4.1) the packer's total is exactly
    what ``ctxbudget.tokens.count_tokens`` counts on the rendered body, and fits."""
    from ctxbudget.tokens import count_tokens

    cfg = PackerConfig(window=window, output_reserve=100, provider="openai", model="gpt-4.1",
                       openai_api=api)  # type: ignore[arg-type]
    history = [m for t in turns for m in t]
    try:
        packed = Packer(cfg).pack(system="Be brief.", tools=tools, history=history,
                                  user="and now?", chunks=chunks, volatile="2026-11-28")
    except ContextOverflow:
        return
    render = render_openai_chat if api == "chat" else render_openai_responses
    body = render(packed)
    body.pop("prompt_cache_key")
    assert count_tokens(body, "gpt-4.1").tokens == packed.ledger.total_tokens <= cfg.limit


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(turns=sessions(), tools=tool_defs, window=st.integers(600, 3000))
def test_anthropic_estimate_never_exceeds_the_limit(
        turns: list[list[Message]], tools: list[ToolDef], window: int) -> None:
    """Claude has no public tokenizer: the estimator, applied per text, over the rendered
    body never exceeds what the packer counted (merged tool results cost less)."""
    from ctxbudget.tokens import count_tokens

    cfg = PackerConfig(window=window, output_reserve=100, model="claude-sonnet-4-6")
    history = [m for t in turns for m in t]
    try:
        packed = Packer(cfg).pack(system="Be brief.", tools=tools, history=history,
                                  user="and now?")
    except ContextOverflow:
        return
    body = render_anthropic(packed)
    assert count_tokens(body, "claude-sonnet-4-6").tokens <= packed.ledger.total_tokens \
        <= cfg.limit
