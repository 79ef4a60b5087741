"""The embedded ledger's journal: restarts, torn lines, one owner, SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from ctxbudget.budgets import Amount, Budget, BudgetStoreError, Charge, MemoryLedger, Window

ROOT = Path(__file__).resolve().parents[2]


def _ch() -> list[Charge]:
    return [Charge(Budget(name="d", limit=Decimal("10"), window=Window.parse("month")), "k"),
            Charge(Budget(name="h", limit=Decimal(10**9), metric="tokens",
                          window=Window.parse("1h")), "k")]


def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "b.journal"
    led = MemoryLedger(path)
    d1 = led.reserve(_ch(), Amount(usd=Decimal("1.5"), tokens=100))
    led.settle(d1.reservation, Amount(usd=Decimal("1.25"), tokens=90))
    d2 = led.reserve(_ch(), Amount(usd=Decimal("2"), tokens=5))  # in flight at "crash"
    os.close(led._lock_fd)  # type: ignore[arg-type]  # simulate the process going away
    led._lock_fd = None
    led2 = MemoryLedger(path)
    s = led2.states(_ch())
    assert (s[0].spent, s[0].held) == (Decimal("1.25"), Decimal("2"))
    assert (s[1].spent, s[1].held) == (90, 5)
    led2.settle(d2.reservation, Amount(usd=Decimal("1"), tokens=5))
    assert led2.states(_ch())[0].spent == Decimal("2.25")
    led2.close()
    assert path.read_bytes().count(b"\n") == 1  # compacted to one snapshot line on close


def test_torn_last_line_is_ignored_and_bad_lines_named(tmp_path: Path) -> None:
    path = tmp_path / "b.journal"
    led = MemoryLedger(path)
    led.settle(led.reserve(_ch(), Amount(usd=Decimal("1"))).reservation, Amount(usd=Decimal(1)))
    led.close()
    with open(path, "ab") as f:
        f.write(b'{"o":"s","id":"x","a":[["d\\u001fk\\u001fm2026')  # cut mid-write
    led = MemoryLedger(path)
    assert led.states(_ch())[0].spent == 1
    led.close()
    with open(path, "ab") as f:
        f.write(b"not json\n")
    with pytest.raises(BudgetStoreError, match=r"b\.journal:2: unreadable"):
        MemoryLedger(path)


def test_one_process_per_journal(tmp_path: Path) -> None:
    led = MemoryLedger(tmp_path / "b.journal")
    code = ("import sys; from ctxbudget.budgets import MemoryLedger, BudgetStoreError\n"
            "try:\n MemoryLedger(sys.argv[1])\n"
            "except BudgetStoreError as e:\n print(e); sys.exit(3)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "b.journal")],
                       capture_output=True, text=True, env={**os.environ,
                                                            "PYTHONPATH": str(ROOT / "src")})
    assert r.returncode == 3 and "in use by another process" in r.stdout
    led.close()


def test_sigkill_mid_stream_of_operations(tmp_path: Path) -> None:
    """A process reserving and settling in a loop is killed; the journal replays to a
    state where every settled cent is counted once and in-flight holds expire."""
    path = tmp_path / "b.journal"
    code = """
import sys
from decimal import Decimal
from ctxbudget.budgets import Amount, Budget, Charge, MemoryLedger, Window
ch = [Charge(Budget(name="d", limit=Decimal(10**6), window=Window.parse("total")), "")]
led = MemoryLedger(sys.argv[1], reservation_ttl=2, compact_every=500)
n = 0
while True:
    a = led.reserve(ch, Amount(usd=Decimal("0.002")))
    b = led.reserve(ch, Amount(usd=Decimal("0.002")))
    led.settle(a.reservation, Amount(usd=Decimal("0.001")))
    n += 1
    if n == 300:
        print("ready", flush=True)
"""
    p = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
    time.sleep(0.2)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    p.stdout.close()
    ch = [Charge(Budget(name="d", limit=Decimal(10**6), window=Window.parse("total")), "")]
    led = MemoryLedger(path, reservation_ttl=2)
    s = led.states(ch)[0]
    # every settle was 0.001 and every loop holds one 0.002 reservation forever:
    # held = 0.002 x (settles + 0 or 1) until they expire
    settles = s.spent / Decimal("0.001")
    assert settles == int(settles) and settles >= 300
    assert s.held in (Decimal("0.002") * settles, Decimal("0.002") * (settles + 1),
                      Decimal("0.002") * (settles + 2))
    led.close()
    time.sleep(2.1)
    led = MemoryLedger(path, reservation_ttl=2)
    s2 = led.states(ch)[0]
    assert s2.held == 0 and s2.spent == s.spent
    led.close()
