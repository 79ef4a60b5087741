"""Test-wide fixtures: shared real data, offline tiktoken, no network."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data"

if (DATA / "tiktoken").is_dir():
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(DATA / "tiktoken"))
os.environ.setdefault("CTXBUDGET_HOME", str(ROOT / ".pytest_cache" / "ctxbudget-home"))

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: object) -> object:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1") \
            and not host.startswith("127.") and self.family in (socket.AF_INET, socket.AF_INET6):
        raise RuntimeError(f"network access to {address!r} is not allowed in tests")
    return _real_connect(self, address)  # type: ignore[arg-type]


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    return DATA


@pytest.fixture(scope="session")
def root_dir() -> Path:
    return ROOT
