"""A bounded, thread-safe LRU memo keyed by content hash.

Keys are ``(counter_key, digest)``; ``digest`` is the 16-byte blake2b of the
UTF-8 text (or of the canonical JSON of a structure); texts under 128
characters are their own key. Re-counting the same content is one dict lookup;
long texts are never kept.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["SHORT_TEXT", "LRUMemo", "memo_key", "text_digest"]

V = TypeVar("V")


#: Texts shorter than this are their own memo key: hashing them costs more than
#: keeping them (at most 128 chars x maxsize entries).
SHORT_TEXT = 128


def memo_key(text: str) -> str | bytes:
    """The memo key of a text: the text itself when short, else its blake2b digest."""
    if len(text) < SHORT_TEXT:
        return text
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def text_digest(text: str) -> bytes:
    """16-byte blake2b of ``text`` as UTF-8 (lone surrogates kept, never an error)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class LRUMemo(Generic[V]):
    """Least-recently-used memo bounded to ``maxsize`` entries.

    ``hits``/``misses`` are statistics (approximate under threads).
    """

    __slots__ = ("_data", "_lock", "hits", "maxsize", "misses")

    def __init__(self, maxsize: int = 65_536) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        # Lock-free read (an OrderedDict lookup is atomic under the GIL); a
        # concurrent eviction between lookup and move_to_end is harmless.
        value = self._data.get(key)
        if value is None:
            self.misses += 1
            return None
        try:  # noqa: SIM105 - contextlib.suppress costs more than the lookup
            self._data.move_to_end(key)
        except KeyError:
            pass
        self.hits += 1
        return value

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            data = self._data
            data[key] = value
            if len(data) > self.maxsize:
                data.popitem(last=False)

    def put_many(self, items: list[tuple[Hashable, V]]) -> None:
        with self._lock:
            data = self._data
            for key, value in items:
                data[key] = value
            while len(data) > self.maxsize:
                data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = 0
            self.misses = 0

    def __len__(self) -> int:
        return len(self._data)
