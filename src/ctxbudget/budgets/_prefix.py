"""The prefix fast path for long Anthropic bodies: a growing session re-sends its history.

A coding agent's request *n + 1* is request *n*'s bytes up to some message, then new
messages (and whatever top-level fields follow the ``messages`` array). Splitting the
whole body into blocks and looking each one up costs a scan of every byte (msgspec)
and one hash + lookup per block: ~0.3-0.5 ms for 400 KB. Instead, for bodies of at
least :data:`MIN_BYTES`, the pricer keeps recent bodies (:class:`Prev`: the bytes, where
each message ends, each message's count, and the top-level fields before the array),
and for a new body:

1. finds a kept body with the same first 256 bytes and the length of the common prefix
   (``memcmp`` in 64 KB steps, then bisection: ~20 µs for 400 KB);
2. takes the counts of the messages that end inside the common prefix from it;
3. decodes only the rest: ``{"messages":[`` + the bytes after the last shared message
   (the new messages and the top-level fields after the array, e.g. ``system`` and
   ``tools`` in Claude Code's key order), whose blocks go through the block cache;
4. keeps the new body for the next request (the offsets of its new messages are
   verified byte for byte against the decoded blocks).

The result is the same as decoding the whole body (the property test in
``tests/budgets/test_prefix.py`` checks it on random edits); any surprise (a key
repeated, an edit before the array, an invalid tail) falls back to the whole decode,
which also raises the error a bad body deserves. Memory: at most ``max_bytes`` of kept
bodies (default 64 MB), least recently used first out.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "HEAD",
    "MIN_BYTES",
    "TAIL_DECODER",
    "PrefixCache",
    "Prev",
    "TailFields",
    "common_prefix",
    "locate",
    "walk_messages",
]

#: Bodies smaller than this are decoded whole (the fast path would not pay off).
MIN_BYTES = 32 * 1024
#: The tail of a body, made a JSON object again.
HEAD = b'{"messages":['
_WS = re.compile(rb"[ \t\r\n]*")
_STEP = 65536


class TailFields(msgspec.Struct):
    """The Anthropic fields the estimate reads; absent ones stay UNSET."""

    model: str | UnsetType = UNSET
    max_tokens: int | UnsetType | None = UNSET
    stream: bool | UnsetType | None = UNSET
    system: msgspec.Raw | UnsetType = UNSET
    messages: list[msgspec.Raw] | UnsetType = UNSET
    tools: list[msgspec.Raw] | UnsetType = UNSET
    cache_control: msgspec.Raw | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType | None = UNSET


TAIL_DECODER = msgspec.json.Decoder(TailFields)
_TOP_DECODER = msgspec.json.Decoder(dict[str, msgspec.Raw])


@dataclass(slots=True)
class Prev:
    """A kept body: enough to reuse the counts of its messages for a body that shares
    a prefix with it."""

    body: bytes
    ck: int
    """The counter id its blocks were counted with."""
    ends: list[int]
    """Offset just past each message of the ``messages`` array."""
    vals: list[tuple[int, str, str]]
    """(tokens, cache ttl, digest) of each message."""
    cum: list[int]
    """``cum[k]``: tokens of the first ``k`` messages."""
    last1h: list[int]
    """``last1h[k]``: index of the last message with a 1-hour breakpoint among the first
    ``k`` (-1: none)."""
    lastany: list[int]
    """Same, any breakpoint."""
    before: dict[str, Any]
    """The estimate's fields that come before the ``messages`` array, processed (see
    :meth:`RequestPricer._anthropic_fields`)."""


def common_prefix(a: bytes, b: bytes) -> int:
    """Length of the longest common prefix of ``a`` and ``b`` (memcmp-speed)."""
    n = min(len(a), len(b))
    mv = memoryview(b)
    pos = 0
    while pos < n:
        end = min(n, pos + _STEP)
        if a.startswith(mv[pos:end], pos):
            pos = end
            continue
        lo, hi = pos, end  # a[:lo] == b[:lo], a[:hi] != b[:hi]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if a.startswith(mv[lo:mid], lo):
                lo = mid
            else:
                hi = mid
        return lo
    return n


def walk_messages(buf: bytes, start: int, raws: list[msgspec.Raw]) -> list[int] | None:
    """End offsets of ``raws``, the elements of the JSON array whose ``[`` is at
    ``start`` in ``buf``, each checked byte for byte; None when they do not line up."""
    ends: list[int] = []
    pos = start + 1
    for i, r in enumerate(raws):
        pos = _WS.match(buf, pos).end()  # type: ignore[union-attr]
        if i:
            if buf[pos:pos + 1] != b",":
                return None
            pos = _WS.match(buf, pos + 1).end()  # type: ignore[union-attr]
        if not buf.startswith(r, pos):
            return None
        pos += len(r)
        ends.append(pos)
    pos = _WS.match(buf, pos).end()  # type: ignore[union-attr]
    return ends if buf[pos:pos + 1] == b"]" else None


def locate(body: bytes, first: msgspec.Raw) -> tuple[list[str], int] | None:
    """(top-level keys before ``messages``, offset of the ``[`` of the messages array) of
    a body whose first message is ``first``; None when that cannot be established
    byte for byte (the head before the array must be a top-level object prefix whose
    last key is ``messages``: a nested copy of the message is never taken for it)."""
    at = body.find(bytes(first))
    if at < 0:
        return None
    q = at - 1
    while q >= 0 and body[q] in b" \t\r\n":
        q -= 1
    if q < 0 or body[q] != 0x5B:  # "["
        return None
    try:
        head = _TOP_DECODER.decode(body[:q] + b"null}")
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    keys = list(head)
    if not keys or keys[-1] != "messages":
        return None
    return keys[:-1], q


class PrefixCache:
    """Kept bodies by their first 256 bytes (a few per head), at most ``max_bytes``."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024, per_head: int = 4) -> None:
        self.max_bytes = max_bytes
        self.per_head = per_head
        self._d: OrderedDict[bytes, list[Prev]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0

    @staticmethod
    def head(body: bytes) -> bytes:
        return body[:256]

    def find(self, body: bytes) -> tuple[Prev, int] | None:
        """The kept body sharing the most whole messages with ``body``, and how many."""
        got = self._d.get(body[:256])
        if not got:
            return None
        best: tuple[Prev, int] | None = None
        for prev in list(got):
            ends = prev.ends
            n = len(ends)
            if body.startswith(memoryview(prev.body)[:ends[-1]]):  # all of it (one memcmp)
                j = n
            elif n > 1 and body.startswith(memoryview(prev.body)[:ends[-2]]):
                j = n - 1  # all but the last (e.g. its breakpoint moved on)
            else:
                j = bisect.bisect_right(ends, common_prefix(body, prev.body))
            if j and (best is None or j > best[1]):
                best = (prev, j)
                if j >= n - 4 or j * 10 >= n * 9:  # this session's latest: look no further
                    break
        if best is not None:
            self.hits += 1
        return best

    def put(self, prev: Prev, replaces: Prev | None = None) -> None:
        if len(prev.body) > self.max_bytes:
            return
        h = prev.body[:256]
        with self._lock:
            lst = self._d.get(h)
            if lst is None:
                lst = self._d[h] = []
            else:
                self._d.move_to_end(h)
            if replaces is not None and replaces in lst:
                lst.remove(replaces)
                self._bytes -= len(replaces.body)
            lst.insert(0, prev)
            self._bytes += len(prev.body)
            while len(lst) > self.per_head:
                self._bytes -= len(lst.pop().body)
            while self._bytes > self.max_bytes and self._d:
                _, old = self._d.popitem(last=False)
                self._bytes -= sum(len(p.body) for p in old)
