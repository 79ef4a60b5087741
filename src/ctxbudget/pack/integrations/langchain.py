"""A LangChain message trimmer and LangGraph ``pre_model_hook`` backed by the packer.

```python
from langgraph.prebuilt import create_react_agent
from ctxbudget.pack import PackerConfig
from ctxbudget.pack.integrations.langchain import PackMessages

pack = PackMessages(PackerConfig(window=32_000, model="gpt-4.1", provider="openai"))
graph = create_react_agent(model, tools, pre_model_hook=pack.pre_model_hook)
trimmed = pack(messages)   # or as a plain trimmer, in place of trim_messages
```

``pre_model_hook`` returns ``{"llm_input_messages": ...}``: the graph state keeps the whole
history and only the model input is packed, so the history seen by the packer is
append-only and the hysteresis applies as is. System messages are counted as the system
prompt and always kept first; tool messages whose content was truncated or cleared come
back as copies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .._model import Message, Thinking, ToolCall
from ._common import SessionPacker

__all__ = ["PackMessages"]


def _text(content: Any) -> tuple[str, tuple[Thinking, ...]]:
    if isinstance(content, str):
        return content, ()
    texts: list[str] = []
    thinking: list[Thinking] = []
    for block in content or ():
        if isinstance(block, str):
            texts.append(block)
        elif isinstance(block, Mapping):
            kind = block.get("type")
            if kind == "text":
                texts.append(str(block.get("text", "")))
            elif kind == "thinking":
                thinking.append(Thinking(thinking=str(block.get("thinking", "")),
                                         signature=str(block.get("signature", ""))))
            elif kind == "redacted_thinking":
                thinking.append(Thinking(data=str(block.get("data", ""))))
    return "\n".join(texts), tuple(thinking)


def _convert(msg: Any) -> Message | None:
    kind = msg.type
    if kind == "system":
        return None
    text, thinking = _text(msg.content)
    if kind == "human":
        return Message(role="user", text=text)
    if kind == "tool":
        return Message(role="tool", text=text, tool_call_id=msg.tool_call_id,
                       is_error=getattr(msg, "status", "success") == "error")
    if kind == "ai":
        calls = tuple(ToolCall(id=str(c["id"]), name=c["name"],
                               arguments=json.dumps(c["args"], sort_keys=True))
                      for c in (getattr(msg, "tool_calls", None) or ()))
        return Message(role="assistant", text=text, tool_calls=calls, thinking=thinking)
    return Message(role="user", text=text)  # chat / function messages: plain text


class PackMessages(SessionPacker):
    """Call it on a list of LangChain messages (a ``trim_messages`` replacement), or pass
    :meth:`pre_model_hook` to ``create_react_agent``. One instance per conversation."""

    def __call__(self, messages: Sequence[Any]) -> list[Any]:
        flat: list[Message] = []
        where: list[int] = []
        system: list[Any] = []
        for i, msg in enumerate(messages):
            m = self.convert(msg, _convert)
            if m is None:
                system.append(msg)
            else:
                flat.append(m)
                where.append(i)
        sys_text = "\n\n".join(_text(s.content)[0] for s in system)
        kept, changed = self.pack(flat, sys_text)
        out = list(system)
        for j in kept:
            msg = messages[where[j]]
            if j in changed:
                msg = msg.model_copy(update={"content": changed[j]})
            out.append(msg)
        return out

    def pre_model_hook(self, state: Any) -> dict[str, Any]:
        """LangGraph ``pre_model_hook``: the packed messages as ``llm_input_messages``."""
        messages = state["messages"] if isinstance(state, Mapping) else state.messages
        return {"llm_input_messages": self(messages)}
