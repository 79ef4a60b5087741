"""Price a reservation from a request body, before the request is sent.

:class:`RequestPricer` reads an Anthropic Messages, OpenAI Chat Completions, Responses
or Embeddings body (the raw bytes the client sent) and returns a
:class:`RequestEstimate`: the prompt counted with :mod:`ctxbudget.tokens`, split into
the buckets that body could be billed at, plus the output cap, priced by the
:class:`~ctxbudget.prices.PriceBook` (the one cost formula):

* **Tier.** The usage is priced as one request, so a prompt past a context-length
  threshold is priced at that tier's rates, like the provider bills it.
* **Cache writes (Anthropic).** Tokens up to the last ``cache_control`` breakpoint
  (tools, then system, then messages) are priced as cache writes — 1-hour writes up to
  the last ``ttl: "1h"`` breakpoint, 5-minute writes after it — the most that prefix can
  cost. A top-level ``cache_control`` (automatic caching) makes the whole prompt a write.
  OpenAI-compatible prompts are priced at the input rate (their caching only discounts).
* **Output.** ``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens``, or
  ``default_output_tokens`` (4096) when the body sets none; 0 for embeddings.
* **Service tier.** An OpenAI ``service_tier`` of ``priority`` or ``flex`` is priced at
  that variant when the catalog has it.

So for a priced model the estimate is an upper bound of the bill *except* where the
counter itself estimates (Claude has no public tokenizer: ``exact`` is False) and where
the body refers to content the gateway cannot see (``previous_response_id``,
server-side tools' fetched pages).

**Counting is cached per content block.** The body is split into its messages, system
blocks and tool definitions without decoding their contents (``msgspec.Raw``); each is
looked up by (counter, length, hash of its bytes) in a two-generation (LRU-like) cache,
and only blocks not seen before are decoded and counted. A 400 KB Claude Code body
re-sent with one new message per turn costs one block count plus a copy and a hash of
each block's bytes and one dict lookup per block. The counts equal
``ctxbudget.tokens.count_tokens`` on the whole body (tests check it).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import msgspec
from msgspec import UnsetType

from ..errors import InputFormatError, PricingError
from ..prices import PriceBook, default_pricebook
from ..tokens._counters import cached_units, get_counter
from ..tokens._framing import Layout, _blocks, framing_for, layout_messages, tool_text
from ..usage import Usage
from ._prefix import (
    _WS,
    HEAD,
    MIN_BYTES,
    TAIL_DECODER,
    PrefixCache,
    Prev,
    locate,
    walk_messages,
)
from ._types import Amount

__all__ = ["API", "DEFAULT_OUTPUT_TOKENS", "RequestEstimate", "RequestPricer"]

log = logging.getLogger("ctxbudget.budgets")

API = Literal["anthropic", "openai-chat", "openai-responses", "openai-embeddings"]

#: Output tokens reserved when a body sets no output cap.
DEFAULT_OUTPUT_TOKENS = 4096


#: Seed of the block hash: per process, so a client cannot craft two blocks with the
#: same key (one counted as the other).
_SEED = int.from_bytes(os.urandom(8), "little")
_XXH: list[Any] = []


def _xxh() -> Any:
    """``xxhash.xxh3_128_intdigest`` when xxhash is installed, else None (looked up once)."""
    if not _XXH:
        fn: Any = None
        with contextlib.suppress(ImportError):
            from xxhash import xxh3_128_intdigest as fn
        _XXH.append(fn)
    return _XXH[0]


#: An absent field (msgspec has no ``Raw | None``): an empty Raw.
_NONE = msgspec.Raw(b"")


def _given(raw: msgspec.Raw) -> bool:
    return len(raw) > 0 and bytes(raw) != b"null"


class _Anthropic(msgspec.Struct):
    model: str = ""
    max_tokens: int | None = None
    stream: bool | None = None
    system: msgspec.Raw = _NONE
    messages: list[msgspec.Raw] = []
    tools: list[msgspec.Raw] = []
    cache_control: msgspec.Raw = _NONE
    metadata: dict[str, Any] | None = None
    service_tier: str | None = None


class _StreamOptions(msgspec.Struct):
    include_usage: bool | None = None


class _OpenAIChat(msgspec.Struct):
    model: str = ""
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stream: bool | None = None
    stream_options: _StreamOptions | None = None
    messages: list[msgspec.Raw] = []
    tools: list[msgspec.Raw] = []
    functions: list[msgspec.Raw] = []
    user: str | None = None
    service_tier: str | None = None
    n: int | None = None


class _OpenAIResponses(msgspec.Struct):
    model: str = ""
    max_output_tokens: int | None = None
    stream: bool | None = None
    instructions: msgspec.Raw = _NONE
    input: msgspec.Raw = _NONE
    tools: list[msgspec.Raw] = []
    user: str | None = None
    service_tier: str | None = None


class _OpenAIEmbeddings(msgspec.Struct):
    model: str = ""
    input: msgspec.Raw = _NONE
    user: str | None = None


_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "anthropic": msgspec.json.Decoder(_Anthropic),
    "openai-chat": msgspec.json.Decoder(_OpenAIChat),
    "openai-responses": msgspec.json.Decoder(_OpenAIResponses),
    "openai-embeddings": msgspec.json.Decoder(_OpenAIEmbeddings),
}


#: The Anthropic body fields the estimate reads (besides ``messages``), and their
#: values when absent (after :meth:`RequestPricer._fields`).
_DEFAULTS: dict[str, Any] = {"model": "", "max_tokens": None, "stream": None,
                             "metadata": None, "cache_control": None, "system": None,
                             "tools": []}
_FIELD_NAMES = tuple(_DEFAULTS)


@dataclass(slots=True)
class _Parts:
    """An Anthropic body, counted: its fields, each message's (tokens, ttl, digest) and
    the running sums the cache-write split needs."""

    fields: dict[str, Any]
    vals: list[tuple[int, str, str]]
    cum: list[int]
    last1h: list[int]
    lastany: list[int]
    resolved: tuple[Any, str, Any, int]


def _upto(pre: list[tuple[int, str]], pre_total: int, cum: list[int], npre: int,
          k: int) -> int:
    """Tokens of the first ``k`` parts (``pre``, then the messages)."""
    if k <= npre:
        return sum(x[0] for x in pre[:k])
    return pre_total + cum[k - npre]


def _extend(cum: list[int], l1: list[int], la: list[int],
            vals: list[tuple[int, str, str]], start: int) -> None:
    """Append the running token sum and the last 1h / any breakpoint index of ``vals``
    (messages ``start``, ``start + 1``...)."""
    c, a1, aa = cum[-1], l1[-1], la[-1]
    for k, v in enumerate(vals, start):
        c += v[0]
        t = v[1]
        if t:
            aa = k
            if t == "1h":
                a1 = k
        cum.append(c)
        l1.append(a1)
        la.append(aa)


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestEstimate:
    """What a request body may cost, and the fields of it the gateway needs."""

    api: str
    model: str
    usage: Usage
    """Prompt tokens split into input / cache-write buckets, output = the output cap."""
    cost_usd: Decimal | None
    """The usage priced as one request; ``None`` when the model has no price."""
    exact: bool
    """Whether the token counter is exact for this model (tiktoken) or an estimate."""
    stream: bool = False
    include_usage: bool = False
    """OpenAI chat ``stream_options.include_usage``."""
    user: str | None = None
    """Anthropic ``metadata.user_id`` or OpenAI ``user``, as the client sent it."""
    fingerprint: tuple[str, ...] = ()
    """16 hex digits of BLAKE2b per content block (tools, system, messages, in prompt
    order): the request's prefix fingerprint, no text."""

    @property
    def amount(self) -> Amount:
        """The reservation to hold: cost (0 when unpriced), total tokens, one call."""
        return Amount(usd=self.cost_usd or Decimal(0), tokens=self.usage.total_tokens, calls=1)


