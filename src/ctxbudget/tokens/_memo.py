"""A bounded, thread-safe LRU memo keyed by content hash.

Keys are ``(counter_key, digest)``; ``digest`` is the 16-byte blake2b of the
UTF-8 text (or of the canonical JSON of a structure). Re-counting the same
content is one dict lookup; the text itself is never kept.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["LRUMemo", "text_digest"]

V = TypeVar("V")


def text_digest(text: str) -> bytes:
    """16-byte blake2b of ``text`` as UTF-8 (lone surrogates kept, never an error)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class LRUMemo(Generic[V]):
    """Least-recently-used memo bounded to ``maxsize`` entries."""

    __slots__ = ("_data", "_lock", "hits", "maxsize", "misses")

    def __init__(self, maxsize: int = 65_536) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = 0
            self.misses = 0

    def __len__(self) -> int:
        return len(self._data)
