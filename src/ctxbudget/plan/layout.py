"""Lay out every call of a session: its components, prompt segments, breakpoints, time.

Prompt order: the fixed components (spec order), then the history (one segment per
kept turn, or a summary segment), then the current call's retrieved context, tool
outputs and user message (never shared with another call). The output is generated.

History policies decide which history segments a turn sends:

- ``none``: every completed turn;
- ``sliding_window`` ``turns: N``: the last N completed turns; ``tokens: T``: the most
  recent whole turns whose sizes add up to at most T;
- ``summarize`` ``at_tokens: T, to_tokens: S``: turns accumulate; when the history would
  exceed T it is replaced by one S-token summary (a new segment, so a cached history
  prefix is rewritten), produced by an extra call billed as T-ish input + S output.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from .spec import BudgetSpec, SlidingPolicy, SummarizePolicy

__all__ = ["CallLayout", "layout_session", "policy_label"]


def policy_label(policy: object) -> str:
    """A short stable name for a history policy."""
    if isinstance(policy, SlidingPolicy):
        w = policy.sliding_window
        return f"sliding_window(turns={w.turns})" if w.turns is not None \
            else f"sliding_window(tokens={w.tokens})"
    if isinstance(policy, SummarizePolicy):
        s = policy.summarize
        return f"summarize(at={s.at_tokens},to={s.to_tokens})"
    return "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallLayout:
    """One planned API call."""

    turn: int
    index: int
    """Position within the turn (0-based); -1 for a summarization call."""
    at: float
    """Seconds since the session started."""
    components: Mapping[str, int]
    """Tokens per component in this call's prompt (fixed names, then variable ones)."""
    segments: Sequence[tuple[Hashable, int]]
    breakpoints: Sequence[int]
    output_tokens: int

    @property
    def prompt_tokens(self) -> int:
        return sum(t for _, t in self.segments)


def layout_session(
    spec: BudgetSpec,
    fixed: Sequence[tuple[str, int]],
    growth: Sequence[int],
    policy: object,
    turns: int,
    *,
    fixed_versions: Mapping[str, Hashable] | None = None,
    break_cache: bool = False,
) -> list[CallLayout]:
    """All calls of a ``turns``-turn session, in time order (summaries before their turn).

    ``fixed_versions`` gives a fixed component a content version (a changed prompt);
    ``growth[k-1]`` is what turn k adds to the history. ``break_cache`` makes the first
    prompt segment differ on every call (e.g. a timestamp interpolated into the system
    prompt), so no call can read another's cached prefix.
    """
    v = spec.variable
    s = spec.session
    k_calls = s.calls_per_turn
    gap_calls = s.seconds_between_calls
    gap_turns = s.seconds_between_turns if s.seconds_between_turns is not None else gap_calls
    versions = fixed_versions or {}
    fixed_segs: list[tuple[Hashable, int]] = [
        (("fixed", name, versions.get(name)), tok) for name, tok in fixed]
    n_cacheable = len(spec.cacheable_fixed())
    cache_history = spec.caching.enabled and spec.caching.history
    retrieved = v.retrieved.total
    tool_out = v.tool_outputs.tokens
    user = v.user_message.tokens
    out_tok = v.output.tokens

    history: list[tuple[Hashable, int]] = []
    calls: list[CallLayout] = []
    now = 0.0
    for t in range(1, turns + 1):
        if t > 1:
            history.append((("h", t - 1), growth[t - 2]))
            now += gap_turns
            summary: CallLayout | None = None
            if isinstance(policy, SlidingPolicy):
                w = policy.sliding_window
                if w.turns is not None:
                    history = history[-w.turns:]
                else:
                    assert w.tokens is not None
                    kept: list[tuple[Hashable, int]] = []
                    total = 0
                    for seg in reversed(history):
                        if total + seg[1] > w.tokens:
                            break
                        kept.append(seg)
                        total += seg[1]
                    history = kept[::-1]
            elif isinstance(policy, SummarizePolicy):
                sm = policy.summarize
                size = sum(tk for _, tk in history)
                if size > sm.at_tokens:
                    if sm.charge_summary_call:
                        summary = CallLayout(
                            turn=t, index=-1, at=now, components={"summarized_history": size},
                            segments=((("summarize", t), size),), breakpoints=(),
                            output_tokens=sm.to_tokens)
                    history = [(("summary", t), sm.to_tokens)]
            if summary is not None:
                calls.append(summary)
        hist_tokens = sum(tk for _, tk in history)
        for j in range(k_calls):
            if j > 0:
                now += gap_calls
            segs = [*fixed_segs, *history, (("call", t, j), retrieved + tool_out + user)]
            if break_cache and segs:
                segs[0] = ((segs[0][0], "broken", t, j), segs[0][1])
            bps: list[int] = []
            if n_cacheable:
                bps.append(n_cacheable)
            if cache_history and history:
                bps.append(len(fixed_segs) + len(history))
            comps = {name: tok for name, tok in fixed}
            comps.update(history=hist_tokens, retrieved=retrieved, tool_outputs=tool_out,
                         user_message=user)
            calls.append(CallLayout(turn=t, index=j, at=now, components=comps, segments=segs,
                                    breakpoints=bps, output_tokens=out_tok))
    return calls
