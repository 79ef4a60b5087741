"""What of a chat request is text, and how many framing tokens the provider adds.

``layout_*`` functions flatten messages / tool definitions / request bodies into
the texts a tokenizer must count plus a framing overhead. Figures:

- OpenAI chat messages: OpenAI cookbook "How to count tokens with tiktoken"
  (``num_tokens_from_messages``): 3 tokens per message, every string value
  (role, content, name) encoded, +1 when a ``name`` is present, +3 priming the
  reply. gpt-3.5-turbo-0301: 4 per message, -1 for a name. Documented for the
  gpt-3.5-turbo, gpt-4 and gpt-4o families, so exact there; applied as an
  estimate elsewhere (gpt-5.6 measured within 1 token of it).
- Anthropic messages: estimate of 4 per request + 3 per message (fitted on two
  recorded Claude Sonnet 4.5 calls); tools add Anthropic's documented tool-use
  system prompt (346 tokens, tool_choice auto/none, Claude 4 family).
- Gemini: 1 per message plus the role text (one recorded gemini-2.5-flash call).
- Tools everywhere: the canonical JSON of each tool (sorted keys, ``,``/``:``
  separators, ``cache_control`` dropped) plus a per-tool overhead, plus a fixed
  block overhead once; always an estimate, since providers render schemas their
  own way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputFormatError

__all__ = [
    "Framing",
    "Layout",
    "canonical_json",
    "classify",
    "framing_for",
    "layout_messages",
    "layout_request",
    "layout_tools",
    "tool_name",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Framing:
    """Overhead constants of one provider family (tokens)."""

    per_message: int
    per_name: int
    reply_priming: int
    request_base: int
    per_tool: int
    tools_base: int
    messages_exact: bool
    source: str


_OPENAI_DOC = "OpenAI cookbook num_tokens_from_messages"
_FRAMINGS: dict[str, Framing] = {
    "openai": Framing(per_message=3, per_name=1, reply_priming=3, request_base=0, per_tool=8,
                      tools_base=12, messages_exact=True, source=_OPENAI_DOC),
    "anthropic": Framing(per_message=3, per_name=0, reply_priming=0, request_base=4, per_tool=4,
                         tools_base=346, messages_exact=False,
                         source="estimate (4/request + 3/message)"),
    "google": Framing(per_message=1, per_name=0, reply_priming=0, request_base=0, per_tool=4,
                      tools_base=0, messages_exact=False, source="estimate (1/message + role)"),
    "generic": Framing(per_message=4, per_name=1, reply_priming=2, request_base=0, per_tool=8,
                       tools_base=12, messages_exact=False, source="estimate (ChatML-like)"),
}
#: Model-name prefixes for which OpenAI documents the message formula.
_OPENAI_DOCUMENTED = ("gpt-3.5-turbo", "gpt-35-turbo", "gpt-4")
_OPENAI_UNDOCUMENTED = ("gpt-4.1", "gpt-4.5")


def framing_for(family: str, model: str) -> Framing:
    """Framing constants for ``family``; OpenAI exactness depends on the model."""
    f = _FRAMINGS.get(family, _FRAMINGS["generic"])
    if family == "openai":
        name = model.rsplit("/", 1)[-1].lower()
        if "gpt-3.5-turbo-0301" in name:
            f = Framing(**{**_asdict(f), "per_message": 4, "per_name": -1})
        documented = name.startswith(_OPENAI_DOCUMENTED) and not name.startswith(
            _OPENAI_UNDOCUMENTED
        )
        if not documented:
            f = Framing(**{**_asdict(f), "messages_exact": False})
    return f


def _asdict(f: Framing) -> dict[str, Any]:
    return {k: getattr(f, k) for k in Framing.__slots__}


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the same structure gives the same text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(slots=True)
class Layout:
    """Texts to tokenize, framing overhead, and whether the framing is documented."""

    texts: list[str] = field(default_factory=list)
    framing: int = 0
    extra: int = 0  # estimated tokens of non-text parts (images), counted as content
    exact: bool = True
    notes: list[str] = field(default_factory=list)

    def inexact(self, note: str) -> None:
        self.exact = False
        if note not in self.notes:
            self.notes.append(note)


# -- classification --------------------------------------------------------------


def _is_tool(d: Mapping[str, Any]) -> bool:
    if "role" in d:
        return False
    if d.get("type") == "function" or "function" in d:
        return True
    return "name" in d and any(k in d for k in ("input_schema", "parameters", "description"))


def _is_message(d: Mapping[str, Any]) -> bool:
    return "role" in d or "parts" in d or ("type" in d and d.get("type") == "message")


def classify(content: Any) -> str:
    """``"text"``, ``"messages"``, ``"tools"`` or ``"request"``; else InputFormatError."""
    if isinstance(content, str):
        return "text"
    if isinstance(content, Mapping):
        if any(k in content for k in ("messages", "contents", "input", "system", "tools")):
            return "request"
        if _is_message(content):
            return "messages"
        if _is_tool(content):
            return "tools"
        raise InputFormatError("content dict is neither a message, a tool nor a request body")
    if isinstance(content, Sequence) and not isinstance(content, bytes | bytearray):
        if not content:
            return "messages"
        kinds = set()
        for i, item in enumerate(content):
            if not isinstance(item, Mapping):
                raise InputFormatError(f"content[{i}]: expected a dict, got {type(item).__name__}")
            if _is_message(item):
                kinds.add("messages")
            elif _is_tool(item):
                kinds.add("tools")
            else:
                raise InputFormatError(
                    f"content[{i}]: neither a chat message nor a tool definition"
                )
        if len(kinds) > 1:
            raise InputFormatError("content mixes chat messages and tool definitions")
        return kinds.pop()
    raise InputFormatError(
        f"cannot count tokens of {type(content).__name__}: pass text, messages or tools"
    )


# -- messages --------------------------------------------------------------------

_IMAGE_ESTIMATE = {"openai": 85, "anthropic": 1_600, "google": 258, "generic": 765}


def _blocks(lay: Layout, value: Any, family: str, where: str) -> None:
    """Add the text of a message ``content`` (a string or a list of blocks)."""
    if value is None:
        return
    if isinstance(value, str):
        lay.texts.append(value)
        return
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, Sequence):
        lay.texts.append(canonical_json(value))
        lay.inexact(f"{where}: unexpected content type counted as JSON")
        return
    lay.inexact("content blocks: framing of block lists is an estimate")
    for i, block in enumerate(value):
        if isinstance(block, str):
            lay.texts.append(block)
            continue
        if not isinstance(block, Mapping):
            raise InputFormatError(f"{where}[{i}]: content block must be a dict or a string")
        kind = block.get("type")
        if kind in ("text", "input_text", "output_text") or (kind is None and "text" in block):
            lay.texts.append(str(block.get("text", "")))
        elif kind in ("image", "image_url", "input_image") or "inlineData" in block:
            lay.extra += _IMAGE_ESTIMATE.get(family, 765)
            lay.inexact("images counted at a fixed estimate per image")
        elif kind == "tool_use":
            lay.texts.append(str(block.get("name", "")))
            lay.texts.append(canonical_json(block.get("input", {})))
        elif kind == "tool_result":
            _blocks(lay, block.get("content"), family, f"{where}[{i}].content")
        elif kind == "thinking":
            lay.texts.append(str(block.get("thinking", "")))
        elif kind == "redacted_thinking":
            lay.inexact("redacted thinking blocks are not counted")
        elif "functionCall" in block or "functionResponse" in block:
            lay.texts.append(canonical_json(block))
        else:
            lay.texts.append(canonical_json({k: v for k, v in block.items()
                                             if k != "cache_control"}))
            lay.inexact(f"block type {kind!r} counted as its JSON")


def layout_messages(messages: Sequence[Mapping[str, Any]], framing: Framing, family: str,
                    lay: Layout | None = None) -> Layout:
    """Texts + framing of a list of chat messages (OpenAI, Anthropic or Gemini shape)."""
    if lay is None:
        lay = Layout()
        if messages:
            lay.framing += framing.request_base
    if not framing.messages_exact:
        lay.inexact(f"message framing: {framing.source}")
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            raise InputFormatError(f"messages[{i}]: expected a dict")
        lay.framing += framing.per_message
        for key, value in msg.items():
            if key in ("content", "parts"):
                _blocks(lay, value, family, f"messages[{i}].{key}")
            elif key == "tool_calls" and isinstance(value, Sequence):
                lay.inexact("tool_calls framing is an estimate")
                for call in value:
                    fn = call.get("function", {}) if isinstance(call, Mapping) else {}
                    lay.texts.append(str(fn.get("name", "")))
                    lay.texts.append(str(fn.get("arguments", "")))
            elif key == "cache_control":
                continue
            elif isinstance(value, str):
                lay.texts.append(value)
                if key == "name":
                    lay.framing += framing.per_name
            elif value is not None:
                lay.texts.append(canonical_json(value))
                lay.inexact(f"messages[{i}].{key} counted as JSON")
    if messages:
        lay.framing += framing.reply_priming
    return lay


# -- tools -----------------------------------------------------------------------


def tool_name(tool: Mapping[str, Any]) -> str:
    fn = tool.get("function")
    if isinstance(fn, Mapping) and "name" in fn:
        return str(fn["name"])
    return str(tool.get("name", ""))


def tool_text(tool: Mapping[str, Any]) -> str:
    """The canonical JSON a tool definition is counted as (``cache_control`` dropped)."""
    return canonical_json({k: v for k, v in tool.items() if k != "cache_control"})


def layout_tools(tools: Sequence[Mapping[str, Any]], framing: Framing,
                 lay: Layout | None = None) -> Layout:
    lay = lay or Layout()
    if tools:
        lay.inexact(f"tool schema framing is an estimate ({framing.tools_base} per tool block"
                    f" + {framing.per_tool} per tool)")
        lay.framing += framing.tools_base
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            raise InputFormatError(f"tools[{i}]: expected a dict")
        lay.texts.append(tool_text(tool))
        lay.framing += framing.per_tool
    return lay


# -- whole request bodies ----------------------------------------------------------


def layout_request(body: Mapping[str, Any], framing: Framing, family: str) -> Layout:
    """Anthropic (``system`` + ``messages`` + ``tools``), OpenAI chat (``messages``,
    ``tools``), OpenAI Responses (``instructions`` + ``input``) or Gemini
    (``systemInstruction`` + ``contents``) request bodies."""
    lay = Layout()
    lay.framing += framing.request_base
    system = body.get("system", body.get("instructions"))
    if system is not None:
        _blocks(lay, system, family, "system")
    si = body.get("systemInstruction") or body.get("system_instruction")
    if isinstance(si, Mapping):
        _blocks(lay, si.get("parts"), family, "systemInstruction.parts")
    msgs = body.get("messages", body.get("contents", body.get("input", [])))
    if isinstance(msgs, str):
        msgs = [{"role": "user", "content": msgs}]
    if not isinstance(msgs, Sequence):
        raise InputFormatError("request body: messages must be a list")
    layout_messages(msgs, framing, family, lay)
    tools = body.get("tools") or []
    if not isinstance(tools, Sequence):
        raise InputFormatError("request body: tools must be a list")
    layout_tools(tools, framing, lay)
    return lay
