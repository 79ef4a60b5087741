"""The day summary: ``report --by day`` without DuckDB, and the daily re-run in
time proportional to the new log lines.

``<store>.summary`` is written by a ``report --by day`` that ran its SQL (the full
path, :mod:`._summary_build`): every figure of that report per UTC day, per task and
per model, and one compact row per call (time, session, task, tokens, cost, wasted
cache writes, rank; the Claude Code call keys in a sorted hash index). It describes the
store exactly as it was when written: :func:`~ctxbudget.store.pending.store_signature`
(size, modification time, inode of the DuckDB file and its write-ahead log) is kept
in it, and any other write to the store makes it stale.

While it is current, ``report --by day`` reads it instead of the store (no DuckDB,
no price catalog), and ``report --from claude-code --by day`` on logs that only grew
(the ``imports`` offsets and fingerprints say so) parses just the new bytes with the
Claude Code scanner and applies each new line here, in Python:

* **de-duplication** as the importer does it: a line's key (``message.id`` +
  ``requestId``, across files) already held by a stored call replaces that call only
  when it ranks higher (main chain, then more tokens, then earlier; on a tie the
  stored copy stays, then the earlier file's), and the replaced call's figures are
  taken out of its day, task and model first;
* **cost** from the price rows the full path resolved (kept per price key and UTC day,
  seven days ahead; a later day is resolved with the price book then);
* **wasted cache writes** of every call of the (session, model) the change touched,
  recomputed from those calls alone (a write is wasted when no later read of the
  same session and model comes within its TTL: the definition :mod:`.sql` computes
  with buckets);
* first and last call of a day are recomputed when the call that held one left.

The result is the same report the SQL computes on the store with the same calls
(tests compare them after appends, duplicates across files and replaced copies).
The new calls and the summary's state after them go to ``<store>.pending``
(:mod:`ctxbudget.store.pending`, written atomically), which the next command opening
the store folds in. Anything the summary cannot answer exactly declines
(:class:`Decline`) to the full path: a store written since, a log rewritten or
truncated rather than appended, a line the scanner hands to the line-by-line reader,
a timestamp outside the plain ISO 8601 forms, a session id that is also a tracked
task, a line with server-side tool requests or a store with any usage detail (tool fees,
modality tokens: the SQL prices them, the summary's rows do not hold them), filters
(``--since``, ``--until``, ``--tz`` other than UTC), price overrides, another engine.
``CTXBUDGET_NO_SUMMARY=1`` turns it off.
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..store.pending import Pending, pending_path, read_pending, store_signature

__all__ = ["SUMMARY_VERSION", "Decline", "Summary", "catalog_fingerprint", "enabled",
           "key_hash", "load_summary", "summary_path", "write_summary_file"]

#: Version of the ``.summary`` layout (another one is rebuilt by the next full report).
SUMMARY_VERSION = 2

#: Per-call flag bits.
F_READ, F_SIDE, F_PRICED, F_ERROR, F_SUCCESS, F_FAILURE, F_PARTIAL, F_BLOCKED = \
    1, 2, 4, 8, 16, 32, 64, 128

US_DAY = 86_400_000_000
TTL_5M_US = 300_000_000
TTL_1H_US = 3_600_000_000
#: Money in the summary: integer units of 1e-15 USD (DuckDB's DECIMAL(38,15) cost).
COST_SCALE = 15
#: Days past today the price rows are resolved ahead (a daily run needs no catalog).
PRICE_DAYS_AHEAD = 7

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1)
_ONE_US = timedelta(microseconds=1)
_PLAIN_TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")

# the day row: [calls, input, cache_read, write_5m, write_1h, output, reasoning, cost,
#               priced calls, wasted, error calls, first us, last us, failed cost,
#               priced failed calls]
D_CALLS, D_IN, D_CR, D_W5, D_W1, D_OUT, D_REAS, D_COST, D_PRICED, D_WASTED, D_ERR, \
    D_FIRST, D_LAST, D_FCOST, D_FPRICED = range(15)
# the task row: [calls, tokens (prompt + output), cost, unpriced calls, success calls,
#                failure calls, partial calls, blocked calls]
T_CALLS, T_TOKENS, T_COST, T_UNPRICED, T_SUCC, T_FAIL, T_PART, T_BLOCK = range(8)
# a pending call: the row values of store.pending.ROW_COLUMNS after the key, then
P_TS, P_MODEL, P_SID, P_IN, P_CR, P_W5, P_W1, P_OUT, P_REAS, P_TIER, P_SIDE = range(11)
P_US, P_SEG, P_TASK, P_PM, P_PK, P_FLAGS, P_COST, P_WASTED = range(11, 19)


class Decline(Exception):
    """The summary cannot give this answer exactly: the full path gives it."""


def enabled() -> bool:
    return os.environ.get("CTXBUDGET_NO_SUMMARY", "").strip() in ("", "0")


def summary_path(db: Path) -> Path:
    return db.with_name(db.name + ".summary")


def key_hash(text: str) -> int:
    """The key index's hash: CRC-32 of the UTF-8 text (a match is checked on the key)."""
    import zlib

    return zlib.crc32(text.encode())


