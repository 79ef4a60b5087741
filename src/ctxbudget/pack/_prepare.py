"""History preparation, incremental across the calls of a session.

Per call the packer needs, for the whole history: each message's token count, the
tool-output policy applied (truncation, batch clearing), the units table and the
"before" totals. A session's history is append-only, so when the new history extends the
previous one (checked by a C-level tuple comparison) and the cleared count is unchanged,
everything for the old prefix is reused and only the new tail is processed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate

from ._config import ToolOutputPolicy
from ._counter import Counter
from ._history import UnitTable, build_units
from ._ledger import Decision
from ._model import Message
from ._trim import head_tail

__all__ = ["HistoryPrep", "Prepared"]


@dataclass(slots=True)
class Prepared:
    raw: tuple[Message, ...]
    toks: list[int]
    """Token count of each raw message (overhead included)."""
    result_idx: list[int]
    """Indexes of the tool results."""
    cleared: int
    """How many of the oldest tool results are cleared."""
    msgs: list[Message]
    """Messages after the tool-output policy."""
    ptoks: list[int]
    n_truncated: int
    table: UnitTable
    unit_decisions: list[tuple[int, Decision]]
    hist_before: int
    tool_before: int
    phash: list[str]
    """Block hash of each processed message."""
    papi: list[int]
    """Anthropic content blocks of each processed message."""
    tool_cum: list[int]
    """``tool_cum[i]``: tokens of processed tool results before message ``i``."""
    truncated: list[tuple[int, int, int]]
    """(message index, tokens before, tokens after) of each truncated tool result."""
    turn_start: int
    """Messages from here on belong to the current turn (they keep their thinking)."""
    think_idx: list[int]
    """Indexes of the raw messages that carry thinking blocks."""
    last_user: int
    """Index of the last user message (-1: none)."""


class HistoryPrep:
    """Prepares a session's history, reusing the previous call's work for its prefix."""

    def __init__(self, tokens_of: Callable[[Message], int],
                 hash_of: Callable[[Message], tuple[str, int]], count: Counter,
                 policy: ToolOutputPolicy, pin_first_user: bool, *, truncate: bool = True,
                 keep_thinking: bool = True) -> None:
        self._tokens_of = tokens_of
        self._hash_of = hash_of
        self._count = count
        self._pol = policy
        self._pin = pin_first_user
        self._truncate = truncate and policy.max_tokens is not None
        self._keep_thinking = keep_thinking
        self._alt: dict[int, tuple[Message, Message]] = {}
        self._bare: dict[int, tuple[Message, Message]] = {}
        self._last: Prepared | None = None

    def reset(self) -> None:
        self._last = None

    def _new_cleared(self, cleared: int, n_results: int) -> int:
        pol = self._pol
        if pol.keep_recent is not None and n_results - cleared > pol.keep_recent + pol.clear_batch:
            return n_results - pol.keep_recent
        return cleared

    def _apply(self, m: Message, clear: bool) -> Message:
        """The message as sent: cleared, truncated (head + marker + tail) or as is."""
        hit = self._alt.get(id(m))
        if hit is not None and hit[0] is m and (hit[1].text == self._pol.placeholder) == clear:
            return hit[1]
        pol = self._pol
        if clear:
            alt = Message(role="tool", text=pol.placeholder, tool_call_id=m.tool_call_id,
                          is_error=m.is_error)
        elif self._truncate and pol.max_tokens is not None \
                and self._count(m.text) > pol.max_tokens:
            alt = Message(role="tool", tool_call_id=m.tool_call_id, is_error=m.is_error,
                          text=head_tail(m.text, pol.max_tokens, self._count, pol.head_share))
        else:
            alt = m
        if len(self._alt) > 500_000:
            self._alt.clear()
        self._alt[id(m)] = (m, alt)
        return alt

    def _strip(self, m: Message) -> Message:
        """The message without its thinking blocks (an earlier turn's)."""
        hit = self._bare.get(id(m))
        if hit is not None and hit[0] is m:
            return hit[1]
        bare = Message(role=m.role, text=m.text, tool_calls=m.tool_calls,
                       tool_call_id=m.tool_call_id, is_error=m.is_error)
        if len(self._bare) > 200_000:
            self._bare.clear()
        self._bare[id(m)] = (m, bare)
        return bare

    def prepare(self, raw: tuple[Message, ...], cleared_in: int,
                new_turn: bool = False) -> Prepared:
        """``new_turn``: the call closes with a new user message, so every message of the
        history belongs to an earlier turn (no thinking block is sent back)."""
        last = self._last
        base = 0
        if last is not None and len(raw) >= len(last.raw):
            n = len(last.raw)
            if raw[:n] == last.raw:
                base = n
        # the current turn starts at the last user message with text (or after the
        # history when this call brings a new user message)
        last_user = last.last_user if base and last is not None else -1
        for k in range(len(raw) - 1, base - 1, -1):
            if raw[k].role == "user":
                last_user = k
                break
        turn_start = len(raw) if new_turn else max(last_user, 0)
        tail_think = [base + k for k, m in enumerate(raw[base:]) if m.thinking]
        think_idx = (last.think_idx + tail_think) if base and last is not None \
            else [k for k, m in enumerate(raw) if m.thinking]
        if base and last is not None and think_idx and turn_start != last.turn_start:
            # a thinking message reused from the prefix changed side of the turn start
            lo, hi = sorted((last.turn_start, turn_start))
            j = bisect_left(think_idx, lo)
            if j < len(think_idx) and think_idx[j] < min(hi, base):
                base = 0
        tok = self._tokens_of
        if base:
            assert last is not None
            tail = raw[base:]
            ttoks = [tok(m) for m in tail]
            toks = last.toks + ttoks
            tail_results = [base + k for k, m in enumerate(tail) if m.role == "tool"]
            result_idx = last.result_idx + tail_results
            tool_t = sum(ttoks[i - base] for i in tail_results)
            hist_before = last.hist_before + sum(ttoks) - tool_t
            tool_before = last.tool_before + tool_t
        else:
            toks = [tok(m) for m in raw]
            result_idx = [i for i, m in enumerate(raw) if m.role == "tool"]
            tool_before = sum(toks[i] for i in result_idx)
            hist_before = sum(toks) - tool_before
            tail_results = result_idx
        cleared = self._new_cleared(cleared_in, len(result_idx))
        if base and last is not None and cleared == last.cleared:
            msgs = last.msgs + list(raw[base:])
            ptoks = last.ptoks + toks[base:]
            n_trunc = last.n_truncated
            truncated = list(last.truncated)
            todo = tail_results
            clear_upto = -1
        else:
            base = 0
            msgs = list(raw)
            ptoks = list(toks)
            n_trunc = 0
            truncated = []
            todo = result_idx
            clear_upto = result_idx[cleared - 1] if cleared else -1
        for k in think_idx[bisect_left(think_idx, base):]:
            if not self._keep_thinking or k < turn_start:
                msgs[k] = bare = self._strip(raw[k])
                ptoks[k] = tok(bare)
        if self._truncate or clear_upto >= 0:
            for i in todo:
                m = raw[i]
                alt = self._apply(m, i <= clear_upto)
                if alt is not m:
                    msgs[i] = alt
                    ptoks[i] = tok(alt)
                    if alt.text != self._pol.placeholder:
                        n_trunc += 1
                        truncated.append((i, toks[i], ptoks[i]))
        hashed = [self._hash_of(m) for m in msgs[base:]]
        tail_tool = [ptoks[i] if msgs[i].role == "tool" else 0 for i in range(base, len(msgs))]
        if base and last is not None:
            phash = last.phash + [h for h, _ in hashed]
            papi = last.papi + [a for _, a in hashed]
            tool_cum = last.tool_cum + list(accumulate(tail_tool, initial=last.tool_cum[-1]))[1:]
        else:
            phash = [h for h, _ in hashed]
            papi = [a for _, a in hashed]
            tool_cum = list(accumulate(tail_tool, initial=0))
        decisions: list[tuple[int, Decision]] = []
        resume = last.table if base and last is not None else None
        if resume is not None and last is not None:
            stop = resume.ends[-1] if resume.kinds else 0
            decisions = [(i, d) for i, d in last.unit_decisions if i < stop]
        table = build_units(msgs, ptoks, decisions, self._pin, resume)
        prep = Prepared(raw=raw, toks=toks, result_idx=result_idx, cleared=cleared, msgs=msgs,
                        ptoks=ptoks, n_truncated=n_trunc, table=table,
                        unit_decisions=decisions, hist_before=hist_before,
                        tool_before=tool_before, phash=phash, papi=papi, tool_cum=tool_cum,
                        truncated=truncated, turn_start=turn_start, think_idx=think_idx,
                        last_user=last_user)
        self._last = prep
        return prep
