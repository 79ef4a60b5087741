"""The durable path: many threads, many processes, SIGKILL, torn lines, idempotent ingestion."""

from __future__ import annotations

import json
import mmap
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from track_helpers import recorded

import ctxbudget
import ctxbudget.track as tr
from ctxbudget.adapters import AdaptedUsage
from ctxbudget.store import open_store
from ctxbudget.store.spool import ingest_spool, read_spool
from ctxbudget.track._core import before_call, finish_call
from ctxbudget.usage import Call, Usage


def _fake_call(task_input: int) -> None:
    """The SDK wrappers' exact path (before_call / finish_call), minus the HTTP round trip."""
    p = before_call("anthropic", "anthropic", {"model": "claude-sonnet-4-5"})
    finish_call(p, AdaptedUsage(Usage(input_tokens=task_input, output_tokens=1),
                                input_inclusive=False, model="claude-sonnet-4-5-20250929"))


def _db_rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with open_store(db) as s:
        return [tuple(r) for r in s.con.execute(sql).fetchall()]


def test_8_threads_x_10000_calls_land_exactly_80000(spool: Path, tmp_path: Path) -> None:
    n_threads, per = 8, 10_000

    def worker(k: int) -> None:
        with ctxbudget.task(f"thread-{k}", type="load"):
            for i in range(per):
                _fake_call(k * 1_000_000 + i)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tr.flush()
    db = tmp_path / "u.duckdb"
    rep = ingest_spool(db, spool)
    assert (rep.calls, rep.tasks, rep.rejected) == (80_000, 8, 0)
    rows = _db_rows(db, "SELECT task_id, count(*), count(DISTINCT input_tokens), "
                        "min(input_tokens), max(input_tokens) FROM calls GROUP BY 1 ORDER BY 1")
    assert rows == [(f"thread-{k}", per, per, k * 1_000_000, k * 1_000_000 + per - 1)
                    for k in range(n_threads)]
    assert ingest_spool(db, spool).calls == 0  # idempotent
    assert _db_rows(db, "SELECT count(*) FROM calls") == [(80_000,)]


_PROC_SCRIPT = """
import sys
from ctxbudget.adapters import AdaptedUsage
from ctxbudget.track._core import before_call, finish_call
from ctxbudget.usage import Usage
import ctxbudget
k, n = int(sys.argv[1]), int(sys.argv[2])
with ctxbudget.task(f"proc-{k}"):
    for i in range(n):
        p = before_call("anthropic", "anthropic", {"model": "claude-sonnet-4-5"})
        finish_call(p, AdaptedUsage(Usage(input_tokens=k * 1_000_000 + i), input_inclusive=False))
# no explicit flush: atexit must write the tail
"""


def test_4_processes_x_10000_calls_land_exactly_40000(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "CTXBUDGET_HOME": str(home)}
    procs = [subprocess.Popen([sys.executable, "-c", _PROC_SCRIPT, str(k), "10000"], env=env)
             for k in range(4)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0, 0]
    spool = home / "spool"
    assert len(list(spool.glob("*.jsonl"))) == 4  # one file per process
    db = home / "usage.duckdb"
    rep = ingest_spool(db, spool)
    assert (rep.calls, rep.rejected, rep.retired) == (40_000, 0, 4)
    rows = _db_rows(db, "SELECT task_id, count(DISTINCT input_tokens) FROM calls "
                        "GROUP BY 1 ORDER BY 1")
    assert rows == [(f"proc-{k}", 10_000) for k in range(4)]
    assert sorted(p.name for p in spool.iterdir()) == sorted(
        f.name for f in spool.glob("*.jsonl.done"))
    assert ingest_spool(db, spool).calls == 0


def test_forked_children_flush_on_exit(spool: Path) -> None:
    """multiprocessing (fork) children leave through os._exit: our finalizer still flushes,
    and a child never re-writes records the parent had queued."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    tr.record_call(Call(ts=datetime.now(UTC), provider="openai", model="m",
                        usage=Usage(input_tokens=7), task_id="parent"))
    procs = [ctx.Process(target=lambda k=k: [_fake_call(k * 1000 + i) for i in range(500)])
             for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    calls, _ = recorded(spool)
    assert len(calls) == 1001
    assert Counter(c.task_id for c in calls)["parent"] == 1


_KILL_SCRIPT = """
import mmap, struct, sys
import ctxbudget.track as tr
from ctxbudget.adapters import AdaptedUsage
from ctxbudget.track._core import before_call, finish_call
from ctxbudget.usage import Usage
tr.configure(spool_dir=sys.argv[1], batch_size=int(sys.argv[3]), max_pending=int(sys.argv[4]),
             flush_interval=0.05)
