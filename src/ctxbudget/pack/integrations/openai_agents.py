"""An OpenAI Agents SDK input filter that packs each model call's input inside the budget.

```python
from agents import Agent, RunConfig, Runner
from ctxbudget.pack import PackerConfig
from ctxbudget.pack.integrations.openai_agents import PackInput

pack = PackInput(PackerConfig(window=32_000, model="gpt-4.1", provider="openai",
                              openai_api="responses"))
result = Runner.run_sync(agent, "Find the error", run_config=RunConfig(
    call_model_input_filter=pack))
```

The SDK keeps the run's whole history and passes it to the filter before every model call
(append-only), so the packer's hysteresis applies as is. The agent's ``instructions`` are
counted as the system prompt. Responses input items come back unchanged (function call
outputs that were truncated or cleared as copies); reasoning and other items without a
message of their own are kept with the item that follows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._model import Message, parse_messages
from ._common import SessionPacker

__all__ = ["PackInput"]

_KNOWN = ("function_call", "function_call_output", "message")


def _item_dict(item: Any) -> Any:
    if isinstance(item, Mapping):
        return item
    dump = getattr(item, "model_dump", None)
    return dump(mode="json", exclude_none=True) if callable(dump) else item


def _convert(item: Any) -> list[Message]:
    d = _item_dict(item)
    if not isinstance(d, Mapping):
        return []
    kind = d.get("type", "message")
    if d.get("role") is None and kind not in _KNOWN:
        return []  # reasoning, hosted tool calls, ...: ride with the next item
    if d.get("role") in ("system", "developer"):
        return []
    return list(parse_messages([d], "input"))


class PackInput(SessionPacker):
    """``RunConfig(call_model_input_filter=PackInput(config))``. One instance per run or
    conversation (it holds the session's cut point)."""

    def __call__(self, data: Any) -> Any:
        from agents.run import ModelInputData

        model_data = data.model_data
        items = list(model_data.input)
        flat: list[Message] = []
        owner: list[int] = []  # flat message -> first item index
        members: list[list[int]] = []  # flat message -> its item indexes
        system: list[str] = []
        prev_call = False
        for i, item in enumerate(items):
            d = _item_dict(item)
            if isinstance(d, Mapping) and d.get("role") in ("system", "developer"):
                system.append(str(d.get("content") if isinstance(d.get("content"), str)
                                  else ""))
            msgs = self.convert(item, _convert)
            is_call = isinstance(d, Mapping) and d.get("type") == "function_call"
            if is_call and flat and prev_call and flat[-1].role == "assistant":
                last = flat[-1]  # parallel calls of one response: one assistant message
                flat[-1] = Message(role="assistant", text=last.text, thinking=last.thinking,
                                   tool_calls=last.tool_calls + msgs[0].tool_calls)
                members[-1].append(i)
            else:
                for m in msgs:
                    flat.append(m)
                    owner.append(i)
                    members.append([i])
            prev_call = bool(msgs) and msgs[-1].role == "assistant"
        kept, changed = self.pack(flat, "\n\n".join(t for t in system if t)
                                  + (model_data.instructions or ""))
        keep_items: dict[int, str | None] = {}
        for j in kept:
            for i in members[j]:
                keep_items[i] = changed.get(j)
        out: list[Any] = []
        for i, item in enumerate(items):
            d = _item_dict(item)
            if isinstance(d, Mapping) and d.get("role") in ("system", "developer"):
                out.append(item)
                continue
            if i in keep_items:
                text = keep_items[i]
                if text is not None and isinstance(d, Mapping) \
                        and d.get("type") == "function_call_output":
                    item = {**d, "output": text}
                out.append(item)
            elif not self.convert(item, _convert):
                # an item without a message of its own goes with the next kept item
                nxt = next((k for k in range(i + 1, len(items))
                            if self.convert(items[k], _convert)), None)
                if nxt is not None and nxt in keep_items:
                    out.append(item)
        return ModelInputData(input=out, instructions=model_data.instructions)
