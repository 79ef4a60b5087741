"""Records of the packer: the packed call, the overflow error, and session / plan state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import CtxBudgetError
from ._config import PackerConfig
from ._history import UnitTable
from ._ledger import Decision, Ledger
from ._model import Message, ToolDef
from ._prepare import Prepared
from ._retrieval import SelectedChunk

__all__ = ["ContextOverflow", "Packed", "await_", "component_at", "framing"]


class ContextOverflow(CtxBudgetError):
    """What cannot be trimmed (tools, system, docs, memory, the user message and the turn's
    anchor) does not fit ``window - output_reserve - safety_margin``."""

    def __init__(self, needed: int, limit: int, components: Mapping[str, int]) -> None:
        self.needed = needed
        self.limit = limit
        self.components = dict(components)
        parts = ", ".join(f"{k} {v}" for k, v in components.items() if v)
        super().__init__(f"context needs {needed} tokens after every trim, over the limit "
                         f"of {limit} (window - output reserve - margin): {parts}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Packed:
    """One packed call, provider-neutral. Render it with ``render_anthropic`` /
    ``render_openai_chat`` / ``render_openai_responses``."""

    tools: tuple[ToolDef, ...]
    system: tuple[str, ...]
    """Static system parts: the system prompt, then persistent docs."""
    epoch: tuple[str, ...]
    """Memory and summary texts (rendered after the static system parts)."""
    messages: tuple[Message, ...]
    """The kept history."""
    final: tuple[str, ...]
    """Text blocks of the closing user message: volatile context, chunks, user message."""
    ledger: Ledger
    config: PackerConfig
    session_id: str | None = None
    history_spans: tuple[tuple[int, int], ...] = ()
    """Where ``messages`` come from: ``(start, end)`` index ranges of the session's history
    (as parsed), in order; the kept messages are those ranges concatenated."""
    render_cache: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    """The session's rendered-message cache (shared by the renderers; see ``_render``)."""

    @property
    def breakpoints(self) -> tuple[int, ...]:
        return self.ledger.breakpoints

    def history_indexes(self) -> list[int]:
        """The history index of each kept message (``messages[k]`` is, possibly truncated
        or without its earlier-turn thinking, history message ``history_indexes()[k]``)."""
        return [i for a, b in self.history_spans for i in range(a, b)]


@dataclass(slots=True)
class _Session:
    cut: int = 0
    cleared: int = 0
    summary: str | None = None
    tool_names: frozenset[str] | None = None
    static_hash: str | None = None
    prev_hashes: tuple[str, ...] = ()
    prev_breakpoints: tuple[int, ...] = ()
    calls: int = 0
    history_len: int = 0
    first_key: tuple[str, str] | None = None
    kept_key: tuple[int, ...] = ()
    truncating: bool = False
    conv_budget: int = -1
    over: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Plan:
    tools: tuple[ToolDef, ...]
    system: tuple[str, ...]
    memory: str | None
    msgs: list[Message]
    ptoks: list[int]
    prep: Prepared
    table: UnitTable
    cut_unit: int
    cut_moved: bool
    chunks: list[SelectedChunk]
    volatile: str | None
    user: str | None
    has_system: bool
    decisions: list[Decision]
    budgets: dict[str, int]
    pending_summary: list[Message] | None
    summary_room: int
    new_cleared: int
    history_len: int
    first_key: tuple[str, str] | None
    tool_names: frozenset[str] | None
    reset: bool
    truncating: bool = False
    conv_budget: int = 0
    catalog: tuple[ToolDef, ...] = ()
    chunk_list: tuple[Any, ...] = ()
    summary_prev: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def component_at(i: int, n_tools: int, sys_blocks: list[tuple[str, str]],
                  kept: list[Message], final: list[tuple[str, str]]) -> str:
    if i < n_tools:
        return "tools"
    i -= n_tools
    if i < len(sys_blocks):
        return sys_blocks[i][0]
    i -= len(sys_blocks)
    if i < len(kept):
        return "tool_outputs" if kept[i].role == "tool" else "history"
    return final[i - len(kept)][0]


def framing(provider: str, model: str) -> tuple[int, int, int, int, int, int]:
    """(per message, per tool, tool block, request base, reply priming, per name) as
    ``ctxbudget.tokens`` frames a request for this provider."""
    from ..tokens._framing import framing_for

    f = framing_for("openai" if provider == "openai" else "anthropic", model)
    return (f.per_message, f.per_tool, f.tools_base, f.request_base, f.reply_priming,
            f.per_name)


async def await_(x: Any) -> Any:
    return await x