f = open(sys.argv[2], "r+b")
mm = mmap.mmap(f.fileno(), 8)
i = 0
while True:
    p = before_call("anthropic", "anthropic", {"model": "claude-sonnet-4-5"})
    finish_call(p, AdaptedUsage(Usage(input_tokens=i), input_inclusive=False))
    i += 1
    mm[:8] = struct.pack("q", i)
"""


def test_sigkill_loses_at_most_the_unflushed_batch(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    counter = tmp_path / "counter"
    counter.write_bytes(b"\0" * 8)
    batch, max_pending = 200, 1000
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(spool), str(counter),
                             str(batch), str(max_pending)])
    with counter.open("r+b") as f:
        mm = mmap.mmap(f.fileno(), 8)
        deadline = time.monotonic() + 120
        while struct.unpack("q", mm[:8])[0] < 20_000 and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "writer process died on its own"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        enqueued = struct.unpack("q", mm[:8])[0]
        mm.close()
    assert enqueued >= 20_000
    (f,) = list(spool.glob("*.jsonl"))
    raw = f.read_bytes()
    db = tmp_path / "u.duckdb"
    rep = ingest_spool(db, spool)
    landed = rep.calls
    assert rep.rejected == 0  # no corrupt line, torn tail (if any) ignored
    assert rep.retired == 1 and rep.torn_bytes == len(raw) - (raw.rfind(b"\n") + 1)
    # the record being enqueued at the kill may have landed without its counter update
    assert landed <= enqueued + 1
    lost = enqueued - landed
    bound = max_pending + batch + 1  # documented in track/_writer.py and docs/tracking.md
    assert lost <= bound, (enqueued, landed)
    # what landed is a gap-free prefix: records 0..landed-1, each exactly once
    rows = _db_rows(db, "SELECT count(*), count(DISTINCT input_tokens), min(input_tokens), "
                        "max(input_tokens) FROM calls")
    assert rows == [(landed, landed, 0, landed - 1)]
    assert ingest_spool(db, spool).calls == 0
    print(f"\nSIGKILL: enqueued {enqueued}, landed {landed}, lost {lost} (bound {bound})")


def _line(rid: str, n: int) -> bytes:
    return (json.dumps({"k": "c", "rid": rid, "ts": "2026-01-02T03:04:05+00:00",
                        "provider": "openai", "model": "gpt-4o",
                        "u": [n, 0, 0, 0, 1, 0], "status": "ok", "source": "track"})
            + "\n").encode()


def test_torn_and_corrupt_lines(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    db = tmp_path / "u.duckdb"
    # a dead writer (pid 999999999): corrupt line 2 is reported, torn tail dropped at retire
    dead = spool / "999999999-dead.jsonl"
    dead.write_bytes(_line("d:0", 1) + b'{"k": "c", "rid": "d:1", "u": [1,2]}\n'
                     + _line("d:2", 3) + _line("d:3", 4)[:25])
    # a live writer (this process): the partial last line waits for its newline
    live = spool / f"{os.getpid()}-live.jsonl"
    full = _line("l:1", 20)
    live.write_bytes(_line("l:0", 10) + full[:30])
    rep = ingest_spool(db, spool)
    assert (rep.calls, rep.rejected, rep.retired, rep.torn_bytes) == (3, 1, 1, 25)
    assert rep.rejected_at[0].startswith("999999999-dead.jsonl:2: ")
    with live.open("ab") as fh:
        fh.write(full[30:])
    rep2 = ingest_spool(db, spool)
    assert (rep2.calls, rep2.rejected) == (1, 0)
    assert sorted(r[0] for r in _db_rows(db, "SELECT input_tokens FROM calls")) == [1, 3, 10, 20]
    offsets = {r[0]: r[1:] for r in _db_rows(db, 'SELECT file, "offset", lines FROM '
                                                 "spool_offsets")}
    assert offsets == {dead.name: (len(_line("d:0", 1)) + 37 + len(_line("d:2", 3)), 3),
                       live.name: (len(_line("l:0", 10)) + len(full), 2)}


def test_reingest_after_lost_offsets_adds_nothing(spool: Path, tmp_path: Path) -> None:
    for i in range(50):
        _fake_call(i)
    tr.flush()
    db = tmp_path / "u.duckdb"
    assert ingest_spool(db, spool).calls == 50
    with open_store(db) as s:  # as if we crashed between the insert and the offset update
        s.con.execute("DELETE FROM spool_offsets")
    assert ingest_spool(db, spool).calls == 50  # re-read...
    assert _db_rows(db, "SELECT count(*) FROM calls") == [(50,)]  # ...but replaced, not added
    assert _db_rows(db, "SELECT max(version) >= 2 FROM schema_migrations") == [(True,)]


def test_small_chunks_give_the_same_result(spool: Path, tmp_path: Path) -> None:
    for i in range(300):
        _fake_call(i)
    tr.flush()
    rep = ingest_spool(tmp_path / "a.duckdb", spool, chunk_bytes=20_000)
    assert (rep.calls, rep.rejected) == (300, 0)


def test_write_errors_never_raise(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    tr.configure(spool_dir=blocker / "spool")
    try:
        before = tr.stats()
        for i in range(10):
            _fake_call(i)
        assert tr.flush() == 0
        after = tr.stats()
        assert after["write_errors"] > before.get("write_errors", 0)
        assert after["dropped"] == 10
    finally:
        tr.configure()


def test_prompt_text_is_not_spooled(spool: Path) -> None:
    secret = "my very secret prompt text"
    p = before_call("anthropic", "anthropic",
                    {"model": "claude-sonnet-4-5", "messages": [{"role": "user",
                                                                  "content": secret}]})
    finish_call(p, AdaptedUsage(Usage(input_tokens=5), input_inclusive=False))
    tr.flush()
    data = b"".join(f.read_bytes() for f in spool.glob("*.jsonl"))
    assert data and secret.encode() not in data
    calls, _, _ = read_spool(spool)
    assert len(calls) == 1


_text = st.one_of(st.none(), st.text(min_size=1, max_size=12))


@st.composite
def _calls(draw: st.DrawFn) -> Call:
    out = draw(st.integers(0, 10**9))
    return Call(
        ts=draw(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2026, 1, 1),
                             timezones=st.just(UTC))),
        provider=draw(st.sampled_from(["anthropic", "openai", "google"])),
        model=draw(st.text(min_size=1, max_size=20)),
        usage=Usage(input_tokens=draw(st.integers(0, 10**9)),
                    cache_read_tokens=draw(st.integers(0, 10**9)),
                    cache_write_5m_tokens=draw(st.integers(0, 10**6)),
                    cache_write_1h_tokens=draw(st.integers(0, 10**6)),
                    output_tokens=out, reasoning_tokens=draw(st.integers(0, out))),
        task_id=draw(_text), session_id=draw(_text), task_type=draw(_text),
        request_id=draw(_text),
        latency_ms=draw(st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False))),
        status=draw(st.sampled_from(["ok", "error"])),
        service_tier=draw(st.one_of(st.none(), st.sampled_from(["standard", "batch"]))),
        turn=draw(st.one_of(st.none(), st.integers(0, 1000))),
        components=draw(st.one_of(st.none(), st.dictionaries(st.text(min_size=1, max_size=8),
                                                             st.integers(0, 10**6),
                                                             max_size=4))),
        prefix_fingerprint=draw(st.one_of(st.none(), st.lists(st.text(max_size=8), min_size=1,
                                                              max_size=4).map(tuple))),
        expected_cache_read_tokens=draw(st.one_of(st.none(), st.integers(0, 10**6))),
        input_inclusive=draw(st.one_of(st.none(), st.booleans())),
        meta=draw(st.one_of(st.none(), st.dictionaries(st.text(max_size=5),
                                                       st.integers() | st.text(max_size=5),
                                                       max_size=3))),
    )


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(calls=st.lists(_calls(), min_size=1, max_size=15))
def test_spool_roundtrip_matches_calls_to_arrow(calls: list[Call]) -> None:
    """Spool → store rows equal the core's calls_to_arrow of the same Calls (all columns
    but the key), and re-ingesting adds nothing."""
    import tempfile

    from ctxbudget.store import calls_to_arrow
    from ctxbudget.store.schema import CALL_COLUMNS

    with tempfile.TemporaryDirectory() as d:
        tr.configure(spool_dir=Path(d) / "spool")
        try:
            for c in calls:
                tr.record_call(c)
            tr.flush()
            db = Path(d) / "u.duckdb"
            assert ingest_spool(db, Path(d) / "spool").calls == len(calls)
            assert ingest_spool(db, Path(d) / "spool").calls == 0
            names = [n for n, _ in CALL_COLUMNS][1:]
            with open_store(db) as s:
                got = s.con.execute(f"SELECT {', '.join(names)} FROM calls "
                                    "ORDER BY CAST(split_part(call_key, ':', 3) AS INT)"
                                    ).fetchall()
                want_tbl = calls_to_arrow(calls)
                s.con.register("want", want_tbl)
                want = s.con.execute(f"SELECT {', '.join(names)} FROM want").fetchall()
            assert got == want
        finally:
            tr.configure()