def catalog_fingerprint() -> list[Any]:
    """What the prices depend on besides the store: this package's version, the price
    catalog module of genai-prices and the bundled price rules (size and mtime)."""
    from importlib.util import find_spec

    from .. import __version__

    out: list[Any] = [SUMMARY_VERSION, __version__]
    here = Path(__file__).resolve().parent.parent
    spec = find_spec("genai_prices")
    places = [here / "data" / "price_rules.yaml"]
    if spec is not None and spec.origin:
        places.append(Path(spec.origin).with_name("data.py"))
    for p in places:
        try:
            st = os.stat(p)
        except OSError:
            out += [str(p), -1, -1]
        else:
            out += [str(p), st.st_size, st.st_mtime_ns]
    return out


def ts_us(text: Any) -> int:
    """Microseconds since the epoch of a plain ISO 8601 timestamp with a zone (what
    DuckDB's cast reads the same way); :class:`Decline` for anything else."""
    if type(text) is not str or _PLAIN_TS.fullmatch(text) is None:
        raise Decline(f"timestamp {text!r}")
    return (datetime.fromisoformat(text) - _EPOCH) // _ONE_US


def _dec(units: int) -> Decimal:
    """Integer 1e-15 USD -> the Decimal DuckDB returns for DECIMAL(38,15)."""
    return Decimal(units).scaleb(-COST_SCALE)


def _day_key(day: int) -> str:
    return (_EPOCH_DAY + timedelta(days=day)).isoformat()