class _BlockCache:
    """(counter id, kind, length, hash of bytes) -> (tokens, cache ttl or "", BLAKE2b
    digest of the bytes), in two generations: a lookup reads the young dict, then the
    old one (and moves a hit from old to young); when the young dict is full it becomes
    the old one. So a block used at least once per ``maxsize / 2`` insertions stays, like
    an LRU, but a hit costs one dict lookup and no lock (each dict operation is atomic;
    a race between two threads can only drop an entry, which is then counted again)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._half = max(1, maxsize // 2)
        self.young: dict[tuple[Any, ...], tuple[int, str, str]] = {}
        self.old: dict[tuple[Any, ...], tuple[int, str, str]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...]) -> tuple[int, str, str] | None:
        v = self.young.get(key)
        if v is None:
            v = self.old.get(key)
            if v is not None:
                self.put(key, v)  # keep it young
        return v

    def put(self, key: tuple[Any, ...], value: tuple[int, str, str]) -> None:
        young = self.young
        young[key] = value
        if len(young) >= self._half:
            self.old = young
            self.young = {}


def _cache_ttl(block: Any) -> str:
    """The TTL of the last ``cache_control`` marker inside a decoded block ("" if none)."""
    found = ""
    if isinstance(block, Mapping):
        cc = block.get("cache_control")
        if isinstance(cc, Mapping):
            found = "1h" if cc.get("ttl") == "1h" else "5m"
        for v in block.values():
            if isinstance(v, list | Mapping):
                found = _cache_ttl(v) or found
    elif isinstance(block, list):
        for v in block:
            found = _cache_ttl(v) or found
    return found


class RequestPricer:
    """Counts and prices request bodies; thread-safe; one per process is enough.

    ``pricebook``: the PriceBook to price with (default: the bundled catalog + none).
    ``cache_blocks``: how many content blocks to remember (a block is a message, a
    system prompt or a tool definition)."""

    def __init__(self, pricebook: PriceBook | None = None, *,
                 default_output_tokens: int = DEFAULT_OUTPUT_TOKENS,
                 cache_blocks: int = 65_536, prefix_bytes: int = 64 * 1024 * 1024) -> None:
        self._pricebook = pricebook
        self.default_output_tokens = default_output_tokens
        self.cache = _BlockCache(cache_blocks)
        self._counters: dict[tuple[str, str | None], tuple[Any, str, Any, int]] = {}
        """(model, provider) -> (counter, family, framing, counter id), resolved once."""
        self._counter_ids: dict[tuple[Any, ...], int] = {}
        """(counter key, calibration, family) -> a small int (the block cache's key part:
        hashing an int is cheaper than hashing the calibration dataclass per block)."""
        self._lock = threading.Lock()
        self.prefix: PrefixCache | None = PrefixCache(prefix_bytes) if prefix_bytes else None
        """Recent long Anthropic bodies, for the prefix fast path (``_prefix.py``);
        ``prefix_bytes=0`` turns it off."""

    @property
    def pricebook(self) -> PriceBook:
        if self._pricebook is None:
            self._pricebook = default_pricebook()
        return self._pricebook

    # -- public ------------------------------------------------------------------
    def estimate(self, body: bytes, api: str, *, provider: str | None = None,
                 at: datetime | None = None) -> RequestEstimate:
        """Count and price ``body`` (the raw JSON bytes) for ``api``.

        Raises :class:`~ctxbudget.errors.InputFormatError` for a body that is not a JSON
        object of that API's shape."""
        if api == "anthropic" and self.prefix is not None and len(body) >= MIN_BYTES:
            fast = self._anthropic_prefix(body, provider)
            if fast is not None:
                return self._anthropic_estimate(fast, provider, at)
        dec = _DECODERS.get(api)
        if dec is None:
            raise InputFormatError(f"unknown API {api!r}; expected one of {', '.join(_DECODERS)}")
        try:
            req = dec.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InputFormatError(f"request body: {exc}") from None
        if not req.model:
            raise InputFormatError("request body: no model")
        fp: list[str] = []
        resolved = self._counters.get((req.model, provider))
        if resolved is None:
            resolved = self._resolve(req.model, provider)
        counter, family, framing, ck = resolved
        service_tier: str | None = None
        include_usage = False
        user: str | None = None
        if isinstance(req, _Anthropic):
            return self._anthropic_estimate(self._anthropic_full(req, body, resolved),
                                            provider, at)
        if isinstance(req, _OpenAIEmbeddings):
            w1 = w5 = 0
            inp = self._embeddings(req, counter)
            out = 0
            user = req.user
        else:
            w1 = w5 = 0
            inp = self._openai(req, counter, framing, family, ck, fp)
            if isinstance(req, _OpenAIChat):
                cap = req.max_completion_tokens if req.max_completion_tokens is not None \
                    else req.max_tokens
                out = (cap if cap is not None else self.default_output_tokens) * max(1, req.n or 1)
                include_usage = bool(req.stream_options and req.stream_options.include_usage)
            else:
                out = req.max_output_tokens if req.max_output_tokens is not None \
                    else self.default_output_tokens
            user = req.user
            if req.service_tier in ("priority", "flex"):
                service_tier = req.service_tier
        usage = Usage(input_tokens=inp, cache_write_5m_tokens=w5, cache_write_1h_tokens=w1,
                      output_tokens=max(0, out))
        return RequestEstimate(
            api=api, model=req.model, usage=usage,
            cost_usd=self.price(usage, req.model, provider, at, service_tier),
            exact=bool(counter.exact), stream=bool(getattr(req, "stream", False)),
            include_usage=include_usage, user=user, fingerprint=tuple(fp))

    def price(self, usage: Usage, model: str, provider: str | None,
              at: datetime | None = None, service_tier: str | None = None) -> Decimal | None:
        """``usage`` priced by the PriceBook; ``None`` when the model has no price."""
        at = at or datetime.now(UTC)
        pb = self.pricebook
        if service_tier is not None:
            try:
                return pb.total_usd(usage, model, provider, at, service_tier)
            except PricingError:
                pass
        try:
            return pb.total_usd(usage, model, provider, at)
        except PricingError:
            return None

    # -- counting ----------------------------------------------------------------
    def _resolve(self, model: str, provider: str | None) -> tuple[Any, str, Any, int]:
        counter, family = get_counter(model, provider)
        key = (counter.key, getattr(counter, "calibration", None), family)
        with self._lock:
            cid = self._counter_ids.setdefault(key, len(self._counter_ids))
            resolved = (counter, family, framing_for(family, model), cid)
            if len(self._counters) > 4096:
                self._counters.clear()
            self._counters[(model, provider)] = resolved
        return resolved

    def _blocks(self, kind: str, raws: list[msgspec.Raw], counter: Any, framing: Any,
                family: str, ck: int, fp: list[str]) -> list[tuple[int, str, str]]:
        """(tokens, cache ttl, digest) of each block, appending the digests to ``fp``.

        The hot path of a long session (every block but the newest is a hit): one hash
        of each block's bytes and one dict lookup. With ``xxhash`` installed (the
        ``gateway`` extra) the hash is a per-process-seeded 128-bit XXH3 of the bytes in
        place (~20 GB/s); without it, Python's (also seeded) hash of a copy."""
        cache = self.cache
        young = cache.young
        out: list[tuple[int, str, str]] = []
        misses = 0
        xxh = _xxh()
        for raw in raws:
            if xxh is not None:
                key = (ck, kind, len(raw), xxh(raw, _SEED))
            else:
                data = bytes(raw)
                key = (ck, kind, len(data), hash(data))
            v = young.get(key)
            if v is None:
                v = cache.old.get(key)
                if v is None:
                    misses += 1
                    v = self._count_block(kind, bytes(raw), counter, framing, family)
                cache.put(key, v)
                young = cache.young
            out.append(v)
            fp.append(v[2])
        cache.misses += misses
        cache.hits += len(raws) - misses
        return out

    def _count_block(self, kind: str, data: bytes, counter: Any, framing: Any, family: str
                     ) -> tuple[int, str, str]:
        obj = msgspec.json.decode(data)
        lay = Layout()
        if kind == "m":
            if not isinstance(obj, Mapping):
                raise InputFormatError("request body: each message must be an object")
            layout_messages([obj], framing, family, lay)
            lay.framing -= framing.reply_priming  # added once per request by the caller
        elif kind == "t":
            if not isinstance(obj, Mapping):
                raise InputFormatError("request body: each tool must be an object")
            lay.texts.append(tool_text(obj))
            lay.framing += framing.per_tool
        else:  # system / instructions
            _blocks(lay, obj, family, "system")
        tokens = lay.framing + lay.extra + sum(
            counter.tokens(cached_units(counter, t), with_intercept=False) for t in lay.texts)
        ttl = _cache_ttl(obj) if b'"cache_control"' in data else ""
        return tokens, ttl, hashlib.blake2b(data, digest_size=8).hexdigest()

    # -- Anthropic -------------------------------------------------------------------
    def _anthropic_full(self, req: _Anthropic, body: bytes, resolved: tuple[Any, str, Any, int]
                        ) -> _Parts:
        """The parts of a whole decoded body; a long one is kept for the prefix path."""
        counter, family, framing, ck = resolved
        f = self._fields(req, _FIELD_NAMES, counter, framing, family, ck)
        vals = self._blocks("m", req.messages, counter, framing, family, ck, [])
        cum, l1, la = [0], [-1], [-1]
        _extend(cum, l1, la, vals, 0)
        prefix = self.prefix
        if prefix is not None and len(body) >= MIN_BYTES and req.messages:
            loc = locate(body, req.messages[0])
            ends = walk_messages(body, loc[1], req.messages) if loc is not None else None
            if loc is not None and ends is not None:
                before = {k: f[k] for k in loc[0] if k in f}
                prefix.put(Prev(body, ck, ends, vals, cum, l1, la, before))
        return _Parts(f, vals, cum, l1, la, resolved)

    def _anthropic_prefix(self, body: bytes, provider: str | None) -> _Parts | None:
        """The parts of ``body`` from a kept body it extends (None: decode it whole)."""
        assert self.prefix is not None
        hit = self.prefix.find(body)
        if hit is None:
            return None
        prev, j = hit
        e = prev.ends[j - 1]
        m = _WS.match(body, e).end()  # type: ignore[union-attr]
        c = body[m:m + 1]
        if c == b",":
            p = m + 1
        elif c == b"]":
            p = m
        else:
            return None
        tail_bytes = HEAD + body[p:]
        try:
            tail = TAIL_DECODER.decode(tail_bytes)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None  # the whole decode says what is wrong
        assert not isinstance(tail.messages, UnsetType)
        new_raws = tail.messages
        new_ends = walk_messages(tail_bytes, len(HEAD) - 1, new_raws)
        if new_ends is None:  # e.g. a second "messages" key after the array
            return None
        model = tail.model if not isinstance(tail.model, UnsetType) else prev.before.get("model")
        if not model:
            return None
        resolved = self._counters.get((model, provider)) or self._resolve(model, provider)
        counter, family, framing, ck = resolved
        if ck != prev.ck:
            return None
        f = dict(_DEFAULTS)
        f.update(prev.before)
        f.update(self._fields(tail, [n for n in _FIELD_NAMES
                                     if not isinstance(getattr(tail, n), UnsetType)],
                              counter, framing, family, ck))
        new_vals = self._blocks("m", new_raws, counter, framing, family, ck, [])
        self.cache.hits += j
        vals = prev.vals[:j] + new_vals
        cum, l1, la = prev.cum[:j + 1], prev.last1h[:j + 1], prev.lastany[:j + 1]
        _extend(cum, l1, la, new_vals, j)
        shift = p - len(HEAD)
        ends = prev.ends[:j] + [x + shift for x in new_ends]
        self.prefix.put(Prev(body, ck, ends, vals, cum, l1, la, prev.before),
                        replaces=prev if j >= len(prev.ends) - 2 else None)
        return _Parts(f, vals, cum, l1, la, resolved)

    def _fields(self, src: Any, names: Any, counter: Any, framing: Any, family: str,
                ck: int) -> dict[str, Any]:
        """The estimate's fields of ``src`` (a whole body or a tail) for ``names``:
        scalars as decoded; ``cache_control`` -> None or the top-level breakpoint's ttl;
        ``system`` -> its block value or None; ``tools`` -> their block values."""
        out: dict[str, Any] = {}
        for n in names:
            v = getattr(src, n)
            if n == "system":
                out[n] = self._blocks("s", [v], counter, framing, family, ck, [])[0] \
                    if _given(v) else None
            elif n == "tools":
                out[n] = self._blocks("t", v, counter, framing, family, ck, []) if v else []
            elif n == "cache_control":
                out[n] = _cache_ttl({"cache_control": msgspec.json.decode(bytes(v))}) \
                    if _given(v) else None
            else:
                out[n] = v
        return out

    def _anthropic_estimate(self, parts: _Parts, provider: str | None,
                            at: datetime | None) -> RequestEstimate:
        f = parts.fields
        counter, _, framing, _ = parts.resolved
        model = f["model"]
        if not model:
            raise InputFormatError("request body: no model")
        tools: list[tuple[int, str, str]] = f["tools"]
        system: tuple[int, str, str] | None = f["system"]
        # the parts before the messages, in prompt order: (tokens, breakpoint ttl)
        pre: list[tuple[int, str]] = [(framing.request_base, "")]
        if tools:
            pre.append((framing.tools_base, ""))
            pre += [(v[0], v[1]) for v in tools]
        if system is not None:
            pre.append((system[0], system[1]))
        cum = parts.cum
        n = len(cum) - 1
        pre_total = 0
        pre_1h = pre_any = -1
        for i, (tok, ttl) in enumerate(pre):
            pre_total += tok
            if ttl:
                pre_any = i
                if ttl == "1h":
                    pre_1h = i
        total = pre_total + cum[n] + (framing.reply_priming if n else 0)
        cc = f["cache_control"]
        if cc is not None:  # automatic caching: the whole prompt is written
            w1, w5 = (total, 0) if cc == "1h" else (0, total)
        else:
            # the prefix up to the last breakpoint is written (1h up to the last 1h one);
            # parts are numbered pre first, then messages
            npre = len(pre)
            m1, ma = parts.last1h[n], parts.lastany[n]
            last_1h = npre + m1 if m1 >= 0 else pre_1h
            last_any = npre + ma if ma >= 0 else pre_any
            w1 = w5 = 0
            if last_any >= 0:
                w1 = _upto(pre, pre_total, cum, npre, last_1h + 1)
                w5 = _upto(pre, pre_total, cum, npre, last_any + 1) - w1
        out = f["max_tokens"] if f["max_tokens"] is not None else self.default_output_tokens
        md = f["metadata"] or {}
        user = md.get("user_id") if isinstance(md.get("user_id"), str) else None
        usage = Usage(input_tokens=total - w1 - w5, cache_write_5m_tokens=w5,
                      cache_write_1h_tokens=w1, output_tokens=max(0, out))
        fp = [v[2] for v in tools]
        if system is not None:
            fp.append(system[2])
        fp += [v[2] for v in parts.vals]
        return RequestEstimate(
            api="anthropic", model=model, usage=usage,
            cost_usd=self.price(usage, model, provider, at),
            exact=bool(counter.exact), stream=bool(f["stream"]), include_usage=False,
            user=user, fingerprint=tuple(fp))

    def _openai(self, req: _OpenAIChat | _OpenAIResponses, counter: Any, framing: Any,
                family: str, ck: int, fp: list[str]) -> int:
        total = framing.request_base
        msgs: list[msgspec.Raw] = []
        if isinstance(req, _OpenAIResponses):
            if _given(req.instructions):
                total += self._blocks("s", [req.instructions], counter, framing, family, ck,
                                      fp)[0][0]
            if _given(req.input):
                data = bytes(req.input)
                if data.lstrip().startswith(b'"'):
                    msgs = [msgspec.Raw(msgspec.json.encode(
                        {"role": "user", "content": msgspec.json.decode(data)}))]
                else:
                    msgs = msgspec.json.decode(data, type=list[msgspec.Raw])
            tools = req.tools or []
        else:
            msgs = req.messages
            tools = (req.tools or []) + (req.functions or [])
        total += sum(v[0] for v in self._blocks("m", msgs, counter, framing, family, ck, fp))
        if msgs:
            total += framing.reply_priming
        if tools:
            total += framing.tools_base
            total += sum(v[0] for v in self._blocks("t", tools, counter, framing, family, ck,
                                                    fp))
        return int(total)

    def _embeddings(self, req: _OpenAIEmbeddings, counter: Any) -> int:
        if not _given(req.input):
            return 0
        obj = msgspec.json.decode(bytes(req.input))
        items = obj if isinstance(obj, list) else [obj]
        total = 0
        for it in items:
            if isinstance(it, str):
                total += counter.tokens(cached_units(counter, it), with_intercept=False)
            elif isinstance(it, int):
                total += 1  # a flat list of token ids
            elif isinstance(it, list):
                total += len(it)  # one input given as token ids
            else:
                raise InputFormatError("request body: input must be text or token ids")
        return int(total)
