"""Renderers: a :class:`Packed` call -> a request body for the provider SDK's ``create``.

Every body is built from canonical (key-sorted) dicts, so the SDK serializes the same
bytes for the same content. Order follows stability: tools, system (static then epoch),
history, then the closing user message (volatile context, chunks, user message).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ._canon import block_hash, canonical
from ._model import Message, ToolDef
from ._packer import Packed

__all__ = ["render_anthropic", "render_openai_chat", "render_openai_responses"]


def _args(call_arguments: str) -> Any:
    try:
        value = json.loads(call_arguments)
    except json.JSONDecodeError:
        return {"arguments": call_arguments}
    return canonical(value) if isinstance(value, dict) else {"value": value}


def _cache_key(packed: Packed) -> str:
    if packed.config.prompt_cache_key:
        return packed.config.prompt_cache_key
    led = packed.ledger
    static = [h for h, g in zip(led.prefix_fingerprint, led.groups, strict=True)
              if g in ("tools", "system")]
    return "ctxb-" + block_hash("static", *static)


def _memo(packed: Packed, kind: str) -> dict[int, tuple[Any, Any]] | None:
    """The session's cache of rendered messages (id -> (message, rendered)): a message
    renders to the same dict on every call, so a body costs little more than its new
    messages and allocates few objects. Bodies therefore share those dicts: do not
    mutate a rendered body's messages in place."""
    caches = packed.render_cache
    if caches is None:
        return None
    memo = caches.get(kind)
    if memo is None or len(memo) > 200_000:
        memo = caches[kind] = {}
    return memo


def _anthropic_message(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        r: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.tool_call_id}
        if m.text:
            r["content"] = m.text
        if m.is_error:
            r["is_error"] = True
        return r
    content: list[dict[str, Any]] = [t.block() for t in m.thinking]
    if m.text:
        content.append({"type": "text", "text": m.text})
    for call in m.tool_calls:
        content.append({"type": "tool_use", "id": call.id, "name": call.name,
                        "input": _args(call.arguments)})
    return {"role": m.role, "content": content}


def render_anthropic(packed: Packed, *, model: str | None = None, max_tokens: int | None = None,
                     **extra: Any) -> dict[str, Any]:
    """Anthropic Messages body: ``tools`` -> ``system`` -> ``messages``, with
    ``cache_control`` on the blocks the packer chose (at most 4)."""
    cfg = packed.config
    bps = set(packed.ledger.breakpoints)
    cc: dict[str, str] = {"type": "ephemeral"}
    if cfg.cache_ttl == "1h":
        cc["ttl"] = "1h"
    idx = 0
    tools: list[dict[str, Any]] = []
    for t in packed.tools:
        d: dict[str, Any] = {"name": t.name}
        if t.description:
            d["description"] = t.description
        d["input_schema"] = t.schema  # parsed from canonical JSON: keys already sorted
        if idx in bps:
            d["cache_control"] = dict(cc)
        tools.append(d)
        idx += 1
    system: list[dict[str, Any]] = []
    for text in (*packed.system, *packed.epoch):
        b: dict[str, Any] = {"type": "text", "text": text}
        if idx in bps:
            b["cache_control"] = dict(cc)
        system.append(b)
        idx += 1
    messages: list[dict[str, Any]] = []
    pending_results: list[dict[str, Any]] = []
    pending_msgs: list[Message] = []
    memo = _memo(packed, "anthropic")
    groups = _memo(packed, "anthropic-results")

    def flush() -> None:
        if not pending_results:
            return
        # one user message per round of results, cached like the messages when unmarked
        key = id(pending_msgs[0])
        hit = groups.get(key) if groups is not None else None
        members = tuple(pending_msgs)
        if hit is not None and hit[0] == members and not any(
                "cache_control" in r for r in pending_results):
            messages.append(hit[1])
        else:
            d = {"role": "user", "content": list(pending_results)}
            if groups is not None and not any("cache_control" in r for r in pending_results):
                groups[key] = (members, d)
            messages.append(d)
        pending_results.clear()
        pending_msgs.clear()

    for m in packed.messages:
        mark = idx in bps
        idx += 1
        hit = memo.get(id(m)) if memo is not None else None
        if hit is not None and hit[0] is m:
            d = hit[1]
        else:
            d = _anthropic_message(m)
            if memo is not None:
                memo[id(m)] = (m, d)
        if m.role == "tool":
            pending_results.append({**d, "cache_control": dict(cc)} if mark else d)
            pending_msgs.append(m)
            continue
        flush()
        content = d["content"]
        if mark and content and content[-1]["type"] not in ("thinking", "redacted_thinking"):
            # never on a thinking block; a copy: the cached dict serves later calls
            d = {"role": d["role"],
                 "content": [*content[:-1], {**content[-1], "cache_control": dict(cc)}]}
        messages.append(d)
    flush()
    if packed.final:
        messages.append({"role": "user",
                         "content": [{"type": "text", "text": t} for t in packed.final]})
    body: dict[str, Any] = {"model": model or cfg.model or "claude-sonnet-4-6",
                            "max_tokens": max_tokens or cfg.output_reserve}
    if tools:
        body["tools"] = tools
    if system:
        body["system"] = system
    body["messages"] = messages
    body.update(extra)
    return body


