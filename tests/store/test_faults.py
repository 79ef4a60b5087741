"""A full disk, a damaged store, permissions: one line each, and usable again afterwards."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def _spool(d: Path, n: int, name: str = "999999999-x.jsonl") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    with open(d / name, "w") as f:
        for i in range(n):
            f.write(json.dumps({
                "k": "c", "rid": f"x:{i}", "ts": "2026-01-02T03:04:05+00:00",
                "provider": "openai", "model": "gpt-4o", "u": [i, 0, 0, 0, 1, 0],
                "status": "ok", "source": "track", "request_id": f"req_{i:020d}"}) + "\n")
    return d


def _cli(*args: str, fsize: int | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-m", "ctxbudget.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=limit)


def _count(db: Path) -> int:
    r = _cli("report", "--db", str(db), "--json", "--by", "model")
    assert r.returncode == 0, r.stderr
    return sum(int(row["calls"]) for row in json.loads(r.stdout)["rows"])


def _one_line_error(r: subprocess.CompletedProcess[str], *words: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_size_limit_on_create_and_on_ingest(tmp_path: Path) -> None:
    """RLIMIT_FSIZE stands in for a full disk (works without root)."""
    spool = _spool(tmp_path / "spool", 60_000)
    db = tmp_path / "store" / "u.duckdb"
    # 1. creating the store fails: one line, and nothing half-made is left behind
    r = _cli("ingest", "--db", str(db), "--spool", str(spool), "--keep", fsize=64 * 1024)
    _one_line_error(r, "disk is full")
    assert not db.exists()
    # 2. space returns: the same command works
    small = _spool(tmp_path / "spool2", 10)
    assert _cli("ingest", "--db", str(db), "--spool", str(small), "--keep").returncode == 0
    # 3. the disk fills up during an ingest: one line; the store keeps what it had
    r = _cli("ingest", "--db", str(db), "--spool", str(spool), "--keep",
             fsize=db.stat().st_size + 256 * 1024)
    _one_line_error(r, "disk is full")
    assert _count(db) == 10
    # 4. space returns: everything lands exactly once
    r = _cli("ingest", "--db", str(db), "--spool", str(spool), "--keep")
    assert r.returncode == 0, r.stderr
    assert _count(db) == 60_000  # the 10 of spool2 share their keys with spool's first 10


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "tmpfs"
    d.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(d)],
                       capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_full_tmpfs_then_space_returns(tmp_path: Path, tmpfs: Path) -> None:
    spool = _spool(tmp_path / "spool", 60_000)
    db = tmpfs / "u.duckdb"
    filler = tmpfs / "filler"
    with open(filler, "wb") as f:  # fill the disk completely
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    r = _cli("ingest", "--db", str(db), "--spool", str(spool), "--keep")
    _one_line_error(r, "disk is full")
    filler.unlink()
    with open(filler, "wb") as f:  # room for an empty store and a little more
        f.write(b"\0" * (4 * 1024 * 1024))
    r = _cli("ingest", "--db", str(db), "--spool", str(spool), "--keep")
    _one_line_error(r, "disk is full")
    filler.unlink()
    r = _cli("ingest", "--db", str(db), "--spool", str(spool), "--keep")
    assert r.returncode == 0, r.stderr
    assert _count(db) == 60_000


@pytest.mark.parametrize("damage", ["truncate", "garbage", "zero"])
def test_damaged_store_is_one_line_with_the_way_out(tmp_path: Path, damage: str) -> None:
    spool = _spool(tmp_path / "spool", 2000)
    db = tmp_path / "u.duckdb"
    assert _cli("ingest", "--db", str(db), "--spool", str(spool)).returncode == 0
    data = db.read_bytes()
    if damage == "truncate":
        db.write_bytes(data[: len(data) // 3])
    elif damage == "garbage":
        db.write_bytes(b"this is not a database" * 100)
    else:
        db.write_bytes(b"")
    for args in (["report", "--db", str(db)], ["ingest", "--db", str(db), "--spool",
                                               str(spool)]):
        r = _cli(*args)
        _one_line_error(r, "damaged", "mv ", "ingest --redo")
    # the advice works: move it aside, redo the spool, every call is back once
    db.rename(tmp_path / "u.duckdb.damaged")
    r = _cli("ingest", "--db", str(db), "--spool", str(spool), "--redo")
    assert r.returncode == 0, r.stderr
    assert _count(db) == 2000


def test_store_lock_and_reports_are_private(tmp_path: Path) -> None:
    spool = _spool(tmp_path / "spool", 10)
    db = tmp_path / "new" / "u.duckdb"
    assert _cli("ingest", "--db", str(db), "--spool", str(spool)).returncode == 0
    html = tmp_path / "out" / "r.html"
    r = _cli("report", "--db", str(db), "--html", str(html))
    assert r.returncode == 0, r.stderr
    for p in (db, Path(str(db) + ".lock"), html):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    for d in (db.parent, html.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
