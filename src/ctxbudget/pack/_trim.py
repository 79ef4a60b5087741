"""Deterministic text trimming under a token limit (counter-agnostic).

The counter is a black box ``str -> int``, so cuts are found by binary search on
character positions (O(log n) counts per text, memoized by the caller per text).
"""

from __future__ import annotations

import re

from ._counter import Counter

__all__ = ["head_tail", "prefix_within", "sentence_trim", "suffix_within"]

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n{2,}")


def prefix_within(text: str, limit: int, count: Counter) -> str:
    """The longest prefix of ``text`` (ending at whitespace when possible) with at most
    ``limit`` tokens."""
    if limit <= 0:
        return ""
    if count(text) <= limit:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(text[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    cut = text.rfind(" ", 0, lo + 1)
    return text[:cut] if cut > lo // 2 else text[:lo]


def suffix_within(text: str, limit: int, count: Counter) -> str:
    """The longest suffix of ``text`` (starting after whitespace when possible) with at
    most ``limit`` tokens."""
    if limit <= 0:
        return ""
    if count(text) <= limit:
        return text
    n = len(text)
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(text[n - mid:]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    start = n - lo
    sp = text.find(" ", start)
    return text[sp + 1:] if sp != -1 and sp - start < lo // 2 else text[start:]


def head_tail(text: str, limit: int, count: Counter, head_share: float = 0.5) -> str:
    """``text`` if within ``limit`` tokens, else head + marker + tail within ``limit``.

    The marker says how many tokens were cut: ``[... N tokens truncated ...]``. The result
    is checked with ``count`` and shrunk until it fits (the counter is not additive)."""
    total = count(text)
    if total <= limit:
        return text
    room = limit
    for _ in range(8):
        marker = f"\n[... {total - room} tokens truncated ...]\n"
        avail = max(room - count(marker), 0)
        head_n = int(avail * head_share)
        head = prefix_within(text, head_n, count)
        tail = suffix_within(text[len(head):], avail - head_n, count)
        out = head + f"\n[... {total - count(head) - count(tail)} tokens truncated ...]\n" + tail
        if count(out) <= limit:
            return out
        room -= max(count(out) - limit, 1)
    return prefix_within(f"[... {total} tokens truncated ...]", limit, count)


def sentence_trim(text: str, limit: int, count: Counter) -> tuple[str, bool]:
    """The longest run of whole leading sentences within ``limit`` tokens, and whether a
    sentence boundary was found (``False``: the first sentence alone was too long and
    was cut at a word)."""
    if count(text) <= limit:
        return text, True
    ends = [m.start() for m in _SENTENCE_END.finditer(text)]
    lo, hi, best = 0, len(ends) - 1, -1
    while lo <= hi:
        mid = (lo + hi) // 2
        if count(text[:ends[mid]]) <= limit:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    if best >= 0:
        return text[:ends[best]], True
    return prefix_within(text, limit, count), False
