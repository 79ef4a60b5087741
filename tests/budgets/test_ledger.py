"""One suite for every ledger backend (embedded and Redis), plus windows."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ctxbudget.budgets import (
    Amount,
    Budget,
    Charge,
    Ledger,
    MemoryLedger,
    RedisLedger,
    Window,
    open_ledger,
)
from ctxbudget.errors import SpecError


class FakeClock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kw: float) -> None:
        self.t += timedelta(**kw)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 7, 23, 0, tzinfo=UTC))


@pytest.fixture(params=["memory", "redis"])
def make_ledger(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    made: list[Ledger] = []

    def make(clock: Any, ttl: float = 600.0) -> Ledger:
        if request.param == "memory":
            led: Ledger = MemoryLedger(tmp_path / f"l{len(made)}.journal", clock=clock,
                                       reservation_ttl=ttl)
        else:
            url = request.getfixturevalue("redis_url")
            led = RedisLedger(url, prefix=f"t{uuid.uuid4().hex[:8]}:", clock=clock,
                              reservation_ttl=ttl)
        made.append(led)
        return led

    yield make
    for led in made:
        led.close()


def usd(x: str) -> Amount:
    return Amount(usd=Decimal(x), tokens=10)


def daily(limit: str = "1.00", tz: str = "UTC", soft: bool = False) -> Budget:
    return Budget(name="daily", limit=Decimal(limit), window=Window.parse("day", tz), soft=soft)


def test_reserve_blocks_past_the_limit_and_settle_replaces(make_ledger: Any,
                                                           clock: FakeClock) -> None:
    led = make_ledger(clock)
    ch = [Charge(daily(), "k1")]
    a = led.reserve(ch, usd("0.60"))
    assert a.allowed and a.states[0].held == Decimal("0.6")
    b = led.reserve(ch, usd("0.40"))  # exactly the limit: allowed
    assert b.allowed and b.states[0].remaining == 0
    c = led.reserve(ch, usd("0.000000001"))
    assert not c.allowed and c.reservation is None
    assert c.blocked_by is not None and c.blocked_by.name == "daily"
    led.settle(a.reservation, usd("0.10"))  # actual below the reservation frees headroom
    led.release(b.reservation)
    s = led.states(ch)[0]
    assert (s.spent, s.held, s.remaining) == (Decimal("0.1"), 0, Decimal("0.9"))
    led.settle(a.reservation, usd("0.10"))  # a second settle adds nothing
    assert led.states(ch)[0].spent == Decimal("0.1")
    # another scope has its own counter
    assert led.reserve([Charge(daily(), "k2")], usd("1.00")).allowed


def test_all_or_nothing_and_soft(make_ledger: Any, clock: FakeClock) -> None:
    led = make_ledger(clock)
    soft = Budget(name="warn", limit=Decimal("0.5"), soft=True)
    calls = Budget(name="calls", limit=Decimal(2), metric="calls", window=Window.parse("1h"))
    ch = [Charge(daily(), ""), Charge(soft, ""), Charge(calls, "")]
    d1 = led.reserve(ch, usd("0.4"))
    assert d1.allowed and not d1.soft_exceeded
    d2 = led.reserve(ch, usd("0.4"))
    assert d2.allowed and [s.name for s in d2.soft_exceeded] == ["warn"]
    d3 = led.reserve(ch, usd("0.1"))  # third call: calls budget blocks; nothing is held
    assert not d3.allowed and d3.blocked_by is not None and d3.blocked_by.name == "calls"
    st = {s.name: s for s in led.states(ch)}
    assert st["daily"].held == Decimal("0.8") and st["calls"].held == 2


def test_calendar_window_resets_at_local_midnight(make_ledger: Any, clock: FakeClock) -> None:
    clock.t = datetime(2026, 3, 8, 4, 59, tzinfo=UTC)  # 23:59 in New York (EST, UTC-5)
    led = make_ledger(clock)
    ch = [Charge(daily("1.00", "America/New_York"), "k")]
    d = led.reserve(ch, usd("1.00"))
    led.settle(d.reservation, usd("1.00"))
    blocked = led.reserve(ch, usd("0.01"))
    assert not blocked.allowed
    assert blocked.blocked_by is not None
    assert blocked.blocked_by.resets_at == datetime(2026, 3, 8, 5, 0, tzinfo=UTC)
    clock.advance(minutes=1)  # midnight in New York: a new day
    d2 = led.reserve(ch, usd("0.99"))
    assert d2.allowed and d2.states[0].spent == 0
    # DST starts that night: the next reset is 23 hours later (04:00 UTC)
    assert d2.states[0].resets_at == datetime(2026, 3, 9, 4, 0, tzinfo=UTC)


def test_rolling_window(make_ledger: Any, clock: FakeClock) -> None:
    led = make_ledger(clock)
    b = Budget(name="hourly", limit=Decimal(100), metric="tokens", window=Window.parse("1h"))
    ch = [Charge(b, "")]
    led.settle(led.reserve(ch, Amount(tokens=80)).reservation, Amount(tokens=80))
    clock.advance(minutes=30)
    assert not led.reserve(ch, Amount(tokens=30)).allowed
    clock.advance(minutes=30, seconds=1)  # the first spend left the window
    d = led.reserve(ch, Amount(tokens=30))
    assert d.allowed and d.states[0].spent == 0


def test_orphaned_reservation_expires(make_ledger: Any, clock: FakeClock) -> None:
    led = make_ledger(clock, ttl=60)
    ch = [Charge(daily(), "")]
    d = led.reserve(ch, usd("1.00"))
    assert not led.reserve(ch, usd("0.5")).allowed
    clock.advance(seconds=61)
    d2 = led.reserve(ch, usd("0.5"))
    assert d2.allowed and d2.states[0].held == Decimal("0.5")
    led.settle(d.reservation, usd("0.25"))  # a late settle still counts the spend
    s = led.states(ch)[0]
    assert (s.spent, s.held) == (Decimal("0.25"), Decimal("0.5"))


def test_threads_never_overrun(make_ledger: Any, clock: FakeClock) -> None:
    led = make_ledger(clock)
    ch = [Charge(daily("1.00"), "")]
    allowed: list[int] = []

    def worker() -> None:
        for _ in range(25):
            d = led.reserve(ch, usd("0.03"))
            if d.allowed:
                allowed.append(1)
                led.settle(d.reservation, usd("0.03"))

    ts = [threading.Thread(target=worker) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(allowed) == 33  # floor(1.00 / 0.03)
    assert led.states(ch)[0].spent == Decimal("0.99")


def test_asyncio_forms(make_ledger: Any, clock: FakeClock) -> None:
    led = make_ledger(clock)
    ch = [Charge(daily("0.05"), "")]

    async def main() -> int:
        async def one() -> bool:
            d = await led.areserve(ch, usd("0.01"))
            if d.allowed:
                await asyncio.sleep(0)
                await led.asettle(d.reservation, usd("0.01"))
            return d.allowed

        res = await asyncio.gather(*[one() for _ in range(20)])
        await led.aclose()
        return sum(res)

    # in a thread of its own: a loop left running by an unrelated test cannot interfere
    out: list[int] = []
    t = threading.Thread(target=lambda: out.append(asyncio.run(main())))
    t.start()
    t.join()
    assert out == [5]


def test_usd_is_counted_in_nano_dollars_rounded_up(make_ledger: Any, clock: FakeClock) -> None:
    led = make_ledger(clock)
    ch = [Charge(daily("0.000000003"), "")]
    d = led.reserve(ch, Amount(usd=Decimal("0.0000000011")))  # 1.1 nano -> 2 nano held
    assert d.allowed and d.states[0].held == Decimal("0.000000002")
    assert not led.reserve(ch, Amount(usd=Decimal("0.0000000011"))).allowed


def test_window_parse_errors() -> None:
    assert str(Window.parse("24h")) == "1d" and Window.parse("90m").seconds == 5400
    with pytest.raises(SpecError, match="window"):
        Window.parse("fortnight")
    with pytest.raises(SpecError, match="time zone"):
        Window.parse("day", "Mars/Olympus")
    w = Window.parse("week", "Europe/Paris")
    bid, reset = w.bucket(datetime(2026, 12, 2, 12, tzinfo=UTC))  # a Wednesday
    assert bid == "w2026-11-30" and reset == datetime(2026, 12, 6, 23, tzinfo=UTC)
    m = Window.parse("month")
    assert m.bucket(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == (
        "m2026-12", datetime(2027, 1, 1, tzinfo=UTC))


def test_open_ledger(tmp_path: Any) -> None:
    assert isinstance(open_ledger("memory"), MemoryLedger)
    led = open_ledger(str(tmp_path / "x.journal"))
    assert isinstance(led, MemoryLedger) and led.path == tmp_path / "x.journal"
    led.close()
    assert isinstance(open_ledger("redis://127.0.0.1:1/0"), RedisLedger)
