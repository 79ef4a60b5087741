"""SIGKILL of ``ctxbudget import claude-code`` leaves no forked worker behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, just not reaped


# The import forks its parser workers (the threshold lowered to 0 for a small input), and
# each worker's parse blocks, so the workers are busy when the importer is killed.
_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from ctxbudget.sources import claude_code

    claude_code.FORK_MIN_BYTES = 0
    claude_code.CHUNK_BYTES = 1
    parent = os.getpid()
    real = claude_code._parse_chunk

    def slow(job, mapped=False):
        if os.getpid() != parent:
            time.sleep(600)
        return real(job, mapped)

    claude_code._parse_chunk = slow
    from ctxbudget.cli.main import main
    sys.argv = ["ctxbudget", "import", "claude-code", sys.argv[1], "--db", sys.argv[2]]
    main()
""")


def test_sigkill_of_import_leaves_no_worker(tmp_path: Path, data_dir: Path) -> None:
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for _round in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, str(data_dir / "claude-code"),
             str(tmp_path / "u.duckdb")], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        kids: list[int] = []
        while time.monotonic() < deadline and len(kids) < 2:
            time.sleep(0.1)
            kids = _children(proc.pid)
            assert proc.poll() is None, proc.communicate()
        assert len(kids) >= 2, "the import did not fork its workers"
        time.sleep(0.5)  # the workers are inside their (blocking) parse
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        gone_by = time.monotonic() + 10
        while time.monotonic() < gone_by and any(_alive(k) for k in kids):
            time.sleep(0.05)
        left = [k for k in kids if _alive(k)]
        for k in left:  # do not leave them running if the test fails
            os.kill(k, signal.SIGKILL)
        assert not left, f"workers {left} outlived their killed parent"
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
