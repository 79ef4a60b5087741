"""Invariants of the cache replay over random sessions (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ctxbudget.plan.caching import PromptCall, replay


@st.composite
def sessions(draw: st.DrawFn) -> tuple[list[PromptCall], str, str, int]:
    fixed = draw(st.integers(0, 5000))
    n = draw(st.integers(1, 12))
    growth = draw(st.lists(st.integers(0, 3000), min_size=n, max_size=n))
    gaps = draw(st.lists(st.floats(0, 4000), min_size=n, max_size=n))
    rolling = draw(st.booleans())
    calls = []
    now = 0.0
    for t in range(n):
        now += gaps[t]
        hist = [(("h", k), growth[k]) for k in range(t)]
        segs = [(("fixed",), fixed), *hist, (("call", t), draw(st.integers(0, 2000)))]
        bps = [1] + ([1 + len(hist)] if rolling and hist else [])
        calls.append(PromptCall(at=now, segments=segs, breakpoints=bps, output_tokens=10))
    mode = draw(st.sampled_from(["explicit", "automatic", "none"]))
    ttl = draw(st.sampled_from(["5m", "1h"]))
    return calls, mode, ttl, draw(st.sampled_from([0, 1024, 2048, 4096]))


@settings(max_examples=150, deadline=None)
@given(sessions())
def test_buckets_add_up_and_reads_are_earned(case: tuple[list[PromptCall], str, str, int]) -> None:
    calls, mode, ttl, min_tokens = case
    usages = replay(calls, mode=mode, ttl=ttl, min_tokens=min_tokens,  # type: ignore[arg-type]
                    openai_increments=mode == "automatic")
    written = 0
    seen_prompt = 0
    for call, u in zip(calls, usages, strict=True):
        prompt = sum(t for _, t in call.segments)
        assert u.prompt_tokens == prompt  # buckets are disjoint and cover the prompt
        assert u.output_tokens == 10
        if mode == "none":
            assert u.cache_read_tokens == 0 and u.cache_write_tokens == 0
        if mode == "automatic":
            assert u.cache_write_tokens == 0  # no write premium
            assert u.cache_read_tokens == 0 or u.cache_read_tokens >= max(min_tokens, 1024)
            assert u.cache_read_tokens <= seen_prompt
        if mode == "explicit":
            assert u.cache_read_tokens <= written  # only what was written can be read
            last_bp = sum(t for _, t in call.segments[:max(call.breakpoints)])
            assert u.cache_read_tokens + u.cache_write_tokens <= last_bp
            if ttl == "5m":
                assert u.cache_write_1h_tokens == 0
            else:
                assert u.cache_write_5m_tokens == 0
        written += u.cache_write_tokens
        seen_prompt = max(seen_prompt, prompt)
