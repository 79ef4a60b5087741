"""What the framework hooks share: one packer per hook, a conversion memo, and the map
from kept :class:`Message` objects back to the framework's own objects."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .._config import PackerConfig
from .._counter import Counter
from .._model import Message, ToolDef
from .._packer import Packed, Packer

__all__ = ["SessionPacker"]


class SessionPacker:
    """A :class:`Packer` plus the bookkeeping the hooks need.

    ``system`` and ``tools`` are what the framework sends besides the messages and the
    hook cannot see (tool definitions): pass them so the budget counts them, or keep a
    ``safety_margin`` in ``config`` for them. ``last`` is the last :class:`Packed` call
    (its ``ledger`` explains every decision)."""

    def __init__(self, config: PackerConfig, *, counter: Counter | None = None,
                 system: str = "", tools: Iterable[ToolDef | Mapping[str, Any]] = (),
                 session_id: str | None = None) -> None:
        self.config = config
        self.packer = Packer(config, counter=counter, session_id=session_id)
        self.system = system
        self.tools = tuple(tools)
        self.last: Packed | None = None
        self.cut_moves: list[bool] = []
        """Per call: whether the history prefix was rewritten (``ledger.cut_moved``)."""
        self._memo: dict[int, tuple[Any, Any]] = {}

    def convert(self, obj: Any, fn: Callable[[Any], Any]) -> Any:
        """``fn(obj)``, memoized by object identity (framework messages are not mutated
        once in the history)."""
        hit = self._memo.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        out = fn(obj)
        if len(self._memo) > 200_000:
            self._memo.clear()
        self._memo[id(obj)] = (obj, out)
        return out

    def pack(self, messages: Sequence[Message], system: str = "") -> tuple[list[int],
                                                                          dict[int, str]]:
        """Pack ``messages``; return the kept indexes and, per kept tool result whose text
        was truncated or cleared, its new text."""
        sys_text = "\n\n".join(t for t in (self.system, system) if t)
        packed = self.packer.pack(system=sys_text, tools=self.tools, history=messages)
        self.last = packed
        self.cut_moves.append(packed.ledger.cut_moved)
        kept = packed.history_indexes()
        changed = {i: m.text for i, m in zip(kept, packed.messages, strict=True)
                   if m.role == "tool" and m.text != messages[i].text}
        return kept, changed
