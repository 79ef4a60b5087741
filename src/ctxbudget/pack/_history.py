"""History policy: atomic units, turns, and the hysteresis cut point.

A *unit* is what is kept or dropped as a whole: a user message, an assistant message,
or a tool round (an assistant message with ``tool_calls`` plus all its results).
A *turn* starts at a user message. Keeping units from index ``c`` on also keeps the
user message that opened unit ``c``'s turn (its *anchor*: in an agent loop, the request
that started the loop) and, when pinned, the session's first user message.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate

from ._config import HistoryPolicy
from ._ledger import Decision
from ._model import Message

__all__ = ["UnitTable", "build_units", "choose_cut"]


class UnitTable:
    """Units as parallel lists (``kinds``: ``user`` / ``assistant`` / ``round``; message
    ``starts`` / ``ends``; ``tokens``; ``anchors``: unit index of the turn's user message,
    -1 when none) plus suffix sums, for O(1) kept-token queries at any cut."""

    __slots__ = ("anchors", "ends", "first_user", "kinds", "pin", "starts", "suffix",
                 "tokens", "turn_starts")

    def __init__(self, kinds: list[str], starts: list[int], ends: list[int], tokens: list[int],
                 anchors: list[int], pin_first_user: bool, turn_starts: list[int]) -> None:
        self.kinds, self.starts, self.ends = kinds, starts, ends
        self.tokens, self.anchors = tokens, anchors
        suffix = list(accumulate(reversed(tokens), initial=0))
        suffix.reverse()
        self.suffix = suffix
        self.turn_starts = turn_starts
        self.first_user = self.turn_starts[0] if self.turn_starts else -1
        self.pin = pin_first_user

    def __len__(self) -> int:
        return len(self.kinds)

    def anchor(self, c: int) -> int:
        """The user unit kept with a cut at ``c`` (-1: none needed or none exists)."""
        if not self.kinds:
            return -1
        a = self.anchors[c] if c < len(self.kinds) else self.anchors[-1]
        return a if 0 <= a < c else -1

    def extras(self, c: int) -> list[int]:
        """Unit indexes kept before ``c``: the pinned first user message and the anchor."""
        out = []
        a = self.anchor(c)
        if self.pin and 0 <= self.first_user < c and self.first_user != a:
            out.append(self.first_user)
        if a >= 0:
            out.append(a)
        return out

    def kept(self, c: int) -> int:
        """Tokens kept with a cut at unit ``c`` (non-increasing in ``c``)."""
        return self.suffix[c] + sum(self.tokens[i] for i in self.extras(c))

    def turns(self, c: int) -> int:
        n = len(self.turn_starts) - bisect_left(self.turn_starts, c)
        return n + (1 if self.anchor(c) >= 0 else 0)

    def unit_at(self, message_index: int) -> int:
        """First unit starting at or after ``message_index``."""
        return bisect_left(self.starts, message_index)


def build_units(msgs: Sequence[Message], toks: Sequence[int],
                decisions: list[tuple[int, Decision]], pin_first_user: bool,
                resume: UnitTable | None = None) -> UnitTable:
    """Group messages into units; drop (and explain) what cannot be sent validly: empty
    messages, tool rounds missing a result, tool results without their call.
    ``toks[i]`` is message ``i``'s token count; ``decisions`` receives
    ``(message index, decision)``. With ``resume`` (the table of a prefix of the same
    messages), grouping continues after its last unit."""
    if resume is not None and resume.kinds:
        kinds, starts, ends = list(resume.kinds), list(resume.starts), list(resume.ends)
        tokens, anchors = list(resume.tokens), list(resume.anchors)
        turn_starts = list(resume.turn_starts)
        anchor = turn_starts[-1] if turn_starts else -1
        i = ends[-1]
    else:
        kinds, starts, ends, tokens, anchors, turn_starts = [], [], [], [], [], []
        anchor = -1
        i = 0
    n = len(msgs)
    while i < n:
        m = msgs[i]
        role = m.role
        if role == "user":
            if not m.text:
                decisions.append((i, Decision(component="history", action="dropped",
                                              item=f"message {i}", reason="empty user message")))
                i += 1
                continue
            anchor = len(kinds)
            turn_starts.append(anchor)
            kinds.append("user")
            starts.append(i)
            ends.append(i + 1)
            tokens.append(toks[i])
            anchors.append(anchor)
            i += 1
        elif role == "assistant":
            if not m.tool_calls:
                if m.text:
                    kinds.append("assistant")
                    starts.append(i)
                    ends.append(i + 1)
                    tokens.append(toks[i])
                    anchors.append(anchor)
                else:
                    decisions.append((i, Decision(component="history", action="dropped",
                                                  item=f"message {i}",
                                                  reason="empty assistant message")))
                i += 1
                continue
            calls = m.tool_calls
            tok = toks[i]
            j = i + 1
            if len(calls) == 1:  # the common case, without sets
                want_id = calls[0].id
                if j < n and msgs[j].role == "tool" and msgs[j].tool_call_id == want_id:
                    tok += toks[j]
                    j += 1
                    ok = True
                else:
                    ok = False
                missing = [] if ok else [want_id]
            else:
                want = {c.id for c in calls}
                got: set[str] = set()
                while j < n and msgs[j].role == "tool" and msgs[j].tool_call_id in want \
                        and msgs[j].tool_call_id not in got:
                    got.add(msgs[j].tool_call_id)  # type: ignore[arg-type]
                    tok += toks[j]
                    j += 1
                ok = got == want and len(want) == len(calls)
                missing = sorted(want - got)
            if ok:
                kinds.append("round")
                starts.append(i)
                ends.append(j)
                tokens.append(tok)
                anchors.append(anchor)
            else:
                decisions.append((i, Decision(
                    component="history", action="dropped", item=f"messages {i}..{j - 1}",
                    tokens_before=tok,
                    reason="tool round without results for call(s) "
                           f"{', '.join(missing) or '(duplicate ids)'}: a call and its "
                           "results are sent together or not at all")))
            i = j
        else:
            decisions.append((i, Decision(component="tool_outputs", action="dropped",
                                          item=f"message {i}", tokens_before=toks[i],
                                          reason=f"tool result {m.tool_call_id!r} does not "
                                                 "follow its tool call")))
            i += 1
    return UnitTable(kinds, starts, ends, tokens, anchors, pin_first_user, turn_starts)


def choose_cut(table: UnitTable, cut: int, budget: int, policy: HistoryPolicy) -> tuple[int, str]:
    """The new cut (unit index, never before ``cut``) and why it moved ('' = it did not)."""
    c = min(cut, len(table))
    why = []
    if policy.mode == "turns" and policy.max_turns is not None and policy.keep_turns \
            and table.turns(c) > policy.max_turns:
        starts = table.turn_starts[bisect_left(table.turn_starts, c):]
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
