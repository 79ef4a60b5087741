"""A pydantic-ai history processor that packs the message history inside the budget.

```python
from pydantic_ai import Agent
from pydantic_ai.capabilities import ProcessHistory
from ctxbudget.pack import PackerConfig
from ctxbudget.pack.integrations.pydantic_ai import PackHistory

pack = PackHistory(PackerConfig(window=32_000, model="gpt-4.1", provider="openai"))
agent = Agent("openai-chat:gpt-4.1", capabilities=[ProcessHistory(pack)])
```

pydantic-ai stores what a processor returns as the run's history, so after a cut the
next call starts from the kept part: the packer sees a new session whose history grows
from the low watermark back to the high one before the next cut (the hysteresis holds,
the cached prefix is rewritten once per cut). System prompt parts are counted as the
system prompt and always stay in the first request. Tool definitions are not visible to
a history processor: pass them as ``tools=`` or keep a ``safety_margin``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from .._model import Message, Thinking, ToolCall
from ._common import SessionPacker

__all__ = ["PackHistory"]


def _user_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(c for c in content if isinstance(c, str))


def _tool_text(part: Any) -> str:
    fn = getattr(part, "model_response_str", None) or getattr(part, "model_response", None)
    if callable(fn):
        return str(fn())
    c = part.content
    return c if isinstance(c, str) else json.dumps(c, default=str, sort_keys=True)


def _convert(msg: Any) -> tuple[list[tuple[int, Message]], list[str]]:
    """(part index, Message) per conversational part, and the system prompt texts."""
    out: list[tuple[int, Message]] = []
    system: list[str] = []
    if msg.kind == "response":
        texts, calls, thinking = [], [], []
        for p in msg.parts:
            kind = p.part_kind
            if kind == "text":
                texts.append(p.content)
            elif kind == "tool-call":
                calls.append(ToolCall(id=p.tool_call_id, name=p.tool_name,
                                      arguments=p.args_as_json_str()))
            elif kind == "thinking":
                thinking.append(Thinking(thinking=p.content, signature=p.signature or ""))
        out.append((-1, Message(role="assistant", text="\n".join(texts),
                                tool_calls=tuple(calls), thinking=tuple(thinking))))
        return out, system
    for k, p in enumerate(msg.parts):
        kind = p.part_kind
        if kind == "system-prompt":
            system.append(p.content)
        elif kind == "user-prompt":
            out.append((k, Message(role="user", text=_user_text(p.content))))
        elif kind == "tool-return":
            out.append((k, Message(role="tool", tool_call_id=p.tool_call_id,
                                   text=_tool_text(p))))
        elif kind == "retry-prompt":
            if p.tool_name is not None:
                out.append((k, Message(role="tool", tool_call_id=p.tool_call_id,
                                       text=p.model_response(), is_error=True)))
            else:
                out.append((k, Message(role="user", text=p.model_response())))
    return out, system


class PackHistory(SessionPacker):
    """A pydantic-ai history processor (``ProcessHistory(PackHistory(config))``, or
    ``history_processors=[...]`` on releases that have it): returns the messages that fit
    ``config``'s budget, as pydantic-ai objects. One instance per conversation."""

    def __call__(self, messages: list[Any]) -> list[Any]:
        flat: list[Message] = []
        where: list[tuple[int, int]] = []  # (model message index, part index or -1)
        system: list[str] = []
        for i, msg in enumerate(messages):
            parts, sys_parts = self.convert(msg, _convert)
            system += sys_parts
            for k, m in parts:
                flat.append(m)
                where.append((i, k))
        kept, changed = self.pack(flat, "\n\n".join(system))
        keep_parts: dict[int, dict[int, str | None]] = {}
        for j in kept:
            i, k = where[j]
            keep_parts.setdefault(i, {})[k] = changed.get(j)
        out: list[Any] = []
        sys_parts_objs = [p for msg in messages if msg.kind == "request"
                          for p in msg.parts if p.part_kind == "system-prompt"]
        for i, msg in enumerate(messages):
            chosen = keep_parts.get(i)
            if chosen is None:
                continue
            if msg.kind == "response":
                out.append(msg)
                continue
            parts = []
            for k, p in enumerate(msg.parts):
                if k not in chosen:
                    continue
                text = chosen[k]
                if text is not None and p.part_kind == "tool-return":
                    p = dataclasses.replace(p, content=text)
                parts.append(p)
            if parts:
                out.append(dataclasses.replace(msg, parts=parts)
                           if len(parts) != len(msg.parts) else msg)
        if sys_parts_objs:
            first = next((n for n, m in enumerate(out) if m.kind == "request"), None)
            if first is not None:
                head = out[first]
                missing = [p for p in sys_parts_objs if p not in head.parts]
                if missing:
                    out[first] = dataclasses.replace(head, parts=[*missing, *head.parts])
        return out
