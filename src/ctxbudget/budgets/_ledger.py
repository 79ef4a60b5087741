"""The ledger interface and the embedded (in-process, file-backed) backend.

Protocol, identical for every backend (``tests/budgets`` runs one suite on each):

1. :meth:`Ledger.reserve` — atomically, for every charged budget: drop reservations
   whose time is up, read the window's settled spend and the units held by requests in
   flight, and block if ``spent + held + this request > limit`` for any hard budget
   (strictly greater: reaching the limit exactly is allowed). When nothing blocks, the
   request's units are held on every counter and a :class:`Reservation` is returned.
2. :meth:`Ledger.settle` — the hold is replaced by the actual amount (streamed or not,
   error or not). If the reservation had already expired, the actual is still added.
3. :meth:`Ledger.release` — the hold is dropped and nothing is charged (the request was
   never sent).

Every call is synchronous and thread-safe; ``areserve`` / ``asettle`` / ``arelease`` are
the asyncio forms (the embedded ledger never blocks on I/O beyond one ``write`` of a
journal line, so they call the synchronous methods directly).
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import math
import os
import threading
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from ._types import (
    NANO,
    Amount,
    BudgetState,
    BudgetStoreError,
    Charge,
    Clock,
    Decision,
    Entry,
    Reservation,
    _as_states,
    system_clock,
)

__all__ = ["DEFAULT_RESERVATION_TTL", "Ledger", "MemoryLedger"]

log = logging.getLogger("ctxbudget.budgets")
_encode = msgspec.json.Encoder().encode

#: Seconds after which a reservation that was neither settled nor released (its
#: process crashed) stops holding budget.
DEFAULT_RESERVATION_TTL = 600.0


class _Plan:
    """A reserve request resolved against the clock: counters, limits, slots."""

    __slots__ = ("charges", "entries", "first_live", "limits", "resets", "ttl_at")

    def __init__(self, charges: Sequence[Charge], amount: Amount, now: datetime,
                 ttl: float) -> None:
        self.charges = tuple(charges)
        entries: list[Entry] = []
        limits: list[int] = []
        first_live: list[int] = []
        resets: list[datetime | None] = []
        for c in self.charges:
            b = c.budget
            w = b.window
            bucket, reset = w.bucket(now)
            rolling = w.kind == "rolling"
            entries.append(Entry(counter=f"{b.name}\x1f{c.scope}\x1f{bucket}", metric=b.metric,
                                 units=b.units(amount.of(b.metric)),
                                 slot=w.slot(now) if rolling else -1))
            limits.append(-1 if b.soft else b.limit_units)
            first_live.append(w.first_live_slot(now) if rolling else -1)
            resets.append(reset)
        self.entries = tuple(entries)
        self.limits = tuple(limits)
        self.first_live = tuple(first_live)
        self.resets = resets
        self.ttl_at = now.timestamp() + ttl

    def decision(self, allowed: bool, blocked: int, values: Sequence[tuple[int, int, int]],
                 res_id: str, amount: Amount) -> Decision:
        resets = list(self.resets)
        for i, c in enumerate(self.charges):
            oldest = values[i][2]
            if c.budget.window.kind == "rolling" and oldest >= 0:
                resets[i] = c.budget.window.slot_end(oldest)
        states = _as_states(self.charges, [(v[0], v[1]) for v in values], resets)
        soft = tuple(s for s, c, v in zip(states, self.charges, values, strict=True)
                     if c.budget.soft and v[0] + v[1] > c.budget.limit_units)
        if not allowed:
            return Decision(allowed=False, reservation=None, states=states,
                            blocked_by=states[blocked], soft_exceeded=())
        res = Reservation(id=res_id, entries=self.entries, expires_at=self.ttl_at, amount=amount)
        return Decision(allowed=True, reservation=res, states=states, soft_exceeded=soft)


def _actual_units(res: Reservation, actual: Amount) -> list[int]:
    return [math.ceil(Decimal(actual.usd) * NANO) if e.metric == "usd" else int(actual.of(e.metric))
            for e in res.entries]


class Ledger:
    """Base class: the clock, the reservation TTL and the public protocol.

    Backends implement ``_reserve(plan, res_id, amount, now_ts)``, ``_settle(res, units,
    now_ts)``, ``_release(res)`` and ``_read(plan, now_ts)``."""

    def __init__(self, *, clock: Clock = system_clock,
                 reservation_ttl: float = DEFAULT_RESERVATION_TTL) -> None:
        self.clock = clock
        self.reservation_ttl = float(reservation_ttl)

    # -- sync ------------------------------------------------------------------
    def reserve(self, charges: Sequence[Charge], amount: Amount, *,
                ttl: float | None = None) -> Decision:
        """Check every budget in ``charges`` and hold ``amount`` on all of them, or on none."""
        now = self.clock()
        plan = _Plan(charges, amount, now, self.reservation_ttl if ttl is None else ttl)
        rid = Reservation.new_id()
        allowed, blocked, values = self._reserve(plan, rid, now.timestamp())
        return plan.decision(allowed, blocked, values, rid, amount)

    def settle(self, reservation: Reservation, actual: Amount) -> None:
        """Replace the hold with ``actual`` (idempotent per reservation: a second settle or
        a settle after a release adds nothing)."""
        self._settle(reservation, _actual_units(reservation, actual), self.clock().timestamp())

    def release(self, reservation: Reservation) -> None:
        """Drop the hold without charging anything (the request was never sent)."""
        self._settle(reservation, [0] * len(reservation.entries), self.clock().timestamp())

    def states(self, charges: Sequence[Charge]) -> tuple[BudgetState, ...]:
        """The current spend / held / remaining of ``charges`` (nothing reserved)."""
        now = self.clock()
        plan = _Plan(charges, Amount(calls=0), now, 0.0)
        values = self._read(plan, now.timestamp())
        return plan.decision(True, -1, values, "", Amount(calls=0)).states

    # -- asyncio ---------------------------------------------------------------
    async def areserve(self, charges: Sequence[Charge], amount: Amount, *,
                       ttl: float | None = None) -> Decision:
        return self.reserve(charges, amount, ttl=ttl)

    async def asettle(self, reservation: Reservation, actual: Amount) -> None:
        self.settle(reservation, actual)

    async def arelease(self, reservation: Reservation) -> None:
        self.release(reservation)

    async def astates(self, charges: Sequence[Charge]) -> tuple[BudgetState, ...]:
        return self.states(charges)

    def close(self) -> None:
        """Release files / connections."""

    async def aclose(self) -> None:
        self.close()

    # -- backend ---------------------------------------------------------------
    def _reserve(self, plan: _Plan, rid: str, now_ts: float
                 ) -> tuple[bool, int, list[tuple[int, int, int]]]:
        raise NotImplementedError

    def _settle(self, res: Reservation, units: list[int], now_ts: float) -> None:
        raise NotImplementedError

    def _read(self, plan: _Plan, now_ts: float) -> list[tuple[int, int, int]]:
        raise NotImplementedError


class MemoryLedger(Ledger):
    """The embedded ledger: counters in this process, optionally journaled to ``path``.

    With a ``path``, every reserve / settle / release appends one JSON line with one
    ``os.write`` (no fsync: a process crash loses nothing the kernel has; a power loss
    can lose the last lines). On open the journal is replayed and compacted into one
    snapshot line (written to a temporary file and renamed). One process owns a journal
    (an exclusive ``flock``): several gateway workers need the Redis ledger."""

    _SETTLED_MAX = 200_000

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 clock: Clock = system_clock,
                 reservation_ttl: float = DEFAULT_RESERVATION_TTL,
                 compact_every: int = 100_000) -> None:
        super().__init__(clock=clock, reservation_ttl=reservation_ttl)
        self._lock = threading.Lock()
        self._spent: dict[str, int] = {}
        self._slots: dict[str, dict[int, int]] = {}
        self._held: dict[str, int] = {}
        self._res: dict[str, tuple[float, tuple[tuple[str, int], ...]]] = {}
        self._heap: list[tuple[float, str]] = []
        self._settled: dict[str, None] = {}
        """Ids already settled or released (a second settle adds nothing); bounded."""
        self.path = Path(path) if path is not None else None
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._lines = 0
        self.compact_every = compact_every
        if self.path is not None:
            self._open()

    # -- counters --------------------------------------------------------------
    def _reap(self, now_ts: float) -> None:
        h = self._heap
        while h and h[0][0] <= now_ts:
            _, rid = heapq.heappop(h)
            held = self._res.pop(rid, None)
            if held is not None:
                for counter, units in held[1]:
                    self._held[counter] = self._held.get(counter, 0) - units

    def _value(self, counter: str, first_live: int) -> tuple[int, int, int]:
        if first_live < 0:
            return self._spent.get(counter, 0), self._held.get(counter, 0), -1
        slots = self._slots.get(counter)
        total, oldest = 0, -1
        if slots:
            for s in [s for s in slots if s < first_live]:
                del slots[s]
            for s, v in slots.items():
                total += v
                if v and (oldest < 0 or s < oldest):
                    oldest = s
        return total, self._held.get(counter, 0), oldest

    def _reserve(self, plan: _Plan, rid: str, now_ts: float
                 ) -> tuple[bool, int, list[tuple[int, int, int]]]:
        with self._lock:
            self._reap(now_ts)
            values = [self._value(e.counter, fl)
                      for e, fl in zip(plan.entries, plan.first_live, strict=True)]
            for i, (e, lim) in enumerate(zip(plan.entries, plan.limits, strict=True)):
                if lim >= 0 and values[i][0] + values[i][1] + e.units > lim:
                    return False, i, values
            held = tuple((e.counter, e.units) for e in plan.entries)
            self._apply_hold(rid, plan.ttl_at, held)
            self._journal({"o": "r", "id": rid, "e": plan.ttl_at, "h": held})
            return True, -1, [(v[0], v[1] + e.units, v[2])
                              for v, e in zip(values, plan.entries, strict=True)]

    def _apply_hold(self, rid: str, expires: float, held: tuple[tuple[str, int], ...]) -> None:
        for counter, units in held:
            self._held[counter] = self._held.get(counter, 0) + units
        self._res[rid] = (expires, held)
        heapq.heappush(self._heap, (expires, rid))

    def _apply_settle(self, rid: str, adds: list[tuple[str, int, int]]) -> None:
        held = self._res.pop(rid, None)
        if held is not None:
            for counter, units in held[1]:
                self._held[counter] = self._held.get(counter, 0) - units
        for counter, slot, units in adds:
            if not units:
                continue
            if slot < 0:
                self._spent[counter] = self._spent.get(counter, 0) + units
            else:
                d = self._slots.setdefault(counter, {})
                d[slot] = d.get(slot, 0) + units

    def _settle(self, res: Reservation, units: list[int], now_ts: float) -> None:
        adds = [(e.counter, e.slot, u) for e, u in zip(res.entries, units, strict=True)]
        with self._lock:
            if res.id in self._settled:
                return
            self._settled_add(res.id)
            self._apply_settle(res.id, adds)
            self._journal({"o": "s", "id": res.id, "a": adds})

    def _read(self, plan: _Plan, now_ts: float) -> list[tuple[int, int, int]]:
        with self._lock:
            self._reap(now_ts)
            return [self._value(e.counter, fl)
                    for e, fl in zip(plan.entries, plan.first_live, strict=True)]

    def _settled_add(self, rid: str) -> None:
        d = self._settled
        d[rid] = None
        if len(d) > self._SETTLED_MAX:
            for k in list(d)[: self._SETTLED_MAX // 2]:
                del d[k]

    # -- journal ---------------------------------------------------------------
    def _open(self) -> None:
        assert self.path is not None
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise BudgetStoreError(f"{self.path}: cannot open the budget ledger: {exc}") from exc
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock_fd)
            raise BudgetStoreError(
                f"{self.path}: the budget ledger is in use by another process (run one "
                f"gateway process per ledger file, or use budget_store: redis://...)") from None
        self._lock_fd = lock_fd
        if self.path.exists():
            self._replay()
        self._compact()

    def _replay(self) -> None:
        assert self.path is not None
        with open(self.path, "rb") as f:
            for n, raw in enumerate(f, 1):
                if not raw.endswith(b"\n"):
                    break  # a torn last line: the write never completed
                try:
                    rec = json.loads(raw)
                    op = rec["o"]
                    if op == "snap":
                        self._spent = {k: int(v) for k, v in rec["spent"].items()}
                        self._slots = {k: {int(s): int(v) for s, v in d.items()}
                                       for k, d in rec["slots"].items()}
                        for rid, (exp, held) in rec["res"].items():
                            self._apply_hold(rid, float(exp),
                                             tuple((c, int(u)) for c, u in held))
                    elif op == "r":
                        self._apply_hold(rec["id"], float(rec["e"]),
                                         tuple((c, int(u)) for c, u in rec["h"]))
                    elif op == "s" and rec["id"] not in self._settled:
                        self._settled_add(rec["id"])
                        self._apply_settle(rec["id"],
                                           [(c, int(s), int(u)) for c, s, u in rec["a"]])
                except (ValueError, KeyError, TypeError) as exc:
                    raise BudgetStoreError(f"{self.path}:{n}: unreadable ledger line ({exc})"
                                           ) from None
        self._reap(self.clock().timestamp())

    def _snapshot_line(self) -> bytes:
        slots = {k: {str(s): v for s, v in d.items() if v} for k, d in self._slots.items()}
        rec: dict[str, Any] = {
            "o": "snap", "spent": {k: v for k, v in self._spent.items() if v},
            "slots": {k: d for k, d in slots.items() if d},
            "res": {rid: [exp, [list(h) for h in held]] for rid, (exp, held) in self._res.items()},
        }
        return (json.dumps(rec, separators=(",", ":")) + "\n").encode()

    def _compact(self) -> None:
        assert self.path is not None
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = self._snapshot_line()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            if self._fd is not None:
                os.close(self._fd)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as exc:
            raise BudgetStoreError(f"{self.path}: cannot write the budget ledger: {exc}") from exc
        self._lines = 1

    def _journal(self, rec: dict[str, Any]) -> None:
        if self._fd is None:
            return
        line = _encode(rec) + b"\n"
        try:
            os.write(self._fd, line)
        except OSError as exc:
            raise BudgetStoreError(f"{self.path}: cannot append to the budget ledger: {exc}"
                                   ) from exc
        self._lines += 1
        if self._lines >= self.compact_every:
            self._compact()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                with contextlib.suppress(OSError, BudgetStoreError):
                    self._compact()
                os.close(self._fd)
                self._fd = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

