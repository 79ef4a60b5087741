"""Prefix-cache simulation: replay arrival times and prefix block hashes.

A trace is a sequence of requests in arrival order; each request is a list of
prefix *blocks* (a block id plus the tokens it holds). Equal ids mean an equal
prefix up to and including that block (Mooncake's ``hash_ids``, the packer's
chained ``prefix_fingerprint``, or the chained hashes :mod:`.audit` computes from
raw request bodies).

Semantics (what every engine below implements, block for block):

* a request's **hit** is the longest prefix of its blocks that are all in the
  cache when it arrives (providers match prefixes, never a block after a miss);
* then every block of the request is touched: a hit refreshes the block's TTL
  and recency, a miss writes it (provider semantics: *write on miss, refresh on
  hit*);
* with a TTL, a block is in the cache only if it was touched at most ``ttl_s``
  seconds before the request;
* with a capacity, the cache is an LRU of at most ``capacity_tokens`` tokens
  (the least recently touched blocks are evicted after each request).

Ratios (all reported, named by what they divide):

* ``token_hit_ratio`` = hit tokens / prompt tokens, summed over requests
  (the Mooncake paper's "cache ratio");
* ``block_hit_ratio`` = hit blocks / blocks;
* ``request_hit_ratio`` = mean over requests of (hit tokens / prompt tokens);
* ``requests_with_hit`` = requests with at least one hit block.

Engines: a numpy-vectorized one for unlimited capacity (with or without TTL), a
numba kernel (optional dependency ``ctxbudget[sim]``, imported lazily) for every
case, and a pure-Python ``OrderedDict`` LRU as the fallback. ``engine="auto"``
picks numpy for unlimited capacity without TTL; otherwise numba on big traces (it
costs 1-2 s to load), else numpy (TTL) or the Python LRU. They give identical results
(tests check that on random traces).
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputFormatError
from ..prices import Cost, Price, cost_of
from ..usage import Usage

__all__ = [
    "TTL_SECONDS",
    "CacheCost",
    "CacheSimResult",
    "Trace",
    "load_mooncake",
    "load_requests_trace",
    "load_store_trace",
    "load_trace",
    "parse_ttl",
    "price_simulation",
    "simulate_cache",
    "trace_from_blocks",
]

#: Named TTLs accepted by ``--ttl`` (``none``: blocks never expire).
TTL_SECONDS: dict[str, float | None] = {
    "none": None, "5m": 300.0, "30m": 1800.0, "1h": 3600.0, "24h": 86400.0,
}

_I64 = np.int64


def parse_ttl(value: str | None) -> float | None:
    """``none``/``5m``/``1h``/``24h`` or a number of seconds (``90``, ``90s``) -> seconds."""
    if value is None:
        return None
    v = value.strip().lower()
    if v in TTL_SECONDS:
        return TTL_SECONDS[v]
    mult = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}.get(v[-1:])
    num = v[:-1] if mult else v
    try:
        secs = float(num) * (mult or 1.0)
    except ValueError:
        raise InputFormatError(
            f"--ttl: {value!r} is not none, 5m, 1h, 24h or a number of seconds") from None
    if secs <= 0 or not math.isfinite(secs):
        raise InputFormatError(f"--ttl: {value!r} must be a positive duration")
    return secs


@dataclass(frozen=True, slots=True, kw_only=True)
class Trace:
    """Requests in arrival order, as flat arrays (one row per block).

    ``blocks[offsets[r]:offsets[r+1]]`` are request ``r``'s block ids, in prefix
    order; ``block_tokens`` the tokens each holds. ``prompt_tokens[r]`` may exceed
    the sum of its blocks: the excess is uncacheable input.
    """

    ts_s: Any
    """float64 arrival time in seconds (any origin), non-decreasing."""
    offsets: Any
    """int64, length requests + 1."""
    blocks: Any
    """int64 dense block ids (0 .. n_ids - 1)."""
    block_tokens: Any
    """int64 tokens held by each block."""
    prompt_tokens: Any
    """int64 prompt (input) tokens per request."""
    output_tokens: Any
    """int64 output tokens per request (0 when unknown)."""
    n_ids: int
    """Number of distinct block ids."""
    source: str = ""

    @property
    def requests(self) -> int:
        return int(len(self.offsets) - 1)


def _time_order(ts: Any) -> Any:
    """A stable sort order by time when ``ts`` is not already sorted, else ``None``."""
    if len(ts) > 1 and bool(np.any(np.diff(ts) < 0)):
        return np.argsort(ts, kind="stable")
    return None


def trace_from_blocks(
    requests: Iterable[tuple[float, Sequence[Any], Sequence[int] | int, int, int]],
    *,
    source: str = "",
) -> Trace:
    """Build a :class:`Trace` from ``(ts_s, block_keys, block_tokens, prompt, output)`` rows.

    ``block_keys`` are any hashable ids (strings, ints); ``block_tokens`` is one
    count per block or a single block size (the last block then holds the rest
    of ``prompt``). Rows are sorted by time (stable) if they are not already.
    """
    ids: dict[Any, int] = {}
    ts: list[float] = []
    offs: list[int] = [0]
    blk: list[int] = []
    btok: list[int] = []
    prompt: list[int] = []
    out: list[int] = []
    for t, keys, toks, p, o in requests:
        ts.append(float(t))
        if isinstance(toks, int):
            size, rest = toks, p
            for _ in keys:
                n = max(0, min(size, rest))
                btok.append(n)
                rest -= n
        else:
            if len(toks) != len(keys):
                raise InputFormatError(f"{source}: {len(keys)} blocks but {len(toks)} token counts")
            btok.extend(int(x) for x in toks)
        for k in keys:
            i = ids.get(k)
            if i is None:
                i = ids[k] = len(ids)
            blk.append(i)
        offs.append(len(blk))
        prompt.append(int(p))
        out.append(int(o))
    tr = Trace(
        ts_s=np.asarray(ts, dtype=np.float64), offsets=np.asarray(offs, dtype=_I64),
        blocks=np.asarray(blk, dtype=_I64), block_tokens=np.asarray(btok, dtype=_I64),
        prompt_tokens=np.asarray(prompt, dtype=_I64), output_tokens=np.asarray(out, dtype=_I64),
        n_ids=len(ids), source=source,
    )
    order = _time_order(tr.ts_s)
    return tr if order is None else _reorder(tr, order)


def _reorder(tr: Trace, order: Any) -> Trace:
    lens = np.diff(tr.offsets)[order]
    starts = tr.offsets[:-1][order]
    idx = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens) + np.arange(
        int(lens.sum()), dtype=_I64)
    return replace(
        tr, ts_s=tr.ts_s[order], offsets=np.concatenate(([0], np.cumsum(lens))).astype(_I64),
        blocks=tr.blocks[idx], block_tokens=tr.block_tokens[idx],
        prompt_tokens=tr.prompt_tokens[order], output_tokens=tr.output_tokens[order])


def load_mooncake(path: Path | str, *, block_size: int = 512) -> Trace:
    """Read a Mooncake trace (JSONL: ``timestamp`` ms, ``input_length``,
    ``output_length``, ``hash_ids``: one id per ``block_size``-token prefix block).

    Block ``j`` of a request holds ``min(block_size, input_length - j*block_size)``
    tokens (the last block is partial). Parsed with Arrow's multithreaded JSON
    reader; on any malformed line, re-read line by line to name it.
    """
    p = Path(path)
    if not p.exists():
        raise InputFormatError(f"{p}: file not found")
    try:
        import pyarrow.json as pj

        tb = pj.read_json(str(p))
        needed = ("timestamp", "input_length", "hash_ids")
        if any(n not in tb.column_names for n in needed):
            raise ValueError("missing column")
        h = tb.column("hash_ids").combine_chunks()
        offsets = np.asarray(h.offsets.to_numpy(zero_copy_only=False), dtype=_I64)
        raw_ids = np.asarray(h.flatten().to_numpy(zero_copy_only=False), dtype=_I64)
        ts = np.asarray(tb.column("timestamp").to_numpy(zero_copy_only=False), dtype=np.float64)
        prompt = np.asarray(tb.column("input_length").to_numpy(zero_copy_only=False), dtype=_I64)
        output = (np.asarray(tb.column("output_length").to_numpy(zero_copy_only=False), dtype=_I64)
                  if "output_length" in tb.column_names else np.zeros_like(prompt))
        if offsets[0] != 0:
            offsets = offsets - offsets[0]
    except Exception:
        ts, prompt, output, offsets, raw_ids = _mooncake_slow(p)
    if len(raw_ids) and raw_ids.min() >= 0 and raw_ids.max() < 4 * len(raw_ids) + 1024:
        dense, n_ids = raw_ids, int(raw_ids.max()) + 1
    else:
        uniq, dense = np.unique(raw_ids, return_inverse=True)
        dense, n_ids = dense.astype(_I64), len(uniq)
    lens = np.diff(offsets)
    pos = np.arange(len(dense), dtype=_I64) - np.repeat(offsets[:-1], lens)
    btok = np.clip(np.repeat(prompt, lens) - pos * block_size, 0, block_size).astype(_I64)
    tr = Trace(ts_s=ts / 1000.0, offsets=offsets, blocks=dense, block_tokens=btok,
               prompt_tokens=prompt, output_tokens=output, n_ids=n_ids, source=str(p))
    order = _time_order(tr.ts_s)
    return tr if order is None else _reorder(tr, order)


def _mooncake_slow(p: Path) -> tuple[Any, Any, Any, Any, Any]:
    ts: list[float] = []
    prompt: list[int] = []
    output: list[int] = []
    offs = [0]
    ids: list[int] = []
    with p.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFormatError(f"{p}:{n}: not valid JSON ({exc.msg})") from None
            for k in ("timestamp", "input_length", "hash_ids"):
                if k not in d:
                    raise InputFormatError(f"{p}:{n}: missing field {k!r}")
            h = d["hash_ids"]
            if not isinstance(h, list) or not all(isinstance(x, int) for x in h):
                raise InputFormatError(f"{p}:{n}: hash_ids must be a list of integers")
            ts.append(float(d["timestamp"]))
            prompt.append(int(d["input_length"]))
            output.append(int(d.get("output_length") or 0))
            ids.extend(h)
            offs.append(len(ids))
    return (np.asarray(ts), np.asarray(prompt, dtype=_I64), np.asarray(output, dtype=_I64),
            np.asarray(offs, dtype=_I64), np.asarray(ids, dtype=_I64))


# --------------------------------------------------------------------------- engines


def _hits_numpy(tr: Trace, ttl_s: float | None) -> Any:
    """Hit blocks per request, unlimited capacity (vectorized, exact)."""
    nb = len(tr.blocks)
    R = tr.requests
    lens = np.diff(tr.offsets)
    req = np.repeat(np.arange(R, dtype=_I64), lens)
    if nb == 0:
        return np.zeros(R, dtype=_I64)
    if ttl_s is None:
        # cached iff the block first appeared in an earlier request
        first = np.full(tr.n_ids, R, dtype=_I64)
        np.minimum.at(first, tr.blocks, req)
        cached = first[tr.blocks] < req
    else:
        # cached iff its previous occurrence was in an earlier request, within the TTL
        order = np.argsort(tr.blocks, kind="stable")
        sb = tr.blocks[order]
        same = sb[1:] == sb[:-1]
        cached = np.zeros(nb, dtype=bool)
        prev_req = req[order[:-1]]
        cur = order[1:]
        ok = same & (prev_req < req[cur])
        ok &= (tr.ts_s[req[cur]] - tr.ts_s[prev_req]) <= ttl_s
        cached[cur[ok]] = True
    pos = np.arange(nb, dtype=_I64) - np.repeat(tr.offsets[:-1], lens)
    big = np.iinfo(_I64).max
    val = np.where(cached, big, pos)
    nonempty = lens > 0
    hits = lens.copy()
    if nonempty.any():
        first_miss = np.minimum.reduceat(val, tr.offsets[:-1][nonempty])
        hits[nonempty] = np.minimum(first_miss, lens[nonempty])
    return hits.astype(_I64)


def _hits_python(tr: Trace, ttl_s: float | None, capacity: int | None) -> Any:
    """Reference engine: an OrderedDict LRU at block level (slow, obviously correct)."""
    ttl = math.inf if ttl_s is None else ttl_s
    cap = math.inf if capacity is None else capacity
    od: OrderedDict[int, tuple[int, float]] = OrderedDict()
    used = 0
    blocks = tr.blocks.tolist()
    btok = tr.block_tokens.tolist()
    offs = tr.offsets.tolist()
    ts = tr.ts_s.tolist()
    hits = np.zeros(tr.requests, dtype=_I64)
    for r in range(tr.requests):
        t = ts[r]
        a, b = offs[r], offs[r + 1]
        h = 0
        for j in range(a, b):
            e = od.get(blocks[j])
            if e is not None and t - e[1] <= ttl:
                h += 1
            else:
                break
        hits[r] = h
        for j in range(a, b):
            k = blocks[j]
            e = od.pop(k, None)
            if e is not None:
                used -= e[0]
            od[k] = (btok[j], t)
            used += btok[j]
        while used > cap and od:
            _, (n, _) = od.popitem(last=False)
            used -= n
    return hits


#: ``engine="auto"`` uses numba for an LRU from this many blocks on.
NUMBA_MIN_BLOCKS = 2_000_000

_NUMBA_KERNEL: Callable[..., Any] | None = None
_NUMBA_TRIED = False


def _numba_kernel() -> Callable[..., Any] | None:
    """The jitted LRU/TTL kernel, or ``None`` when numba is not installed."""
    global _NUMBA_KERNEL, _NUMBA_TRIED
    if _NUMBA_TRIED:
        return _NUMBA_KERNEL
    _NUMBA_TRIED = True
    try:
        import numba
    except ImportError:
        return None

    def kernel(ts: Any, offs: Any, blocks: Any, btok: Any, n_ids: int, ttl: float,
               cap: float) -> Any:  # pragma: no cover - compiled
        R = offs.shape[0] - 1
        hits = np.zeros(R, dtype=np.int64)
        nxt = np.full(n_ids + 1, -1, dtype=np.int64)
        prv = np.full(n_ids + 1, -1, dtype=np.int64)
        inc = np.zeros(n_ids, dtype=np.bool_)
        size = np.zeros(n_ids, dtype=np.int64)
        last = np.zeros(n_ids, dtype=np.float64)
        head = n_ids  # sentinel: nxt[head] = least recent, prv[head] = most recent
        nxt[head] = head
        prv[head] = head
        used = 0
        for r in range(R):
            t = ts[r]
            a = offs[r]
            b = offs[r + 1]
            h = 0
            for j in range(a, b):
                k = blocks[j]
                if inc[k] and t - last[k] <= ttl:
                    h += 1
                else:
                    break
            hits[r] = h
            for j in range(a, b):
                k = blocks[j]
                if inc[k]:
                    nxt[prv[k]] = nxt[k]
                    prv[nxt[k]] = prv[k]
                    used -= size[k]
                inc[k] = True
                size[k] = btok[j]
                used += btok[j]
                last[k] = t
                tail = prv[head]
                nxt[tail] = k
                prv[k] = tail
                nxt[k] = head
                prv[head] = k
            while used > cap and nxt[head] != head:
                k = nxt[head]
                nxt[head] = nxt[k]
                prv[nxt[k]] = head
                inc[k] = False
                used -= size[k]
        return hits

    try:
        _NUMBA_KERNEL = numba.njit(cache=True, nogil=True)(kernel)
    except Exception:
        _NUMBA_KERNEL = numba.njit(nogil=True)(kernel)
    return _NUMBA_KERNEL


def _hits(tr: Trace, ttl_s: float | None, capacity: int | None, engine: str) -> tuple[Any, str]:
    if engine == "auto":
        # numpy for unlimited capacity without TTL; otherwise the numba kernel when installed
        # and the trace is big enough to repay its load / JIT time (~1-2 s), else numpy
        # (TTL) or the Python LRU
        if capacity is None and ttl_s is None:
            engine = "numpy"
        elif len(tr.blocks) >= NUMBA_MIN_BLOCKS and _numba_kernel() is not None:
            engine = "numba"
        else:
            engine = "numpy" if capacity is None else "python"
    if engine == "numpy":
        if capacity is not None:
            raise InputFormatError("the numpy engine only simulates unlimited capacity")
        return _hits_numpy(tr, ttl_s), engine
    if engine == "python":
        return _hits_python(tr, ttl_s, capacity), engine
    if engine == "numba":
        kernel = _numba_kernel()
        if kernel is None:
            raise InputFormatError("engine numba: numba is not installed (pip install numba)")
        ttl = math.inf if ttl_s is None else float(ttl_s)
        cap = math.inf if capacity is None else float(capacity)
        return kernel(tr.ts_s, tr.offsets, tr.blocks, tr.block_tokens, tr.n_ids, ttl, cap), engine
    raise InputFormatError(f"--kernel: unknown kernel {engine!r} (auto, numba, numpy, python)")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheSimResult:
    """Outcome of one replay. Token figures are prompt (input) tokens only."""

    requests: int
    blocks: int
    prompt_tokens: int
    """All prompt tokens of all requests (cacheable or not)."""
    blocked_tokens: int
    """Prompt tokens covered by blocks (the cacheable part)."""
    hit_tokens: int
    """Tokens of the hit prefixes (would be billed as cache reads)."""
    hit_blocks: int
    requests_with_hit: int
    request_hit_ratio: float
    """Mean over requests of hit tokens / prompt tokens (requests with 0 prompt skipped)."""
    output_tokens: int
    ttl_s: float | None
    capacity_tokens: int | None
    engine: str
    hit_blocks_per_request: Any = field(repr=False, compare=False)
    hit_tokens_per_request: Any = field(repr=False, compare=False)

    @property
    def token_hit_ratio(self) -> float:
        """Hit tokens / prompt tokens (token-weighted; the Mooncake paper's cache ratio)."""
        return self.hit_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    @property
    def block_hit_ratio(self) -> float:
        """Hit blocks / blocks."""
        return self.hit_blocks / self.blocks if self.blocks else 0.0

    @property
    def write_tokens(self) -> int:
        """Block tokens that missed and were (re)written."""
        return self.blocked_tokens - self.hit_tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests, "blocks": self.blocks,
            "prompt_tokens": self.prompt_tokens, "cacheable_tokens": self.blocked_tokens,
            "hit_tokens": self.hit_tokens, "write_tokens": self.write_tokens,
            "hit_blocks": self.hit_blocks, "output_tokens": self.output_tokens,
            "token_hit_ratio": round(self.token_hit_ratio, 6),
            "block_hit_ratio": round(self.block_hit_ratio, 6),
            "request_hit_ratio": round(self.request_hit_ratio, 6),
            "requests_with_hit": self.requests_with_hit,
            "ttl_s": self.ttl_s, "capacity_tokens": self.capacity_tokens, "engine": self.engine,
            "definitions": {
                "token_hit_ratio": "sum of hit-prefix tokens / sum of prompt tokens",
                "block_hit_ratio": "hit prefix blocks / all blocks",
                "request_hit_ratio": "mean over requests of hit tokens / prompt tokens",
                "hit": "longest prefix of a request's blocks all cached on arrival",
            },
        }


