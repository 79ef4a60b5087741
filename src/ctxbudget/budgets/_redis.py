"""The Redis ledger: one set of counters shared by every gateway worker and replica.

Reserve and settle are each one Lua script, so Redis runs them atomically: N processes
reserving at once see each other's holds and cannot all pass on the same headroom.

Keys (``prefix`` defaults to ``ctxbudget:``):

* ``{prefix}c:{budget}\\x1f{scope}\\x1f{bucket}`` — a hash: ``s`` settled units,
  ``h`` held units, ``t<slot>`` settled units per rolling slot. Expires some time after
  its window can no longer be read (calendar: 2 days after the reset; rolling: 2 windows;
  task / total windows: ``task_ttl``, default 30 days, refreshed on every use).
* ``{prefix}r:{id}`` — a reservation's holds (``counter|units`` per line), and the
  sorted set ``{prefix}rexp`` of reservation ids by expiry time: every reserve first
  drops up to 100 expired reservations (a crashed process's holds free themselves).

Counters are integers (nano-USD, tokens, calls) updated with ``HINCRBY``; sums over
rolling slots are Lua numbers (doubles), exact up to 2^53 units (9 million USD).
Standalone Redis (or a primary): the scripts touch keys they compute, which Redis
Cluster does not allow.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from ._ledger import DEFAULT_RESERVATION_TTL, Ledger, _Plan
from ._types import BudgetStoreError, Clock, Reservation, system_clock

__all__ = ["RedisLedger"]

_REAP = """
local function reap(prefix, now)
  local ids = redis.call('ZRANGEBYSCORE', prefix .. 'rexp', '-inf', now, 'LIMIT', 0, 100)
  for _, id in ipairs(ids) do
    local body = redis.call('GET', prefix .. 'r:' .. id)
    if body then
      for counter, units in string.gmatch(body, '([^|\\n]+)|(%d+)\\n') do
        redis.call('HINCRBY', prefix .. 'c:' .. counter, 'h', '-' .. units)
      end
      redis.call('DEL', prefix .. 'r:' .. id)
    end
    redis.call('ZREM', prefix .. 'rexp', id)
  end
end

local function value(key, first_live)
  if first_live < 0 then
    return tonumber(redis.call('HGET', key, 's') or '0'), -1
  end
  local all = redis.call('HGETALL', key)
  local total, oldest = 0, -1
  for i = 1, #all, 2 do
    local f = all[i]
    if string.sub(f, 1, 1) == 't' then
      local slot = tonumber(string.sub(f, 2))
      if slot < first_live then
        redis.call('HDEL', key, f)
      else
        local v = tonumber(all[i + 1])
        total = total + v
        if v ~= 0 and (oldest < 0 or slot < oldest) then oldest = slot end
      end
    end
  end
  return total, oldest
end
"""

# ARGV: prefix, now, id, expires_at, n, then per counter: counter, units, limit (-1: soft),
# first_live (-1: not rolling), ttl seconds. Returns {allowed, blocked (1-based or 0),
# spent1, held1, oldest1, spent2, ...}.
_RESERVE = _REAP + """
local prefix, now, id, exp, n = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
reap(prefix, now)
local out = {1, 0}
local vals = {}
for i = 0, n - 1 do
  local b = 6 + i * 5
  local key = prefix .. 'c:' .. ARGV[b]
  local spent, oldest = value(key, tonumber(ARGV[b + 3]))
  local held = tonumber(redis.call('HGET', key, 'h') or '0')
  local lim = tonumber(ARGV[b + 2])
  vals[i + 1] = {spent, held, oldest}
  if out[1] == 1 and lim >= 0 and spent + held + tonumber(ARGV[b + 1]) > lim then
    out[1] = 0
    out[2] = i + 1
  end
