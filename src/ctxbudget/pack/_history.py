"""History policy: atomic units, turns, and the hysteresis cut point.

A *unit* is what is kept or dropped as a whole: a user message, an assistant message,
or a tool round (an assistant message with ``tool_calls`` plus all its results).
A *turn* starts at a user message. Keeping units from index ``c`` on also keeps the
user message that opened unit ``c``'s turn (its *anchor*: in an agent loop, the request
that started the loop) and, when pinned, the session's first user message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ._config import HistoryPolicy
from ._ledger import Decision
from ._model import Message

__all__ = ["Unit", "UnitTable", "build_units", "choose_cut"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Unit:
    kind: str
    """``user``, ``assistant`` or ``round``."""
    start: int
    """Index of its first message in the session history."""
    end: int
    tokens: int
    anchor: int
    """Unit index of its turn's user message (-1: none)."""


class UnitTable:
    """Units plus suffix sums, for O(1) kept-token queries at any cut."""

    __slots__ = ("first_user", "pin", "suffix", "turn_starts", "units")

    def __init__(self, units: list[Unit], pin_first_user: bool) -> None:
        self.units = units
        suffix = [0] * (len(units) + 1)
        acc = 0
        for i in range(len(units) - 1, -1, -1):
            acc += units[i].tokens
            suffix[i] = acc
        self.suffix = suffix
        self.turn_starts = [i for i, u in enumerate(units) if u.kind == "user"]
        self.first_user = self.turn_starts[0] if self.turn_starts else -1
        self.pin = pin_first_user

    def __len__(self) -> int:
        return len(self.units)

    def anchor(self, c: int) -> int:
        """The user unit kept with a cut at ``c`` (-1: none needed or none exists)."""
        if not self.units:
            return -1
        a = self.units[c].anchor if c < len(self.units) else self.units[-1].anchor
        return a if 0 <= a < c else -1

    def extras(self, c: int) -> list[int]:
        """Unit indexes kept before ``c``: the anchor and the pinned first user message."""
        out = []
        a = self.anchor(c)
        if self.pin and 0 <= self.first_user < c and self.first_user != a:
            out.append(self.first_user)
        if a >= 0:
            out.append(a)
        return out

    def kept(self, c: int) -> int:
        """Tokens kept with a cut at unit ``c`` (non-increasing in ``c``)."""
        return self.suffix[c] + sum(self.units[i].tokens for i in self.extras(c))

    def turns(self, c: int) -> int:
        n = sum(1 for s in self.turn_starts if s >= c)
        return n + (1 if self.anchor(c) >= 0 else 0)

    def unit_at(self, message_index: int) -> int:
        """First unit starting at or after ``message_index``."""
        lo, hi = 0, len(self.units)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.units[mid].start < message_index:
                lo = mid + 1
            else:
                hi = mid
        return lo


def build_units(msgs: Sequence[Message], tokens_of: Callable[[Message], int],
                decisions: list[Decision], pin_first_user: bool) -> UnitTable:
    """Group messages into units; drop (and explain) what cannot be sent validly: empty
    messages, tool rounds missing a result, tool results without their call."""
    units: list[Unit] = []
    anchor = -1
    n = len(msgs)
    i = 0
    while i < n:
        m = msgs[i]
        role = m.role
        if role == "user":
            if not m.text:
                decisions.append(Decision(component="history", action="dropped",
                                          item=f"message {i}", reason="empty user message"))
                i += 1
                continue
            anchor = len(units)
            units.append(Unit(kind="user", start=i, end=i + 1, tokens=tokens_of(m),
                              anchor=anchor))
            i += 1
        elif role == "assistant":
            if not m.tool_calls:
                if m.text:
                    units.append(Unit(kind="assistant", start=i, end=i + 1,
                                      tokens=tokens_of(m), anchor=anchor))
                else:
                    decisions.append(Decision(component="history", action="dropped",
                                              item=f"message {i}",
                                              reason="empty assistant message"))
                i += 1
                continue
            want = {c.id for c in m.tool_calls}
            got: set[str] = set()
            tok = tokens_of(m)
            j = i + 1
            while j < n and msgs[j].role == "tool" and msgs[j].tool_call_id in want \
                    and msgs[j].tool_call_id not in got:
                got.add(msgs[j].tool_call_id)  # type: ignore[arg-type]
                tok += tokens_of(msgs[j])
                j += 1
            if got == want and len(want) == len(m.tool_calls):
                units.append(Unit(kind="round", start=i, end=j, tokens=tok, anchor=anchor))
            else:
                missing = sorted(want - got)
                decisions.append(Decision(
                    component="history", action="dropped", item=f"messages {i}..{j - 1}",
                    tokens_before=tok,
                    reason="tool round without results for call(s) "
                           f"{', '.join(missing) or '(duplicate ids)'}: a call and its "
                           "results are sent together or not at all"))
            i = j
        else:
            decisions.append(Decision(component="tool_outputs", action="dropped",
                                      item=f"message {i}", tokens_before=tokens_of(m),
                                      reason=f"tool result {m.tool_call_id!r} does not follow "
                                             "its tool call"))
            i += 1
    return UnitTable(units, pin_first_user)


def choose_cut(table: UnitTable, cut: int, budget: int, policy: HistoryPolicy) -> tuple[int, str]:
    """The new cut (unit index, never before ``cut``) and why it moved ('' = it did not)."""
    c = min(cut, len(table))
    why = []
    if policy.mode == "turns" and policy.max_turns is not None and policy.keep_turns \
            and table.turns(c) > policy.max_turns:
        starts = [s for s in table.turn_starts if s >= c]
        keep_from = starts[-policy.keep_turns] if len(starts) >= policy.keep_turns else c
        if keep_from > c:
            why.append(f"{table.turns(c)} turns > max_turns={policy.max_turns}; "
                       f"kept the last {policy.keep_turns}")
            c = keep_from
    high = int(budget * policy.high_watermark)
    if table.kept(c) > high:
        low = int(budget * policy.low_watermark)
        before = table.kept(c)
        while c < len(table) and table.kept(c) > low:
            c += 1
        why.append(f"conversation {before} tokens > high watermark {high} "
                   f"({policy.high_watermark:g} x {budget}); cut moved to keep "
                   f"{table.kept(c)} <= low watermark {low}")
    return c, "; ".join(why)
