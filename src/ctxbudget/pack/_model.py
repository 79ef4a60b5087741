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

__all__ = ["Chunk", "Message", "Role", "ToolCall", "ToolDef", "parse_chunks", "parse_messages",
           "parse_tools"]

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
class Message:
    """One conversation message.

    ``role="tool"`` is one tool result (``tool_call_id`` names its call); an assistant
    message may carry ``tool_calls``. Anthropic user messages holding several
    ``tool_result`` blocks become several tool messages.
    """

    role: Role
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    is_error: bool = False


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
            elif isinstance(block, Mapping) and block.get("type") in (
                    "text", "input_text", "output_text"):
                parts.append(str(block.get("text", "")))
            else:
                raise InputFormatError(f"{where}: unsupported content block {block!r:.80}")
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
    content = m.get("content")
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
        fn = tc.get("function", {})
        calls.append(ToolCall(id=str(tc["id"]), name=str(fn.get("name", "")),
                              arguments=_args_json(fn.get("arguments", "{}"))))
    if isinstance(content, list) and any(
            isinstance(b, Mapping) and b.get("type") in ("tool_use", "tool_result")
            for b in content):
        out: list[Message] = []
        texts: list[str] = []
        for block in content:
            kind = block.get("type") if isinstance(block, Mapping) else None
            if kind == "tool_use":
                calls.append(ToolCall(id=str(block["id"]), name=str(block.get("name", "")),
                                      arguments=_args_json(block.get("input", {}))))
            elif kind == "tool_result":
                out.append(Message(role="tool", tool_call_id=str(block["tool_use_id"]),
                                   text=_text_of(block.get("content"), where),
                                   is_error=bool(block.get("is_error", False))))
            else:
                texts.append(_text_of([block], where))
        if role == "user":
            if texts:
                out.append(Message(role="user", text="\n".join(texts)))
            return out
        return [Message(role="assistant", text="\n".join(texts), tool_calls=tuple(calls))]
    return [Message(role=role, text=_text_of(content, where), tool_calls=tuple(calls))]


def parse_messages(items: Iterable[Message | Mapping[str, Any]],
                   source: str = "messages") -> tuple[Message, ...]:
    """Messages from :class:`Message` objects, OpenAI chat dicts or Anthropic dicts."""
    if isinstance(items, list | tuple) and set(map(type, items)) <= {Message}:
        return tuple(items)
    out: list[Message] = []
    for i, m in enumerate(items):
        if isinstance(m, Message):
            out.append(m)
        elif isinstance(m, Mapping):
            out.extend(_from_dict(m, f"{source}[{i}]"))
        else:
            raise InputFormatError(f"{source}[{i}]: expected a message object")
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


