"""The ledger of one packed call, prefix fingerprints and the expected cache reads.

Minimum cacheable prompt lengths (Anthropic prompt-caching docs, "Cache limitations", as
quoted in anthropics/anthropic-sdk-python#1194 and later 2026 summaries of the docs):
4096 tokens for Claude Opus 4.7, Opus 4.6, Opus 4.5, Haiku 4.5 and Mythos Preview; 1024
for Opus 4.8, Sonnet 4.6, Sonnet 4.5, Opus 4.1, Opus 4, Sonnet 4 and Sonnet 3.7; 2048 for
Haiku 3.5 and Haiku 3. Models not listed (the 5 family) use 1024 until confirmed; set
``PackerConfig.min_cacheable_tokens`` to override. A breakpoint whose prefix is shorter caches
nothing (no error), so the packer does not spend one of the 4 breakpoints there.
OpenAI caches automatically from 1024 tokens, in 128-token steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..cache_rules import ANTHROPIC_LOOKBACK_BLOCKS, OPENAI_CACHE_STEP
from ..cache_rules import min_cacheable_tokens as min_cacheable_tokens_for

__all__ = [
    "ANTHROPIC_LOOKBACK_BLOCKS",
    "Decision",
    "Ledger",
    "expected_cache_read",
    "min_cacheable_tokens",
]

DEFAULT_MIN_CACHEABLE = 1024
OPENAI_MIN_CACHEABLE = min_cacheable_tokens_for("openai", None)


def min_cacheable_tokens(model: str | None, provider: str = "anthropic") -> int:
    """The minimum cacheable prefix for ``model`` (see :mod:`ctxbudget.cache_rules`;
    1024 when the provider is unknown)."""
    return min_cacheable_tokens_for(provider, model) or DEFAULT_MIN_CACHEABLE


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """One policy decision: what happened to an item of a component, and why."""

    component: str
    action: str
    """``dropped``, ``trimmed``, ``truncated``, ``cleared``, ``kept``, ``moved_cut``,
    ``summarized``, ``over_budget``, ``reordered``, ``selected``."""
    item: str
    tokens_before: int = 0
    tokens_after: int = 0
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"component": self.component, "action": self.action, "item": self.item,
                "tokens_before": self.tokens_before, "tokens_after": self.tokens_after,
                "reason": self.reason}


@dataclass(frozen=True, slots=True, kw_only=True)
class Ledger:
    """What one packed call contains and why.

    ``components`` are the tokens sent per component (message overhead included),
    ``components_before`` what was offered; ``total_tokens`` is their sum and never
    exceeds ``limit`` (window - output reserve - safety margin).
    ``prefix_fingerprint`` holds one hash per rendered block, in order (no text).
    ``expected_cache_read_tokens`` is what the provider should read from cache given the
    previous packed call of the session (0 on the first call).
    """

    components: dict[str, int]
    components_before: dict[str, int]
    budgets: dict[str, int]
    total_tokens: int
    limit: int
    window: int
    output_reserve: int
    decisions: tuple[Decision, ...]
    prefix_fingerprint: tuple[str, ...]
    block_tokens: tuple[int, ...]
    groups: tuple[str, ...]
    breakpoints: tuple[int, ...]
    """Block indexes carrying an Anthropic ``cache_control`` (empty for OpenAI)."""
    expected_cache_read_tokens: int
    common_prefix_blocks: int
    history_cut: int
    """Index (in the session's history) of the first message kept after the cut."""
    cut_moved: bool
    """The history prefix was rewritten at the cut: the cut or the kept front moved, or
    tool-output truncation started."""
    call_index: int
    static_changed: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def blocks(self) -> list[dict[str, Any]]:
        """One row per rendered block: index, group, tokens, hash, breakpoint."""
        bps = set(self.breakpoints)
        return [{"index": i, "group": g, "tokens": t, "hash": h, "breakpoint": i in bps}
                for i, (g, t, h) in enumerate(zip(self.groups, self.block_tokens,
                                                  self.prefix_fingerprint, strict=True))]

    def as_dict(self) -> dict[str, Any]:
        return {
            "components": dict(self.components),
            "components_before": dict(self.components_before),
            "budgets": dict(self.budgets),
            "total_tokens": self.total_tokens, "limit": self.limit, "window": self.window,
            "output_reserve": self.output_reserve,
            "decisions": [d.as_dict() for d in self.decisions],
            "prefix_fingerprint": list(self.prefix_fingerprint),
            "breakpoints": list(self.breakpoints),
            "expected_cache_read_tokens": self.expected_cache_read_tokens,
            "common_prefix_blocks": self.common_prefix_blocks,
            "history_cut": self.history_cut, "cut_moved": self.cut_moved,
            "call_index": self.call_index, "static_changed": self.static_changed,
            **self.extra,
        }


def common_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the common prefix (tuple slices compare in C; binary search on them)."""
    n = min(len(a), len(b))
    ta, tb = tuple(a), tuple(b)
    if ta[:n] == tb[:n]:
        return n
    lo, hi = 0, n  # ta[:lo] == tb[:lo]; ta[:hi] != tb[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ta[lo:mid] == tb[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def expected_cache_read(*, provider: str, prev_hashes: Sequence[str],
                        prev_breakpoints: Sequence[int], hashes: Sequence[str],
                        cum_tokens: Sequence[int], api_blocks_cum: Sequence[int],
                        breakpoints: Sequence[int], min_tokens: int,
                        common: int | None = None) -> tuple[int, int]:
    """(expected cache-read tokens, common prefix in blocks) vs the previous call.

    ``cum_tokens[i]`` / ``api_blocks_cum[i]``: tokens / API content blocks through block
    ``i``. Anthropic: the longest previous breakpoint prefix that is unchanged, within
    the 20-block lookback of one of this call's breakpoints. OpenAI: the unchanged
    prefix, from 1024 tokens, rounded down to 128-token steps.
    """
    if common is None:
        common = common_prefix(prev_hashes, hashes)
    if common == 0:
        return 0, 0
    if provider == "openai":
        tokens = cum_tokens[common - 1]
        if tokens < OPENAI_MIN_CACHEABLE:
            return 0, common
        return tokens - (tokens - OPENAI_MIN_CACHEABLE) % OPENAI_CACHE_STEP, common
    best = 0
    for p in prev_breakpoints:
        if p >= common or cum_tokens[p] < min_tokens:
            continue
        for b in breakpoints:
            if b >= p and api_blocks_cum[b] - api_blocks_cum[p] <= ANTHROPIC_LOOKBACK_BLOCKS:
                best = max(best, cum_tokens[p])
                break
    return best, common
