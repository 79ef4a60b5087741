"""Budget windows: which spend a limit covers, and when it resets.

========== ============================================ ==================================
window     covers                                       resets
========== ============================================ ==================================
``task``   every call carrying the same task id          never (the task is the window)
``total``  every call                                    never
``30m``,   the last N seconds / minutes / hours / days   continuously: spend leaves the
``1h``,    (rolling), in 60 slots of N/60 (at least      window one slot after it is N old
``24h``,   one second each)
``7d``
``day``    the calendar day in ``timezone``              at local midnight
``week``   the ISO week (Monday 00:00) in ``timezone``   at local Monday midnight
``month``  the calendar month in ``timezone``            at local midnight on the 1st
========== ============================================ ==================================

A call's spend counts in the window where its reservation was made (a stream that
starts at 23:59 and ends at 00:01 counts for the day it started).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import SpecError

__all__ = ["ROLLING_SLOTS", "Window", "WindowKind"]

WindowKind = Literal["task", "total", "rolling", "day", "week", "month"]

#: A rolling window is kept as this many equal slots.
ROLLING_SLOTS = 60

#: Calendar buckets already computed: (kind, timezone) -> (start, reset, bucket id), valid
#: while start <= now < reset (one computation per window per day / week / month).
_BUCKETS: dict[tuple[str, str], tuple[datetime, datetime, str]] = {}

_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """A budget window. Build one with :meth:`parse` (``"day"``, ``"1h"``, ``"task"``...)."""

    kind: WindowKind
    seconds: int = 0
    """Length of a rolling window (0 for the other kinds)."""
    timezone: str = "UTC"
    """IANA zone of a calendar window (``day``/``week``/``month``)."""

    @classmethod
    def parse(cls, text: str, timezone: str = "UTC") -> Window:
        """``task``, ``total``, ``day``, ``week``, ``month`` or a rolling ``<N>s|m|h|d``."""
        t = str(text).strip().lower()
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SpecError(f"timezone: unknown time zone {timezone!r}") from None
        if t in ("task", "total", "day", "week", "month"):
            return cls(kind=t, timezone=timezone)  # type: ignore[arg-type]
        m = _DURATION.match(t)
        if m is None or int(m.group(1)) <= 0:
            raise SpecError(f"window: expected task, total, day, week, month or a duration "
                            f"like 1h / 24h / 30m, got {text!r}")
        return cls(kind="rolling", seconds=int(m.group(1)) * _UNIT[m.group(2)])

    @property
    def slot_seconds(self) -> int:
        """Width of one slot of a rolling window."""
        return max(1, self.seconds // ROLLING_SLOTS)

    def bucket(self, now: datetime) -> tuple[str, datetime | None]:
        """``(bucket id, reset time)`` at ``now``: spend in different buckets never adds up.

        Rolling windows return ``("r", None)``: their reset is per slot, see :meth:`slot`."""
        if self.kind in ("task", "total"):
            return "", None
        if self.kind == "rolling":
            return "r", None
        key = (self.kind, self.timezone)  # hashing the dataclass costs a Python call
        hit = _BUCKETS.get(key)
        if hit is not None and hit[0] <= now < hit[1]:
            return hit[2], hit[1]
        bid, start, reset = self._calendar_bucket(now)
        if len(_BUCKETS) > 1024:
            _BUCKETS.clear()
        _BUCKETS[key] = (start, reset, bid)
        return bid, reset

    def _calendar_bucket(self, now: datetime) -> tuple[str, datetime, datetime]:
        local = now.astimezone(ZoneInfo(self.timezone))
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.kind == "day":
            nxt = start + timedelta(days=1)
            bid = f"d{start:%Y-%m-%d}"
        elif self.kind == "week":
            start -= timedelta(days=start.weekday())
            nxt = start + timedelta(days=7)
            bid = f"w{start:%Y-%m-%d}"
        else:
            start = start.replace(day=1)
            nxt = (start + timedelta(days=32)).replace(day=1)
            bid = f"m{start:%Y-%m}"
        # wall-clock midnight in the zone (handles DST days of 23 or 25 hours)
        zone = ZoneInfo(self.timezone)
        reset = nxt.replace(tzinfo=None).replace(tzinfo=zone)
        return bid, start.replace(tzinfo=None).replace(tzinfo=zone).astimezone(UTC), \
            reset.astimezone(UTC)

    def slot(self, now: datetime) -> int:
        """Index of the rolling slot ``now`` falls in."""
        return int(now.timestamp()) // self.slot_seconds

    def first_live_slot(self, now: datetime) -> int:
        """Oldest slot still inside the rolling window at ``now``."""
        return self.slot(now) - ROLLING_SLOTS + 1

    def slot_end(self, slot: int) -> datetime:
        """When spend recorded in ``slot`` leaves the rolling window."""
        return datetime.fromtimestamp((slot + ROLLING_SLOTS) * self.slot_seconds, UTC)

    def __str__(self) -> str:
        if self.kind == "rolling":
            s = self.seconds
            for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
                if s % n == 0:
                    return f"{s // n}{unit}"
            return f"{s}s"
        if self.kind in ("day", "week", "month"):
            return f"{self.kind} ({self.timezone})"
        return self.kind
