"""Canonical JSON and block hashes: the bytes of a stable prefix never depend on dict order."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["block_hash", "canonical", "canonical_json"]

_SEPARATORS = (",", ":")


def canonical(obj: Any) -> Any:
    """A copy of ``obj`` with every mapping's keys in sorted order (lists keep their order),
    so any JSON serializer (the SDKs' included) emits the same bytes every time."""
    if isinstance(obj, dict):
        return {k: canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list | tuple):
        return [canonical(v) for v in obj]
    return obj


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and ``(',', ':')`` separators, non-ASCII kept as is."""
    return json.dumps(obj, sort_keys=True, separators=_SEPARATORS, ensure_ascii=False)


def block_hash(kind: str, *parts: str) -> str:
    """First 16 hex digits of SHA-256 over ``kind`` and ``parts`` (NUL separated): the
    fingerprint of one block. Text never leaves the process, only this digest."""
    h = hashlib.sha256(kind.encode())
    for p in parts:
        h.update(b"\x00")
        h.update(p.encode())
    return h.hexdigest()[:16]
