"""Provider-neutral inputs of the packer: messages, tool calls, tool definitions, chunks.

The packer works on these small frozen records and renders them back into provider
request bodies. :func:`parse_messages` accepts OpenAI Chat Completions messages
(``tool_calls`` + ``role: tool``) and Anthropic Messages messages (``tool_use`` /
``tool_result`` content blocks) and converts them once; pass :class:`Message` objects
directly on the hot path (conversion is per call, counting is memoized per message).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InputFormatError
from ._canon import canonical_json

__all__ = ["Chunk", "Message", "Role", "Thinking", "ToolCall", "ToolDef", "parse_chunks",
           "parse_messages", "parse_tools"]

Role = Literal["user", "assistant", "tool"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """One tool call made by the assistant (OpenAI ``tool_calls[]`` / Anthropic ``tool_use``)."""

    id: str
    name: str
    arguments: str = "{}"
    """The arguments object as canonical JSON text (sorted keys, ``(',', ':')``); a JSON
    text given in another form is normalized, a non-JSON text kept as is."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "arguments", _args_json(self.arguments))


@dataclass(frozen=True, slots=True, kw_only=True)
class Thinking:
    """An Anthropic extended-thinking block, sent back byte for byte: ``thinking`` text and
    its ``signature``; a ``redacted_thinking`` block has ``data`` (encrypted) instead."""

    thinking: str = ""
    signature: str = ""
    data: str | None = None

    @property
    def redacted(self) -> bool:
        return self.data is not None

    def block(self) -> dict[str, str]:
        """The Anthropic content block."""
        if self.data is not None:
            return {"type": "redacted_thinking", "data": self.data}
        return {"type": "thinking", "thinking": self.thinking, "signature": self.signature}


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One conversation message.

    ``role="tool"`` is one tool result (``tool_call_id`` names its call); an assistant
    message may carry ``tool_calls``. Anthropic user messages holding several
    ``tool_result`` blocks become several tool messages. ``thinking`` holds an assistant
    message's extended-thinking blocks (Anthropic), rendered before its text and tool calls
    while the message belongs to the current turn, dropped afterwards.
    """

    role: Role
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    is_error: bool = False
    thinking: tuple[Thinking, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolDef:
    """A tool definition; ``parameters`` is the JSON schema as canonical JSON text."""

    name: str
    description: str = ""
    parameters: str = '{"type":"object"}'
    _canonical: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        try:
            schema = json.loads(self.parameters)
        except json.JSONDecodeError:
            raise InputFormatError(f"tool {self.name!r}: parameters is not JSON") from None
        object.__setattr__(self, "parameters", canonical_json(schema))
        object.__setattr__(self, "_canonical", canonical_json(
            {"name": self.name, "description": self.description, "parameters": self.schema}))

    @property
    def schema(self) -> Any:
        return json.loads(self.parameters)

    def canonical_text(self) -> str:
        """What is counted and hashed: the neutral definition as canonical JSON."""
        return self._canonical


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """A retrieved chunk: ``score`` is its relevance (higher is better)."""

    id: str
    text: str
    score: float = 0.0


# --------------------------------------------------------------------------- parsing


_TEXT_BLOCKS = ("text", "input_text", "output_text")
_THINKING_BLOCKS = ("thinking", "redacted_thinking")


def _plain(obj: Any) -> Any:
    """An SDK object (pydantic model: ``anthropic`` / ``openai`` response types) as plain
    data; anything else unchanged."""
    if isinstance(obj, Mapping | str) or obj is None:
        return obj
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_none=True, warnings=False)
    return obj


def _blocks(content: Any) -> Any:
    if isinstance(content, list | tuple):
        return [_plain(b) for b in content]
    return content


def _text_of(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and block.get("type") in _TEXT_BLOCKS:
                parts.append(str(block.get("text", "")))
            else:
                kind = block.get("type") if isinstance(block, Mapping) else type(block).__name__
                raise InputFormatError(f"{where}: unsupported content block type {kind!r} "
                                       "(text, tool_use, tool_result, thinking and "
                                       "redacted_thinking blocks are supported)")
        return "\n".join(parts)
    raise InputFormatError(f"{where}: content must be a string or a list of blocks")


def _args_json(value: Any) -> str:
    if isinstance(value, str):
        text = value
        try:
            value = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError:
            return text
    return canonical_json(value)


def _from_dict(m: Mapping[str, Any], where: str) -> list[Message]:
    role = m.get("role")
    content = _blocks(m.get("content"))
    kind = m.get("type")
    if role is None and kind == "function_call":  # OpenAI Responses output / input item
        return [Message(role="assistant", tool_calls=(ToolCall(
            id=str(m.get("call_id") or m.get("id") or ""), name=str(m.get("name", "")),
            arguments=_args_json(m.get("arguments", "{}"))),))]
    if role is None and kind == "function_call_output":
        output = m.get("output")
        return [Message(role="tool", tool_call_id=str(m.get("call_id", "")),
                        text=output if isinstance(output, str)
                        else _text_of(_blocks(output), where))]
    if role is None and kind == "reasoning":
        return []  # Responses reasoning items are not sent back by these renderers
    if role == "tool":  # OpenAI tool result
        cid = m.get("tool_call_id")
        if not isinstance(cid, str):
            raise InputFormatError(f"{where}: role 'tool' needs a tool_call_id")
        return [Message(role="tool", text=_text_of(content, where), tool_call_id=cid)]
    if role not in ("user", "assistant"):
        raise InputFormatError(f"{where}: role must be user, assistant or tool (got {role!r}); "
                               "pass the system prompt separately")
    calls: list[ToolCall] = []
    for tc in m.get("tool_calls") or ():
        tc = _plain(tc)
        fn = tc.get("function", {})
        calls.append(ToolCall(id=str(tc["id"]), name=str(fn.get("name", "")),
                              arguments=_args_json(fn.get("arguments", "{}"))))
    if isinstance(content, list) and any(
            isinstance(b, Mapping) and b.get("type") in ("tool_use", "tool_result",
                                                         *_THINKING_BLOCKS)
            for b in content):
        out: list[Message] = []
        texts: list[str] = []
        thinking: list[Thinking] = []
        for block in content:
            kind = block.get("type") if isinstance(block, Mapping) else None
            if kind == "thinking":
                thinking.append(Thinking(thinking=str(block.get("thinking", "")),
                                         signature=str(block.get("signature", ""))))
            elif kind == "redacted_thinking":
                thinking.append(Thinking(data=str(block.get("data", ""))))
            elif kind == "tool_use":
                calls.append(ToolCall(id=str(block["id"]), name=str(block.get("name", "")),
                                      arguments=_args_json(block.get("input", {}))))
            elif kind == "tool_result":
                out.append(Message(role="tool", tool_call_id=str(block["tool_use_id"]),
                                   text=_text_of(block.get("content"), where),
                                   is_error=bool(block.get("is_error", False))))
            else:
                texts.append(_text_of([block], where))
        if role == "user":
            if thinking:
                raise InputFormatError(f"{where}: thinking blocks belong to assistant messages")
            if texts:
                out.append(Message(role="user", text="\n".join(texts)))
            return out
        return [Message(role="assistant", text="\n".join(texts), tool_calls=tuple(calls),
                        thinking=tuple(thinking))]
    return [Message(role=role, text=_text_of(content, where), tool_calls=tuple(calls))]


def parse_messages(items: Iterable[Any], source: str = "messages",
                   memo: dict[int, tuple[Any, list[Message]]] | None = None
                   ) -> tuple[Message, ...]:
    """Messages from :class:`Message` objects, OpenAI chat / Responses dicts, Anthropic
    dicts (text, ``tool_use``, ``tool_result``, ``thinking``, ``redacted_thinking``
    blocks), or the SDKs' own objects: an ``anthropic`` ``Message`` or its content blocks
    inside ``{"role": "assistant", "content": resp.content}``, an ``openai``
    ``ChatCompletionMessage`` (``resp.choices[0].message``) and Responses output items
    (``resp.output``: messages, function calls; reasoning items are skipped).
    Consecutive Responses ``function_call`` items join the assistant message before them.
    ``memo`` (id -> (object, messages)) caches the conversion of SDK objects."""
    if isinstance(items, list | tuple) and set(map(type, items)) <= {Message}:
        return tuple(items)
    out: list[Message] = []
    for i, m in enumerate(items):
        if isinstance(m, Message):
            out.append(m)
            continue
        if isinstance(m, Mapping):
            got = _from_dict(m, f"{source}[{i}]")
            kind = m.get("type") if m.get("role") is None else None
        else:
            hit = memo.get(id(m)) if memo is not None else None
            if hit is not None and hit[0] is m:
                got = hit[1]
            else:
                d = _plain(m)
                if not isinstance(d, Mapping):
                    raise InputFormatError(f"{source}[{i}]: expected a message object "
                                           f"(got {type(m).__name__})")
                got = _from_dict(d, f"{source}[{i}]")
                if memo is not None:
                    if len(memo) > 200_000:
                        memo.clear()
                    memo[id(m)] = (m, got)
            kind = getattr(m, "type", None) if getattr(m, "role", None) is None else None
        if kind == "function_call" and got and out and out[-1].role == "assistant":
            prev = out[-1]  # one Responses turn: [message?, function_call, function_call...]
            out[-1] = Message(role="assistant", text=prev.text, thinking=prev.thinking,
                              tool_calls=prev.tool_calls + got[0].tool_calls)
            continue
        out.extend(got)
    return tuple(out)


def parse_tools(items: Iterable[ToolDef | Mapping[str, Any]],
                source: str = "tools") -> tuple[ToolDef, ...]:
    """Tool definitions from OpenAI (``{"type":"function","function":{...}}`` or Responses
    flat form) or Anthropic (``input_schema``) dicts."""
    out: list[ToolDef] = []
    for i, t in enumerate(items):
        if isinstance(t, ToolDef):
            out.append(t)
            continue
        if not isinstance(t, Mapping):
            raise InputFormatError(f"{source}[{i}]: expected a tool definition object")
        d = t.get("function", t)
        name = d.get("name")
        if not isinstance(name, str) or not name:
            raise InputFormatError(f"{source}[{i}]: tool definition needs a name")
        schema = d.get("parameters", d.get("input_schema", {"type": "object"}))
        out.append(ToolDef(name=name, description=str(d.get("description", "")),
                           parameters=canonical_json(schema)))
    return tuple(out)


def parse_chunks(items: Iterable[Chunk | Mapping[str, Any] | str],
                 source: str = "chunks") -> tuple[Chunk, ...]:
    """Chunks from :class:`Chunk`, ``{"id","text","score"}`` dicts or bare strings."""
    out: list[Chunk] = []
    for i, c in enumerate(items):
        if isinstance(c, Chunk):
            out.append(c)
        elif isinstance(c, str):
            out.append(Chunk(id=str(i), text=c))
        elif isinstance(c, Mapping) and isinstance(c.get("text"), str):
            out.append(Chunk(id=str(c.get("id", i)), text=c["text"],
                             score=float(c.get("score", 0.0))))
        else:
            raise InputFormatError(f"{source}[{i}]: expected {{'id','text','score'}}")
    return tuple(out)


def tool_call_ids(messages: Sequence[Message]) -> set[str]:
    return {c.id for m in messages for c in m.tool_calls}


