"""Provider prompt-caching rules: which prompt tokens a provider bills as cache reads,
cache writes or plain input, call after call.

A prompt is a sequence of *segments* (``(content id, tokens)``); two prompts share a
prefix exactly as far as their leading segment ids agree. The engine replays a
session's calls in time order and returns, per call, the :class:`~ctxbudget.usage.Usage`
the provider would bill:

- **explicit** (Anthropic ``cache_control``): the prefix up to each breakpoint whose
  length is at least the model's minimum cacheable length is written on a miss
  (billed at the 5m or 1h write rate) and read on a hit. The lookup takes the longest
  unexpired cached prefix; a hit refreshes the entry (5m or 1h from now). Tokens
  between the hit and the last cacheable breakpoint are written; the rest is input.
- **automatic** (OpenAI, Gemini implicit): no breakpoints and no write premium; after
  each call its whole prompt (if at least the minimum) is cached. A later call reads
  its longest unexpired shared prefix, floored to 1024 + 128·k tokens for OpenAI
  (caching happens in 128-token increments); cache misses are plain input.
- **none**: everything is input.

Expiry is idle time: an entry expires ``ttl`` seconds after its last write or read.
For OpenAI the documented idle window is 5-10 minutes (up to an hour); ``5m`` is the
conservative end.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..cache_rules import TTL_SECONDS, min_cacheable_tokens, provider_family
from ..usage import Usage

__all__ = [
    "CacheMode",
    "PromptCall",
    "cache_mode_for",
    "min_cacheable_tokens",
    "replay",
]

CacheMode = Literal["explicit", "automatic", "none"]

def cache_mode_for(provider: str, requested: str = "auto") -> CacheMode:
    """The caching mechanics a provider applies (``auto``) or the one requested."""
    if requested in ("explicit", "automatic", "none"):
        return requested  # type: ignore[return-value]
    fam = provider_family(provider)
    if fam == "anthropic":
        return "explicit"
    if fam in ("openai", "google"):
        return "automatic"
    return "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptCall:
    """One API call to replay: its prompt segments, breakpoints, output and start time."""

    at: float
    """Seconds since the session started."""
    segments: Sequence[tuple[Hashable, int]]
    """(content id, tokens) in prompt order; equal leading ids = shared prefix."""
    breakpoints: Sequence[int] = ()
    """Explicit cache breakpoints, as a count of leading segments (ascending)."""
    output_tokens: int = 0
    cache_key: Hashable = None
    """Salt for the prefix identity (a changed salt never matches an older prefix)."""


@dataclass(slots=True)
class _Entry:
    last_used: float


def replay(
    calls: Sequence[PromptCall],
    *,
    mode: CacheMode,
    ttl: str = "5m",
    min_tokens: int = 0,
    openai_increments: bool = False,
) -> list[Usage]:
    """The billed :class:`Usage` of each call, in order (calls must be in time order)."""
    ttl_s = TTL_SECONDS[ttl]
    entries: dict[int, _Entry] = {}
    out: list[Usage] = []
    for call in calls:
        keys: list[int] = []
        cum: list[int] = [0]
        h = hash(("prefix", call.cache_key))
        for seg_id, tok in call.segments:
            h = hash((h, seg_id))
            keys.append(h)
            cum.append(cum[-1] + tok)
        total = cum[-1]
        if mode == "none":
            out.append(Usage(input_tokens=total, output_tokens=call.output_tokens))
            continue

        def alive(k: int, now: float = call.at) -> bool:
            e = entries.get(k)
            return e is not None and now - e.last_used <= ttl_s

        if mode == "explicit":
            last_bp = max(call.breakpoints, default=0)
            hit = 0
            for i in range(min(last_bp, len(keys)), 0, -1):
                if alive(keys[i - 1]):
                    hit = i
                    break
            for i in range(1, hit + 1):  # the read prefix refreshes every entry inside it
                e = entries.get(keys[i - 1])
                if e is not None and alive(keys[i - 1]):
                    e.last_used = call.at
            read = cum[hit]
            write_to = hit
            for bp in call.breakpoints:
                if bp > hit and cum[bp] >= min_tokens and cum[bp] > 0:
                    entries[keys[bp - 1]] = _Entry(call.at)
                    write_to = max(write_to, bp)
            write = cum[write_to] - read
            w5, w1 = (write, 0) if ttl == "5m" else (0, write)
            out.append(Usage(input_tokens=total - read - write, cache_read_tokens=read,
                             cache_write_5m_tokens=w5, cache_write_1h_tokens=w1,
                             output_tokens=call.output_tokens))
            continue

        # automatic prefix caching
        hit = 0
        for i in range(len(keys), 0, -1):
            if alive(keys[i - 1]):
                hit = i
                break
        matched = cum[hit]
        floor = max(min_tokens, 1024) if openai_increments else min_tokens
        if matched < max(floor, 1):
            cached = 0
        elif openai_increments:
            cached = floor + 128 * ((matched - floor) // 128)
        else:
            cached = matched
        if total >= min_tokens and total > 0:
            for i in range(1, len(keys) + 1):
                e = entries.get(keys[i - 1])
                if e is None:
                    entries[keys[i - 1]] = _Entry(call.at)
                else:
                    e.last_used = call.at
        out.append(Usage(input_tokens=total - cached, cache_read_tokens=cached,
                         output_tokens=call.output_tokens))
    return out