def _when(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@dataclass
class _Base:
    """The immutable per-call arrays of the ``.summary`` file (memoryviews on its bytes)."""

    n: int
    ts: Any
    seg: Any
    task: Any
    pm: Any
    pk: Any
    flags: Any
    w5: Any
    w1: Any
    wasted: Any
    inp: Any
    cr: Any
    out: Any
    reas: Any
    cost: Any
    koff: Any
    keys: Any
    kh: Any
    kidx: Any
    seg_ptr: Any
    tasks_index: Any

    def key(self, i: int) -> str:
        return str(self.keys[self.koff[i]:self.koff[i + 1]], "utf-8")

    def find(self, call_key: str) -> int | None:
        """The call holding ``call_key`` (a Claude Code key), or ``None``."""
        h = key_hash(call_key)
        kh = self.kh
        j = bisect.bisect_left(kh, h)
        while j < len(kh) and kh[j] == h:
            i = self.kidx[j]
            if self.key(i) == call_key:
                return int(i)
            j += 1
        return None

    def is_task(self, task_id: str) -> bool:
        """Whether the store's ``tasks`` table may hold ``task_id`` (hash match)."""
        h = key_hash(task_id)
        j = bisect.bisect_left(self.tasks_index, h)
        return j < len(self.tasks_index) and self.tasks_index[j] == h


_ARRAYS = {"ts": "q", "seg": "i", "task": "i", "pm": "i", "pk": "i", "flags": "B", "w5": "q",
           "w1": "q", "wasted": "q", "inp": "q", "cr": "q", "out": "q", "reas": "q",
           "cost": "q", "koff": "q", "kh": "I", "kidx": "i", "seg_ptr": "i",
           "tasks_index": "I"}


@dataclass
class State:
    """What changes as calls come in (the base's, else the ``.pending`` file's)."""

    days: dict[int, list[int]]
    cells: dict[int, dict[int, list[int]]]
    """day -> task -> [calls, success, failure, partial, blocked calls] (by outcome)."""
    tasks: dict[int, list[int]]
    tstatic: dict[int, list[Any]]
    """task -> [task type (the calls' own, else the tasks table's), outcome]."""
    models: dict[int, int]
    """(provider, model) -> calls."""
    pkdays: dict[int, dict[int, int]]
    """price key -> day -> calls."""
    prices: dict[int, dict[int, int]]
    """price key -> day -> band set (>= 0) or ``-1 - reason``."""
    bandsets: list[list[list[int]]]
    """[lo, hi (-1: none), 5 rates and the per-request fee in 1e-9 USD] per band."""
    reasons: list[str]
    idle: list[Any]
    """Task type of each task a budget cap blocked before its first call (no calls:
    in the per-type stats only, at $0)."""
    segs: list[list[Any]]
    task_keys: list[str]
    pms: list[list[str]]
    pks: list[list[str]]
    sup: list[int] = field(default_factory=list)
    """Base calls replaced by a pending copy."""
    wov: dict[int, int] = field(default_factory=dict)
    """Base calls whose wasted cache writes changed: the new value."""

    def to_doc(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> State:
        return cls(**{k: doc[k] for k in cls.__dataclass_fields__})


#: The ``.summary`` file: this magic, the header's length (8 bytes, little-endian), the
#: header (msgpack: everything but the arrays, and where each array is), the arrays.
MAGIC = b"CTXBSUM1"
#: Name lists a ``.pending`` state keeps as their extension past the base's.
_NAMES = ("segs", "task_keys", "pms", "pks")


def write_summary_file(path: Path, header: dict[str, Any], arrays: dict[str, bytes]) -> None:
    """Write a ``.summary`` file (atomically): ``header`` plus the raw ``arrays``, each at
    an 8-byte aligned offset recorded in the header (read back memory-mapped)."""
    import msgspec

    from ..store.pending import write_atomically

    where: dict[str, list[int]] = {}
    off = 0
    for name, data in arrays.items():
        where[name] = [off, len(data)]
        off += (len(data) + 7) // 8 * 8
    head = msgspec.msgpack.encode({**header, "arrays": where})
    start = (len(MAGIC) + 8 + len(head) + 7) // 8 * 8
    out = bytearray(start + off)
    out[:len(MAGIC)] = MAGIC
    out[len(MAGIC):len(MAGIC) + 8] = len(head).to_bytes(8, "little")
    out[len(MAGIC) + 8:len(MAGIC) + 8 + len(head)] = head
    for name, data in arrays.items():
        o = start + where[name][0]
        out[o:o + len(data)] = data
    write_atomically(path, bytes(out))


def load_summary(db: Path) -> Summary:
    """The current summary of the store ``db`` (with its pending calls);
    :class:`Decline` when there is none or it is stale."""
    import mmap

    import msgspec

    path = summary_path(db)
    try:
        fh = open(path, "rb")  # noqa: SIM115 (the map outlives this function)
    except FileNotFoundError:
        raise Decline("no summary") from None
    with fh:
        try:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):
            raise Decline("unreadable summary") from None
    try:
        if mm[:len(MAGIC)] != MAGIC:
            raise Decline("another summary version")
        n = int.from_bytes(mm[len(MAGIC):len(MAGIC) + 8], "little")
        doc = msgspec.msgpack.decode(mm[len(MAGIC) + 8:len(MAGIC) + 8 + n])
    except (msgspec.DecodeError, ValueError):
        raise Decline("unreadable summary") from None
    if not isinstance(doc, dict) or doc.get("v") != SUMMARY_VERSION:
        raise Decline("another summary version")
    if doc["sig"] != store_signature(db):
        raise Decline("the store changed since the summary")
    if doc["catalog"] != catalog_fingerprint():
        raise Decline("the price catalog changed")
    pending = read_pending(db) if pending_path(db).exists() else None
    if pending is not None and (pending.base != doc["id"] or pending.sig != doc["sig"]):
        raise Decline("pending calls of another summary")
    start = (len(MAGIC) + 8 + n + 7) // 8 * 8
    view = memoryview(mm)
    try:
        arrays = {name: view[start + o:start + o + size].cast(  # type: ignore[call-overload]
                      _ARRAYS.get(name, "B"))
                  for name, (o, size) in doc["arrays"].items()}
    except (KeyError, TypeError, ValueError):
        raise Decline("unreadable summary") from None
    return Summary(db, doc, arrays, pending)


class Summary:
    """A loaded summary: the base arrays, the current state, the pending calls."""

    def __init__(self, db: Path, doc: dict[str, Any], arrays: dict[str, Any],
                 pending: Pending | None) -> None:
        import msgspec

        self.db = db
        self.id: str = doc["id"]
        self.sig: list[int] = doc["sig"]
        self.tz: str = doc["tz"]
        self.spool: Any = doc.get("spool")
        self.quarantined: int = doc["quarantined"]
        self.usage_missing: int = doc["usage_missing"]
        self.files: dict[str, list[Any]] = doc["files"]
        self.base = _Base(n=int(doc["n"]), keys=arrays.pop("keys"), **arrays)
        base_state = doc["state"]
        self._nbase = {k: len(base_state[k]) for k in _NAMES}
        if pending is not None:
            st = msgspec.msgpack.decode(pending.state)
            for k in _NAMES:  # the base's names, then those the pending calls added
                st[k] = base_state[k] + st[k]
            self.state = State.from_doc(st)
            self.rows: dict[str, list[Any]] = pending.rows
            self.new_files: dict[str, list[Any]] = pending.files
        else:
            self.state = State.from_doc(base_state)
            self.rows = {}
            self.new_files = {}
        self._sup = set(self.state.sup)
        self._seg_ids: dict[tuple[str, Any], int] | None = None
        self._task_ids: dict[str, int] | None = None
        self._pm_ids: dict[tuple[str, str], int] | None = None
        self._pk_ids: dict[tuple[str, str, str], int] | None = None
        self._jseg: dict[int, list[str]] | None = None

    # -- the manifest ----------------------------------------------------------
    def imported(self, path: str) -> list[Any] | None:
        """[size read, mtime, lines, calls, tail hash] of a log, or ``None``."""
        got = self.new_files.get(path)
        return got if got is not None else self.files.get(path)

    # -- ids -------------------------------------------------------------------
    def _id(self, cache: str, names: list[Any], key: Any) -> int:
        ids = getattr(self, cache)
        if ids is None:
            ids = {tuple(v) if isinstance(v, list) else v: i for i, v in enumerate(names)}
            setattr(self, cache, ids)
        i = ids.get(key)
        if i is None:
            i = len(names)
            names.append(list(key) if isinstance(key, tuple) else key)
            ids[key] = i
        return int(i)

    # -- applying new call rows -------------------------------------------------
    def apply(self, cols: dict[str, Any]) -> int:
        """Apply the Claude Code scanner's rows (:class:`~ctxbudget.sources._claude_scan.
        Chunk` columns, in file order); return the distinct call keys read."""
        st = self.state
        base = self.base
        for name in ("web_search", "web_fetch", "code_execution"):
            if any(v > 0 for v in cols.get(name, ())):
                raise Decline("server-side tool requests (priced per request by the SQL)")
        touched: set[int] = set()
        recheck: set[int] = set()
        keys = cols["key"]
        seen = set(keys)
        for i, raw in enumerate(keys):
            us = ts_us(cols["ts"][i])
            inp, cr, w5, w1 = (int(cols["input"][i]), int(cols["cache_read"][i]),
                               int(cols["write_5m"][i]), int(cols["write_1h"][i]))
            out, reas, side = int(cols["output"][i]), int(cols["reasoning"][i]), \
                bool(cols["side"][i])
            rank = (0 if side else 1, inp + cr + w5 + w1 + out, -(us // 1000))
            old = self.rows.get(raw)
            if old is not None:
                if rank <= _rank(bool(old[P_FLAGS] & F_SIDE), old[P_IN] + old[P_CR] + old[P_W5]
                                 + old[P_W1] + old[P_OUT], old[P_US]):
                    continue
                self._drop_pending(raw, old, touched, recheck)
            else:
                # (a base call replaced earlier has its pending copy in self.rows)
                b = base.find("claude-code:" + raw)
                if b is not None:
                    if rank <= _rank(bool(base.flags[b] & F_SIDE), base.inp[b] + base.cr[b]
                                     + base.w5[b] + base.w1[b] + base.out[b], base.ts[b]):
                        continue
                    self._drop_base(b, touched, recheck)
            model, sid, tier = cols["model"][i], cols["sid"][i], cols["tier"][i]
            rec = self._new_call(raw, us, model, sid, tier, inp, cr, w5, w1, out, reas, side,
                                 cols["ts"][i])
            self.rows[raw] = rec
            touched.add(rec[P_SEG])
        for seg in touched:
            self._rewaste(seg)
        for day in recheck:
            self._extremes(day)
        st.sup = sorted(self._sup)
        return len(seen)

    def _new_call(self, raw: str, us: int, model: str, sid: str, tier: str | None, inp: int,
                  cr: int, w5: int, w1: int, out: int, reas: int, side: bool,
                  ts_text: str) -> list[Any]:
        st = self.state
        if self.base.is_task(sid):  # its outcome and type would come from that task
            raise Decline(f"session {sid!r} is also a tracked task")
        seg = self._id("_seg_ids", st.segs, (sid, model))
        task = self._id("_task_ids", st.task_keys, sid)
        st.tstatic.setdefault(task, [None, None])
        pm = self._id("_pm_ids", st.pms, ("anthropic", model))
        pk = self._id("_pk_ids", st.pks, ("anthropic", model, tier or ""))
        day = us // US_DAY
        cost = self._cost(pk, day, inp, cr, w5, w1, out)
        flags = (F_READ if cr > 0 else 0) | (F_SIDE if side else 0) \
            | (F_PRICED if cost is not None else 0)
        rec = [ts_text, model, sid, inp, cr, w5, w1, out, reas, tier, int(side),
               us, seg, task, pm, pk, flags, cost or 0, 0]
        self._count(day, task, pm, pk, flags, us, inp, cr, w5, w1, out, reas, cost or 0, 0, +1)
        self._jsegs().setdefault(seg, []).append(raw)
        return rec

    def _jsegs(self) -> dict[int, list[str]]:
        if self._jseg is None:
            self._jseg = {}
            for raw, rec in self.rows.items():
                self._jseg.setdefault(rec[P_SEG], []).append(raw)
        return self._jseg

    def _drop_pending(self, raw: str, rec: list[Any], touched: set[int],
                      recheck: set[int]) -> None:
        day = rec[P_US] // US_DAY
        self._count(day, rec[P_TASK], rec[P_PM], rec[P_PK], rec[P_FLAGS], rec[P_US], rec[P_IN],
                    rec[P_CR], rec[P_W5], rec[P_W1], rec[P_OUT], rec[P_REAS], rec[P_COST],
                    rec[P_WASTED], -1, recheck)
        del self.rows[raw]
        self._jsegs()[rec[P_SEG]].remove(raw)
        touched.add(rec[P_SEG])

    def _drop_base(self, b: int, touched: set[int], recheck: set[int]) -> None:
        base = self.base
        us = base.ts[b]
        wasted = self.state.wov.pop(b, base.wasted[b])
        self._count(us // US_DAY, base.task[b], base.pm[b], base.pk[b], base.flags[b], us,
                    base.inp[b], base.cr[b], base.w5[b], base.w1[b], base.out[b], base.reas[b],
                    base.cost[b], wasted, -1, recheck)
        self._sup.add(b)
        touched.add(base.seg[b])

    def _count(self, day: int, task: int, pm: int, pk: int, flags: int, us: int, inp: int,
               cr: int, w5: int, w1: int, out: int, reas: int, cost: int, wasted: int,
               sign: int, recheck: set[int] | None = None) -> None:
        """Add (``sign`` 1) or take out (-1) one call's figures."""
        st = self.state
        priced = 1 if flags & F_PRICED else 0
        err = 1 if flags & F_ERROR else 0
        succ, fail, part, block = (1 if flags & F_SUCCESS else 0, 1 if flags & F_FAILURE else 0,
                                   1 if flags & F_PARTIAL else 0, 1 if flags & F_BLOCKED else 0)
        d = st.days.get(day)
        if d is None:
            d = st.days[day] = [0] * 15
            d[D_FIRST] = d[D_LAST] = us
        for col, v in ((D_CALLS, 1), (D_IN, inp), (D_CR, cr), (D_W5, w5), (D_W1, w1),
                       (D_OUT, out), (D_REAS, reas), (D_COST, cost if priced else 0),
                       (D_PRICED, priced), (D_WASTED, wasted), (D_ERR, err),
                       (D_FCOST, cost if priced and fail else 0),
                       (D_FPRICED, 1 if priced and fail else 0)):
            d[col] += sign * v
        if sign > 0:
            d[D_FIRST] = min(d[D_FIRST], us)
            d[D_LAST] = max(d[D_LAST], us)
        elif d[D_CALLS] == 0:
            del st.days[day]
        elif (us == d[D_FIRST] or us == d[D_LAST]) and recheck is not None:
            recheck.add(day)
        cells = st.cells.setdefault(day, {})
        c = cells.setdefault(task, [0, 0, 0, 0, 0])
        c[0] += sign
        c[1] += sign * succ
        c[2] += sign * fail
        c[3] += sign * part
        c[4] += sign * block
        if c[0] == 0:
            del cells[task]
            if not cells:
                del st.cells[day]
        t = st.tasks.setdefault(task, [0] * 8)
        t[T_CALLS] += sign
        t[T_TOKENS] += sign * (inp + cr + w5 + w1 + out)
        t[T_COST] += sign * (cost if priced else 0)
        t[T_UNPRICED] += sign * (1 - priced)
        t[T_SUCC] += sign * succ
        t[T_FAIL] += sign * fail
        t[T_PART] += sign * part
        t[T_BLOCK] += sign * block
        if t[T_CALLS] == 0:
            del st.tasks[task]
        n = st.models.get(pm, 0) + sign
        if n:
            st.models[pm] = n
        else:
            st.models.pop(pm, None)
        pd = st.pkdays.setdefault(pk, {})
        n = pd.get(day, 0) + sign
        if n:
            pd[day] = n
        else:
            pd.pop(day, None)
            if not pd:
                del st.pkdays[pk]

    def _rewaste(self, seg: int) -> None:
        """Recompute the wasted cache writes of every call of the (session, model) ``seg``."""
        base, st = self.base, self.state
        members: list[tuple[int, str, int, int, int, int, int, Any]] = []
        nseg = len(base.seg_ptr) - 1
        if seg < nseg:
            for b in range(base.seg_ptr[seg], base.seg_ptr[seg + 1]):
                if b in self._sup:
                    continue
                members.append((base.ts[b], base.key(b), base.flags[b] & F_READ, base.w5[b],
                                base.w1[b], st.wov.get(b, base.wasted[b]), b, None))
        for raw in self._jsegs().get(seg, ()):
            rec = self.rows[raw]
            members.append((rec[P_US], "claude-code:" + raw, rec[P_FLAGS] & F_READ, rec[P_W5],
                            rec[P_W1], rec[P_WASTED], -1, raw))
        members.sort(key=lambda m: (m[0], m[1]))
        next_read: int | None = None
        for us, _key, read, w5, w1, cur, b, raw in reversed(members):
            new = 0
            if w5 or w1:
                if w5 and (next_read is None or next_read > us + TTL_5M_US):
                    new += w5
                if w1 and (next_read is None or next_read > us + TTL_1H_US):
                    new += w1
            if read:
                next_read = us
            if new == cur:
                continue
            st.days[us // US_DAY][D_WASTED] += new - cur
            if raw is not None:
                self.rows[raw][P_WASTED] = new
            elif new == base.wasted[b]:
                st.wov.pop(b, None)
            else:
                st.wov[b] = new

    def _extremes(self, day: int) -> None:
        """First and last call of ``day`` again (the call that held one was replaced)."""
        d = self.state.days.get(day)
        if d is None:
            return
        lo, hi = day * US_DAY, (day + 1) * US_DAY
        base = self.base
        times = [t for b, t in enumerate(base.ts) if lo <= t < hi and b not in self._sup]
        times += [rec[P_US] for rec in self.rows.values() if lo <= rec[P_US] < hi]
        d[D_FIRST], d[D_LAST] = min(times), max(times)

    # -- prices ------------------------------------------------------------------
    def _cost(self, pk: int, day: int, inp: int, cr: int, w5: int, w1: int,
              out: int) -> int | None:
        """The call's cost in 1e-15 USD (``None``: unpriced), as the SQL computes it."""
        got = self.state.prices.get(pk, {}).get(day)
        if got is None:
            self._resolve(pk, day)
            got = self.state.prices[pk][day]
        if got < 0:
            return None
        prompt = inp + cr + w5 + w1
        for lo, hi, r_in, r_cr, r_w5, r_w1, r_out, per_req in self.state.bandsets[got]:
            if prompt > lo and (hi < 0 or prompt <= hi):
                return (inp * r_in + cr * r_cr + w5 * r_w5 + w1 * r_w1 + out * r_out
                        + per_req * 1_000_000)
        return None

    def _resolve(self, pk: int, day: int) -> None:
        """Resolve the price of ``pk`` from ``day`` to the days already known (and
        :data:`PRICE_DAYS_AHEAD` past today) with the default price book."""
        from ..prices import default_pricebook
        from ._summary_prices import add_price_rows

        have = self.state.prices.get(pk) or {}
        today = (datetime.now(UTC).date() - _EPOCH_DAY).days
        lo = min([day, *have])
        hi = max([day, today + PRICE_DAYS_AHEAD, *have])
        missing = [d for d in range(lo, hi + 1) if d not in have]
        prov, model, tier = self.state.pks[pk]
        add_price_rows(self.state, default_pricebook(), pk, prov, model, tier,
                       min(missing), max(missing))

    def unpriced_models(self) -> tuple[dict[str, Any], ...]:
        """As :func:`.metrics._unpriced`: each (provider, model) with a day of its range
        that no price covers, its calls and the reason."""
        st = self.state
        found: dict[tuple[str, str], str] = {}
        for pk in sorted(st.pkdays, key=lambda k: st.pks[k]):
            days = st.pkdays[pk]
            prov, model, _tier = st.pks[pk]
            for day in range(min(days), max(days) + 1):
                got = st.prices.get(pk, {}).get(day)
                if got is None:
                    self._resolve(pk, day)
                    got = st.prices[pk][day]
                if got < 0:
                    found.setdefault((prov, model), st.reasons[-1 - got])
                    break
        counts: dict[tuple[str, str], int] = {}
        for pm, n in st.models.items():
            key = (st.pms[pm][0], st.pms[pm][1])
            counts[key] = counts.get(key, 0) + n
        return tuple({"provider": p, "model": m, "calls": counts.get((p, m), 0), "reason": why}
                     for (p, m), why in sorted(found.items()))

    # -- the report ----------------------------------------------------------------
    def report(self, *, source: str, wasted: bool = True) -> Any:
        """The :class:`~._results.Report` of ``report --by day`` (UTC, no bounds)."""
        from ._results import Filters, GroupRow, Report, Rows

        st = self.state
        nt = self._no_task()
        rows = []
        for day in sorted(st.days):
            d = st.days[day]
            cells = st.cells.get(day, {})
            rows.append(_group(_day_key(day), d, len(cells) - (nt in cells),
                               *(sum(1 for c in cells.values() if c[k]) for k in (1, 2, 3, 4)),
                               wasted=wasted))
        total = None
        if st.days:
            t = [0] * 15
            for d in st.days.values():
                for i in range(15):
                    t[i] += d[i]
            t[D_FIRST] = min(d[D_FIRST] for d in st.days.values())
            t[D_LAST] = max(d[D_LAST] for d in st.days.values())
            live = [v for k, v in st.tasks.items() if v[T_CALLS] and k != nt]
            total = _group("total", t, len(live),
                           *(sum(1 for v in live if v[k]) for k in (T_SUCC, T_FAIL, T_PART,
                                                                    T_BLOCK)),
                           wasted=wasted)
        names = ("key", *(n for n in GroupRow.__dataclass_fields__ if n != "key"))
        table = Rows(names, [tuple(getattr(g, c) for c in names) for g in rows])
        rep = Report(by="day", table=table, total=total, types=self._types(),
                     unpriced_models=self.unpriced_models(), filters=Filters(tz=self.tz),
                     engine="summary", source=source, usage_missing_calls=self.usage_missing)
        rep._cache["rows"] = tuple(rows)
        return rep

    def _no_task(self) -> int | None:
        """The id of the ``(no task)`` key (calls outside any task), ``None`` if none."""
        from .sql import NO_TASK

        try:
            return self.state.task_keys.index(NO_TASK)
        except ValueError:
            return None

    def _types(self) -> tuple[Any, ...]:
        """Per task type stats as :func:`.metrics._type_stats` computes them (the calls
        outside any task: a ``(no task)`` type with no task)."""
        from ._results import TypeStats, percentile
        from .sql import NO_TASK

        st = self.state
        nt = self._no_task()
        by: dict[str, list[tuple[int | None, int, int, str]]] = {}
        outside: tuple[int | None, int] | None = None
        for task, v in st.tasks.items():
            if task == nt:
                outside = (None if v[T_UNPRICED] else v[T_COST], v[T_CALLS])
                continue
            ttype, outcome = st.tstatic.get(task, [None, None])
            cost = None if v[T_UNPRICED] else v[T_COST]
            by.setdefault(ttype or "(none)", []).append((cost, v[T_TOKENS], v[T_CALLS],
                                                        outcome or ""))
        for ttype in st.idle:  # blocked before the first call: no calls, $0
            by.setdefault(ttype or "(none)", []).append((0, 0, 0, "blocked"))
        out = []
        for name in sorted(by):
            ts = by[name]
            costs = [c for c, _, _, _ in ts if c is not None]
            tokens = [t for _, t, _, _ in ts]

            def dsum(vals: list[int]) -> Decimal | None:
                return _dec(sum(vals)) if vals else None

            p50, p95 = percentile(costs, 0.5), percentile(costs, 0.95)
            out.append(TypeStats(
                task_type=name, tasks=len(ts), priced_tasks=len(costs),
                calls=sum(n for _, _, n, _ in ts),
                p50_cost_usd=None if p50 is None else _dec(p50),
                p95_cost_usd=None if p95 is None else _dec(p95),
                max_cost_usd=_dec(max(costs)) if costs else None, cost_usd=dsum(costs),
                p50_tokens=percentile(tokens, 0.5), p95_tokens=percentile(tokens, 0.95),
                successes=sum(1 for *_, o in ts if o == "success"),
                failures=sum(1 for *_, o in ts if o == "failure"),
                partials=sum(1 for *_, o in ts if o == "partial"),
                failed_cost_usd=dsum([c for c, _, _, o in ts if o == "failure" and c is not None]),
                success_cost_usd=dsum([c for c, _, _, o in ts
                                       if o == "success" and c is not None]),
                blocked=sum(1 for *_, o in ts if o == "blocked"),
            ))
        if outside is not None:
            none = TypeStats(task_type=NO_TASK, tasks=0, priced_tasks=0, calls=outside[1],
                             p50_cost_usd=None, p95_cost_usd=None, max_cost_usd=None,
                             cost_usd=None if outside[0] is None else _dec(outside[0]),
                             p50_tokens=None, p95_tokens=None, successes=0, failures=0,
                             partials=0, failed_cost_usd=None, success_cost_usd=None)
            out = sorted([*out, none], key=lambda x: x.task_type)
        return tuple(out)

    # -- saving ------------------------------------------------------------------
    def pending(self, files: dict[str, list[Any]]) -> Pending:
        """The ``.pending`` content after :meth:`apply` (``files``: the logs read now)."""
        import msgspec

        self.new_files.update(files)
        doc = self.state.to_doc()
        for k in _NAMES:
            doc[k] = doc[k][self._nbase[k]:]
        return Pending(sig=self.sig, base=self.id, rows=self.rows, files=self.new_files,
                       state=msgspec.msgpack.encode(doc))


def _rank(side: bool, tokens: int, us: int) -> tuple[int, int, int]:
    return (0 if side else 1, tokens, -(us // 1000))


def _group(key: str, d: list[int], tasks: int, succ: int, fail: int, part: int, block: int,
           *, wasted: bool) -> Any:
    from ._results import GroupRow

    return GroupRow(
        key=key, calls=d[D_CALLS], tasks=tasks, input_tokens=d[D_IN],
        cache_read_tokens=d[D_CR], cache_write_5m_tokens=d[D_W5],
        cache_write_1h_tokens=d[D_W1], output_tokens=d[D_OUT], reasoning_tokens=d[D_REAS],
        cost_usd=_dec(d[D_COST]) if d[D_PRICED] else None,
        unpriced_calls=d[D_CALLS] - d[D_PRICED],
        wasted_write_tokens=d[D_WASTED] if wasted else 0, error_calls=d[D_ERR],
        first_ts=_when(d[D_FIRST]), last_ts=_when(d[D_LAST]),
        failed_cost_usd=_dec(d[D_FCOST]) if d[D_FPRICED] else None,
        success_tasks=succ, failure_tasks=fail, partial_tasks=part, blocked_tasks=block,
    )