def simulate_cache(
    trace: Trace,
    *,
    ttl_s: float | None = None,
    capacity_tokens: int | None = None,
    engine: str = "auto",
) -> CacheSimResult:
    """Replay ``trace`` (see the module docstring for the semantics)."""
    if capacity_tokens is not None and capacity_tokens < 0:
        raise InputFormatError("--capacity-tokens must be >= 0")
    hits, used = _hits(trace, ttl_s, capacity_tokens, engine)
    hits = np.asarray(hits, dtype=_I64)
    cum = np.concatenate(([0], np.cumsum(trace.block_tokens, dtype=_I64)))
    starts = trace.offsets[:-1]
    hit_tok = cum[starts + hits] - cum[starts]
    prompt = trace.prompt_tokens
    blocked = int(cum[-1])
    nz = prompt > 0
    rhr = float(np.mean(hit_tok[nz] / prompt[nz])) if nz.any() else 0.0
    return CacheSimResult(
        requests=trace.requests, blocks=len(trace.blocks),
        prompt_tokens=int(prompt.sum()), blocked_tokens=blocked,
        hit_tokens=int(hit_tok.sum()), hit_blocks=int(hits.sum()),
        requests_with_hit=int((hits > 0).sum()), request_hit_ratio=rhr,
        output_tokens=int(trace.output_tokens.sum()), ttl_s=ttl_s,
        capacity_tokens=capacity_tokens, engine=used,
        hit_blocks_per_request=hits, hit_tokens_per_request=hit_tok,
    )


