"""The fingerprint that tells an appended log from a rewritten one (no heavy imports:
the day summary's re-run checks it before anything else is loaded)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

__all__ = ["TAIL_BYTES", "tail_hash"]

#: Bytes before a file's offset whose fingerprint tells an append from a rewrite.
TAIL_BYTES = 4096


def tail_hash(fh: Any, end: int) -> int:
    """Fingerprint (signed 64-bit) of the :data:`TAIL_BYTES` bytes of the open binary
    file ``fh`` before offset ``end``."""
    start = max(0, end - TAIL_BYTES)
    data = os.pread(fh.fileno(), end - start, start)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)
