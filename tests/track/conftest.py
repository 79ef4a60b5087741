"""Fixtures for the track tests: a fresh spool per test and the local fake API."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakeapi import FakeAPI
from track_helpers import close_all

import ctxbudget.track as tr


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "spool"
    tr.configure(spool_dir=d, flush_interval=0.05)
    yield d
    tr.configure()


@pytest.fixture
def api(data_dir: Path) -> Iterator[FakeAPI]:
    with FakeAPI(data_dir / "api-responses") as server:
        yield server
    assert not server.errors, server.errors


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    close_all()
