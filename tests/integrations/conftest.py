"""Fixtures for the integration tests: a fresh spool per test, the local fake APIs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "track"))  # fakeapi.py, track_helpers.py

from fakeapi import FakeAPI  # noqa: E402
from fakeproviders import FakeProviders  # noqa: E402
from track_helpers import close_all  # noqa: E402

import ctxbudget.track as tr  # noqa: E402


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "spool"
    tr.configure(spool_dir=d, flush_interval=0.05)
    yield d
    tr.configure()


@pytest.fixture
def api(data_dir: Path) -> Iterator[FakeAPI]:
    """Anthropic / OpenAI Chat / OpenAI Responses, replaying recorded bodies."""
    with FakeAPI(data_dir / "api-responses") as server:
        yield server
    assert not server.errors, server.errors


@pytest.fixture
def providers(data_dir: Path) -> Iterator[FakeProviders]:
    """Gemini and Bedrock runtime, replaying recorded bodies."""
    with FakeProviders(data_dir / "api-responses") as server:
        yield server
    assert not server.errors, server.errors


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    close_all()