# --------------------------------------------------------------------------- cost


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheCost:
    """Cost of the replayed requests with and without prompt caching, at one price."""

    price: Price
    with_cache: Usage
    without_cache: Usage
    with_cache_usd: Decimal
    without_cache_usd: Decimal

    @property
    def saved_usd(self) -> Decimal:
        return self.without_cache_usd - self.with_cache_usd

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.price.provider, "model": self.price.model,
            "price_source": self.price.source,
            "with_cache": {**self.with_cache.as_dict(), "usd": str(self.with_cache_usd)},
            "without_cache": {**self.without_cache.as_dict(), "usd": str(self.without_cache_usd)},
            "saved_usd": str(self.saved_usd),
            "assumptions": "hits billed as cache reads, missed block tokens as cache writes "
                           "(1h bucket when the TTL is over 5 minutes), tokens outside blocks "
                           "as uncached input; without caching every prompt token is input",
        }


def price_simulation(trace: Trace, res: CacheSimResult, price: Price) -> CacheCost:
    """Price ``res`` with :func:`~ctxbudget.prices.cost_of`, tier chosen per request.

    Requests are grouped by the context-length tier their whole prompt falls in
    (the prompt is the same with or without caching), and each group's summed
    usage is priced with that tier's rates.
    """
    prompt = trace.prompt_tokens
    lens = np.diff(trace.offsets)
    cum = np.concatenate(([0], np.cumsum(trace.block_tokens, dtype=_I64)))
    blocked = cum[trace.offsets[:-1] + lens] - cum[trace.offsets[:-1]]
    hit = res.hit_tokens_per_request
    write = blocked - hit
    uncached = np.maximum(prompt - blocked, 0)
    long_ttl = res.ttl_s is not None and res.ttl_s > 300
    levels = [(0, price.base)] + [(t.above_prompt_tokens, t.rates) for t in price.tiers]
    level = np.zeros(len(prompt), dtype=_I64)
    for i, (thr, _) in enumerate(levels[1:], 1):
        level[prompt > thr] = i
    w_usd = Decimal(0)
    wo_usd = Decimal(0)
    w_total = Usage()
    wo_total = Usage()
    for i, (_, rates) in enumerate(levels):
        m = level == i
        n = int(m.sum())
        if n == 0:
            continue
        flat = replace(price, base=rates, tiers=())
        wr = int(write[m].sum())
        w = Usage(input_tokens=int(uncached[m].sum()), cache_read_tokens=int(hit[m].sum()),
                  cache_write_5m_tokens=0 if long_ttl else wr,
                  cache_write_1h_tokens=wr if long_ttl else 0,
                  output_tokens=int(trace.output_tokens[m].sum()))
        wo = Usage(input_tokens=int(prompt[m].sum()), output_tokens=w.output_tokens)
        c1: Cost = cost_of(w, flat, requests=n)
        c2: Cost = cost_of(wo, flat, requests=n)
        w_usd += c1.total_usd
        wo_usd += c2.total_usd
        w_total += w
        wo_total += wo
    return CacheCost(price=price, with_cache=w_total, without_cache=wo_total,
                     with_cache_usd=w_usd, without_cache_usd=wo_usd)