end
local body = {}
for i = 0, n - 1 do
  local b = 6 + i * 5
  local key = prefix .. 'c:' .. ARGV[b]
  if out[1] == 1 then
    redis.call('HINCRBY', key, 'h', ARGV[b + 1])
    vals[i + 1][2] = vals[i + 1][2] + tonumber(ARGV[b + 1])
    body[#body + 1] = ARGV[b] .. '|' .. ARGV[b + 1] .. '\\n'
  end
  redis.call('EXPIRE', key, ARGV[b + 4])
  out[#out + 1] = vals[i + 1][1]
  out[#out + 1] = vals[i + 1][2]
  out[#out + 1] = vals[i + 1][3]
end
if out[1] == 1 and id ~= '' then
  redis.call('SET', prefix .. 'r:' .. id, table.concat(body), 'EX', 86400 * 7)
  redis.call('ZADD', prefix .. 'rexp', exp, id)
end
return out
"""

# ARGV: prefix, id, n, then per counter: counter, slot (-1: not rolling), actual units.
# A reservation still held has its holds dropped first; a second settle of the same id
# adds nothing (the id is remembered for 7 days).
_SETTLE = """
local prefix, id, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('SET', prefix .. 'done:' .. id, '1', 'NX', 'EX', 86400 * 7) == false then
  return 0
end
local body = redis.call('GET', prefix .. 'r:' .. id)
if body then
  for counter, units in string.gmatch(body, '([^|\\n]+)|(%d+)\\n') do
    redis.call('HINCRBY', prefix .. 'c:' .. counter, 'h', '-' .. units)
  end
  redis.call('DEL', prefix .. 'r:' .. id)
  redis.call('ZREM', prefix .. 'rexp', id)
end
for i = 0, n - 1 do
  local b = 4 + i * 3
  local units = ARGV[b + 2]
  if units ~= '0' then
    local key = prefix .. 'c:' .. ARGV[b]
    if ARGV[b + 1] == '-1' then
      redis.call('HINCRBY', key, 's', units)
    else
      redis.call('HINCRBY', key, 't' .. ARGV[b + 1], units)
    end
  end
end
return 1
"""


class RedisLedger(Ledger):
    """Counters in Redis (``url`` like ``redis://127.0.0.1:6379/0``), atomic per request.

    Sync methods use a ``redis.Redis`` client, the ``a*`` methods a ``redis.asyncio``
    client (each created on first use; the ``redis`` package is imported then). Errors
    reaching Redis raise :class:`BudgetStoreError`."""

    def __init__(self, url: str, *, prefix: str = "ctxbudget:", clock: Clock = system_clock,
                 reservation_ttl: float = DEFAULT_RESERVATION_TTL,
                 task_ttl: int = 30 * 86400, socket_timeout: float = 2.0) -> None:
        super().__init__(clock=clock, reservation_ttl=reservation_ttl)
        self.url = url
        self.prefix = prefix
        self.task_ttl = task_ttl
        self.socket_timeout = socket_timeout
        self._sync: Any = None
        self._async: Any = None
        self._scripts: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._ascripts: dict[str, Any] = {}

    # -- clients ---------------------------------------------------------------
    def _client(self) -> Any:
        if self._sync is None:
            import redis

            with self._lock:  # threads share one client (it is thread-safe)
                if self._sync is None:
                    client = redis.Redis.from_url(self.url, socket_timeout=self.socket_timeout,
                                                  socket_connect_timeout=self.socket_timeout)
                    self._scripts = {"r": client.register_script(_RESERVE),
                                     "s": client.register_script(_SETTLE)}
                    self._sync = client
        return self._sync

    def _aclient(self) -> Any:
        if self._async is None:
            import redis.asyncio as aredis

            self._async = aredis.Redis.from_url(self.url, socket_timeout=self.socket_timeout,
                                                socket_connect_timeout=self.socket_timeout)
            self._ascripts = {"r": self._async.register_script(_RESERVE),
                              "s": self._async.register_script(_SETTLE)}
        return self._async

    # -- argument building (shared by sync and async) ----------------------------
    def _ttl(self, plan: _Plan, i: int, now: float) -> int:
        w = plan.charges[i].budget.window
        if w.kind == "rolling":
            return 2 * w.seconds + 60
        reset = plan.resets[i]
        if reset is not None:
            return int(reset.timestamp() - now) + 2 * 86400
        return self.task_ttl

    def _reserve_args(self, plan: _Plan, rid: str, now_ts: float) -> list[Any]:
        args: list[Any] = [self.prefix, repr(now_ts), rid, repr(plan.ttl_at), len(plan.entries)]
        for i, e in enumerate(plan.entries):
            args += [e.counter, e.units, plan.limits[i], plan.first_live[i],
                     self._ttl(plan, i, now_ts)]
        return args

    @staticmethod
    def _reserve_result(raw: Sequence[Any]) -> tuple[bool, int, list[tuple[int, int, int]]]:
        vals = [int(x) for x in raw]
        values = [(vals[j], vals[j + 1], vals[j + 2]) for j in range(2, len(vals), 3)]
        return vals[0] == 1, vals[1] - 1, values

    def _settle_args(self, res: Reservation, units: list[int]) -> list[Any]:
        args: list[Any] = [self.prefix, res.id, len(res.entries)]
        for e, u in zip(res.entries, units, strict=True):
            args += [e.counter, e.slot, u]
        return args

    def _fail(self, exc: Exception) -> BudgetStoreError:
        return BudgetStoreError(f"budget store {self.url}: {type(exc).__name__}: {exc}")

    # -- sync ------------------------------------------------------------------
    def _reserve(self, plan: _Plan, rid: str, now_ts: float
                 ) -> tuple[bool, int, list[tuple[int, int, int]]]:
        try:
            self._client()
            raw = self._scripts["r"](args=self._reserve_args(plan, rid, now_ts))
        except Exception as exc:
            raise self._fail(exc) from exc
        return self._reserve_result(raw)

    def _settle(self, res: Reservation, units: list[int], now_ts: float) -> None:
        try:
            self._client()
            self._scripts["s"](args=self._settle_args(res, units))
        except Exception as exc:
            raise self._fail(exc) from exc

    def _read(self, plan: _Plan, now_ts: float) -> list[tuple[int, int, int]]:
        try:
            self._client()
            raw = self._scripts["r"](args=self._reserve_args(plan, "", now_ts))
        except Exception as exc:
            raise self._fail(exc) from exc
        return self._reserve_result(raw)[2]

    # -- asyncio ---------------------------------------------------------------
    async def areserve(self, charges: Sequence[Any], amount: Any, *,
                       ttl: float | None = None) -> Any:
        now = self.clock()
        plan = _Plan(charges, amount, now, self.reservation_ttl if ttl is None else ttl)
        rid = Reservation.new_id()
        try:
            self._aclient()
            raw = await self._ascripts["r"](args=self._reserve_args(plan, rid, now.timestamp()))
        except Exception as exc:
            raise self._fail(exc) from exc
        allowed, blocked, values = self._reserve_result(raw)
        return plan.decision(allowed, blocked, values, rid, amount)

    async def asettle(self, reservation: Reservation, actual: Any) -> None:
        from ._ledger import _actual_units

        try:
            self._aclient()
            await self._ascripts["s"](
                args=self._settle_args(reservation, _actual_units(reservation, actual)))
        except Exception as exc:
            raise self._fail(exc) from exc

    async def arelease(self, reservation: Reservation) -> None:
        try:
            self._aclient()
            await self._ascripts["s"](
                args=self._settle_args(reservation, [0] * len(reservation.entries)))
        except Exception as exc:
            raise self._fail(exc) from exc

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        self.close()
        if self._async is not None:
            await self._async.aclose()
            self._async = None

