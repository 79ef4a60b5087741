"""End to end: pack -> render -> tracked SDK call with ``ctxbudget_ledger=`` -> the stored
Call carries the ledger's components, fingerprint and expected cache reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ctxbudget.pack import Message, Packer, PackerConfig, render_anthropic


def words(text: str) -> int:
    return len(text.split())


def test_ledger_reaches_the_stored_call(fake_api: Any, tmp_path: Path) -> None:
    anthropic = pytest.importorskip("anthropic")
    import ctxbudget
    import ctxbudget.track as tr
    from ctxbudget.store.spool import read_spool

    tr.configure(spool_dir=tmp_path / "spool", flush_interval=0.05)
    client = ctxbudget.track(anthropic.Anthropic(base_url=fake_api.url, api_key="t",
                                                 max_retries=0))
    try:
        packer = Packer(PackerConfig(window=20_000, output_reserve=500,
                                     model="claude-sonnet-4-6", min_cacheable_tokens=10),
                        counter=words)
        hist: list[Message] = []
        ledgers = []
        for t in range(3):
            packed = packer.pack(system="You are terse. " * 20, history=hist, user=f"q{t}")
            client.messages.create(**render_anthropic(packed), ctxbudget_ledger=packed.ledger)
            ledgers.append(packed.ledger)
            hist += [Message(role="user", text=f"q{t}"), Message(role="assistant", text="ok")]
        tr.flush()
        calls, _, report = read_spool(tmp_path / "spool")
    finally:
        client.close()
        tr.configure()
    assert report.rejected == 0
    assert len(calls) == 3
    for call, led in zip(calls, ledgers, strict=True):
        assert call.components == led.components
        assert call.prefix_fingerprint == led.prefix_fingerprint
        assert call.expected_cache_read_tokens == led.expected_cache_read_tokens
    assert ledgers[2].expected_cache_read_tokens > 0
    assert all("ctxbudget_ledger" not in body for _, body, _ in fake_api.requests)
