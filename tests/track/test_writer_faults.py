"""The spool writer under faults: its folder deleted or replaced, a starved writer thread,
file permissions (issue #18, points 5, 10 and 11)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import threading
import time
from pathlib import Path

import pytest

import ctxbudget.track as tr
from ctxbudget.track._spoolfmt import call_from_line
from ctxbudget.track._writer import SpoolWriter, make_private_dirs
from ctxbudget.usage import Call, Usage


def _call(i: int) -> Call:
    from datetime import UTC, datetime

    return Call(ts=datetime.now(UTC), provider="anthropic", model="claude-sonnet-4-5",
                usage=Usage(input_tokens=i), task_id="faults")


def _landed(spool: Path) -> list[int]:
    """input_tokens of every complete call line under ``spool`` (the tracker's own reader)."""
    out: list[int] = []
    if not spool.exists():
        return out
    for f in sorted(spool.glob("*.jsonl")):
        for line in f.read_bytes().split(b"\n"):
            if line:
                d = json.loads(line)
                if d["k"] == "c":
                    out.append(call_from_line(d)[1].usage.input_tokens)
    return out


def test_deleted_spool_folder_is_recreated_counted_and_warned_once(
        spool: Path, caplog: pytest.LogCaptureFixture) -> None:
    before = tr.stats()
    for i in range(10):
        tr.record_call(_call(i))
    tr.flush()
    assert sorted(_landed(spool)) == list(range(10))
    with caplog.at_level(logging.WARNING, logger="ctxbudget.track"):
        shutil.rmtree(spool)
        for i in range(10, 15):
            tr.record_call(_call(i))
        tr.flush()
        assert sorted(_landed(spool)) == list(range(10, 15))  # nothing after the deletion lost
        shutil.rmtree(spool)
        for i in range(15, 20):
            tr.record_call(_call(i))
        tr.flush()
    after = tr.stats()
    assert sorted(_landed(spool)) == list(range(15, 20))
    assert after["spool_recreated"] == 2
    assert after["write_errors"] - before["write_errors"] == 2
    assert after["dropped"] == before["dropped"] == 0
    warnings = [r for r in caplog.records if "re-creating" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700


def test_replaced_spool_folder_gets_the_new_records(spool: Path) -> None:
    for i in range(5):
        tr.record_call(_call(i))
    tr.flush()
    old = spool.with_name("spool-old")
    spool.rename(old)
    spool.mkdir()
    for i in range(5, 9):
        tr.record_call(_call(i))
    tr.flush()
    assert sorted(_landed(old)) == list(range(5))
    assert sorted(_landed(spool)) == list(range(5, 9))
    assert tr.stats()["spool_recreated"] == 1


def test_folder_deleted_mid_run_loses_nothing_enqueued_after(spool: Path) -> None:
    """A thread tracks continuously while the folder is deleted: every record enqueued
    after the deletion returned is in the (re-created) spool."""
    tr.configure(spool_dir=spool, flush_interval=0.01, batch_size=64)
    stop = threading.Event()
    count = [0]

    def app() -> None:
        i = 0
        while not stop.is_set() or i < 20_000:
            tr.record_call(_call(i))
            i += 1
            count[0] = i
            if i % 500 == 0:
                time.sleep(0.001)

    t = threading.Thread(target=app)
    t.start()
    while count[0] < 5_000:
        time.sleep(0.005)
    shutil.rmtree(spool, ignore_errors=True)
    after_delete = count[0]
    stop.set()
    t.join()
    tr.flush()
    landed = set(_landed(spool))
    missing = [i for i in range(after_delete, count[0]) if i not in landed]
    assert missing == []
    assert tr.stats()["spool_recreated"] >= 1


def test_folders_0700_files_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        home = tmp_path / "home" / "deeper"
        w = SpoolWriter(home / "spool")
        w.put("c", _call(1))
        w.flush()
        assert w.path is not None
        assert stat.S_IMODE(w.path.stat().st_mode) == 0o600
        for d in (home / "spool", home, tmp_path / "home"):
            assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
        w.close()
        tmp_path.chmod(0o755)
        make_private_dirs(tmp_path)  # an existing folder is left as it is
        assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755
    finally:
        os.umask(old)


def test_calling_thread_writes_when_the_writer_is_late(tmp_path: Path) -> None:
    """A writer thread that does not run (here: it sleeps an hour; in production: starved
    of the GIL) cannot hold records back longer than max_lag while the app calls."""
    w = SpoolWriter(tmp_path / "spool", flush_interval=3600, max_lag=0.01)
    try:
        w.put("c", _call(0))
        assert w.stats()["written"] == 0 and w.lag_writes == 0
        time.sleep(0.05)
        w.put("c", _call(1))  # the oldest pending record is > max_lag old: written now
        assert w.lag_writes == 1 and w.written == 2 and w.pending == 0
        assert sorted(_landed(tmp_path / "spool")) == [0, 1]
        assert w.stats()["max_write_lag_s"] >= 0.01
    finally:
        w.close()


def test_max_lag_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_lag"):
        SpoolWriter(tmp_path, max_lag=0)