# --------------------------------------------------------------------------- other inputs


def _fingerprint_rows(path: Path | str) -> list[tuple[Any, ...]]:
    """``(ts, provider, model, session, fingerprint JSON, prompt, output, meta JSON)`` rows of
    the store's calls that carry a prefix fingerprint, in time order."""
    from ..store import open_store

    with open_store(path, read_only=True) as st:
        rows: list[tuple[Any, ...]] = st.con.execute(
            "SELECT ts, provider, model, session_id, prefix_fingerprint, "
            "input_tokens + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens, "
            "output_tokens, meta FROM calls WHERE prefix_fingerprint IS NOT NULL "
            "ORDER BY ts, call_key").fetchall()
    return rows


def load_store_trace(path: Path | str) -> Trace:
    """A trace from the store's calls with a ``prefix_fingerprint`` (JSON list of block hashes).

    Block ids are chained per model (a block is equal only if the model and every block
    before it are). Tokens per block: ``meta.block_tokens`` when recorded, else the
    call's prompt tokens split evenly over its blocks.
    """
    rows = _fingerprint_rows(path)
    if not rows:
        raise InputFormatError(f"{path}: no calls with a prefix_fingerprint in the store")
    chained: dict[tuple[Any, str], int] = {}
    out: list[tuple[float, list[int], list[int], int, int]] = []
    for ts, _prov, model, _sess, fp_json, prompt, output, meta_json in rows:
        try:
            fp = json.loads(fp_json)
        except json.JSONDecodeError:
            raise InputFormatError(f"{path}: a prefix_fingerprint is not JSON") from None
        meta = json.loads(meta_json) if meta_json else {}
        prev: Any = ("model", model)
        keys = []
        for h in fp:
            prev = chained.setdefault((prev, str(h)), len(chained))
            keys.append(prev)
        bt = meta.get("block_tokens") if isinstance(meta, dict) else None
        if not (isinstance(bt, list) and len(bt) == len(keys)):
            n = max(len(keys), 1)
            bt = [int(prompt) // n + (1 if i < int(prompt) % n else 0) for i in range(len(keys))]
        out.append((ts.timestamp(), keys, [int(x) for x in bt], int(prompt), int(output or 0)))
    return trace_from_blocks(out, source=str(path))


def load_requests_trace(path: Path | str) -> Trace:
    """A trace from logged request bodies (JSONL or cassette; see :mod:`.audit`): each
    labeled block is one cache block with its counted tokens; ids are chained hashes.
    Prompt / output tokens come from the logged usage when present."""
    from .requests import load_requests

    reqs, _ = load_requests(path)
    if not reqs:
        raise InputFormatError(f"{path}: no request bodies found")
    rows = []
    for r in reqs:
        toks = [b.tokens for b in r.blocks]
        prompt = r.usage.prompt_tokens if r.usage else sum(toks)
        out = r.usage.output_tokens if r.usage else 0
        rows.append((r.ts.timestamp(), list(r.chain), toks, max(prompt, sum(toks)), out))
    return trace_from_blocks(rows, source=str(path))


def load_trace(path: Path | str, fmt: str = "auto", *, block_size: int = 512) -> Trace:
    """Load ``path`` as ``mooncake``, ``store`` or ``requests`` (``auto``: by content)."""
    p = Path(path)
    if not p.exists():
        raise InputFormatError(f"{p}: file not found")
    if fmt == "auto":
        if p.suffix.lower() in (".duckdb", ".db"):
            fmt = "store"
        elif p.suffix.lower() in (".yaml", ".yml"):
            fmt = "requests"
        else:
            with p.open(encoding="utf-8", errors="replace") as fh:
                head = fh.readline()
            fmt = "mooncake" if '"hash_ids"' in head else "requests"
    if fmt == "mooncake":
        return load_mooncake(p, block_size=block_size)
    if fmt == "store":
        return load_store_trace(p)
    if fmt == "requests":
        return load_requests_trace(p)
    raise InputFormatError(f"--from: {fmt!r} is not mooncake, store, requests or auto")