def _openai_tool(t: ToolDef, flat: bool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t.name}
    if t.description:
        fn["description"] = t.description
    fn["parameters"] = t.schema  # parsed from canonical JSON: keys already sorted
    return {"type": "function", **fn} if flat else {"type": "function", "function": fn}


def _chat_message(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.text}
    if m.role == "user":
        return {"role": "user", "content": m.text}
    d: dict[str, Any] = {"role": "assistant", "content": m.text or None}
    if m.tool_calls:
        d["tool_calls"] = [{"id": c.id, "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments}}
                           for c in m.tool_calls]
    return d


def _responses_items(m: Message) -> list[dict[str, Any]]:
    if m.role == "tool":
        return [{"type": "function_call_output", "call_id": m.tool_call_id, "output": m.text}]
    if m.role == "user":
        return [{"role": "user", "content": [{"type": "input_text", "text": m.text}]}]
    out: list[dict[str, Any]] = []
    if m.text:
        out.append({"role": "assistant", "content": m.text})
    for c in m.tool_calls:
        out.append({"type": "function_call", "call_id": c.id, "name": c.name,
                    "arguments": c.arguments})
    return out


def _rendered(packed: Packed, kind: str, build: Callable[[Message], Any]) -> list[Any]:
    memo = _memo(packed, kind)
    if memo is None:
        return [build(m) for m in packed.messages]
    out = []
    get = memo.get
    for m in packed.messages:
        hit = get(id(m))
        if hit is None or hit[0] is not m:
            hit = memo[id(m)] = (m, build(m))
        out.append(hit[1])
    return out


def render_openai_chat(packed: Packed, *, model: str | None = None,
                       max_tokens: int | None = None, **extra: Any) -> dict[str, Any]:
    """OpenAI Chat Completions body in stable order, with ``prompt_cache_key``."""
    cfg = packed.config
    messages: list[dict[str, Any]] = []
    sys_parts = (*packed.system, *packed.epoch)
    if sys_parts:
        messages.append({"role": "system",
                         "content": [{"type": "text", "text": p} for p in sys_parts]})
    messages += _rendered(packed, "chat", _chat_message)
    if packed.final:
        messages.append({"role": "user",
                         "content": [{"type": "text", "text": t} for t in packed.final]})
    body: dict[str, Any] = {"model": model or cfg.model or "gpt-4.1",
                            "max_completion_tokens": max_tokens or cfg.output_reserve}
    if packed.tools:
        body["tools"] = [_openai_tool(t, flat=False) for t in packed.tools]
    body["messages"] = messages
    body["prompt_cache_key"] = _cache_key(packed)
    body.update(extra)
    return body


def render_openai_responses(packed: Packed, *, model: str | None = None,
                            max_tokens: int | None = None, **extra: Any) -> dict[str, Any]:
    """OpenAI Responses body (``input`` items, flat function tools, ``prompt_cache_key``)."""
    cfg = packed.config
    items: list[dict[str, Any]] = []
    sys_parts = (*packed.system, *packed.epoch)
    if sys_parts:
        items.append({"role": "system",
                      "content": [{"type": "input_text", "text": p} for p in sys_parts]})
    for group in _rendered(packed, "responses", _responses_items):
        items += group
    if packed.final:
        items.append({"role": "user",
                      "content": [{"type": "input_text", "text": t} for t in packed.final]})
    body: dict[str, Any] = {"model": model or cfg.model or "gpt-4.1",
                            "max_output_tokens": max_tokens or cfg.output_reserve}
    if packed.tools:
        body["tools"] = [_openai_tool(t, flat=True) for t in packed.tools]
    body["input"] = items
    body["prompt_cache_key"] = _cache_key(packed)
    body.update(extra)
    return body
