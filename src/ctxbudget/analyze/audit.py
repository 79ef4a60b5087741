"""Cache audit: why did the prompt cache miss, and what did it cost?

Each logged request body (Anthropic Messages, OpenAI Chat Completions or OpenAI
Responses) is normalized into ordered, labeled blocks, in the order providers
hash a prefix::

    params                      model, tool_choice, thinking / reasoning effort,
                                response format, prompt cache key, service tier
    tools[i]                    one per tool definition
    system[j]                   Anthropic ``system`` blocks, Responses ``instructions``,
                                OpenAI system / developer messages
    messages[k].content[m]      one per content part (role included)

Every block keeps the bytes as sent (JSON in the body's own key order, minus
``cache_control`` markers) and a canonical form (sorted keys). A block's id is a
hash chained over every block before it, so equal ids mean equal prefixes.

For each call the audit replays the provider's cache (writes at breakpoints or,
for OpenAI automatic caching, at every block; TTL refreshed on hit; Anthropic's
20-block lookback; the minimum cacheable length) and compares the call with the
*best earlier call* of its group (same ``prompt_cache_key``, else same session,
else the whole file): the one sharing the longest prefix. It reports:

* ``ttl_expired`` / ``beyond_lookback`` / ``below_min_cacheable`` /
  ``no_cache_breakpoint``: the shared prefix existed but the cache rules kept it
  from being read; lost = the tokens of that prefix not read;
* a divergence cause, when the call does not extend the earlier one:
  ``model_changed``, ``params_changed``, ``tools_added``, ``tools_removed``,
  ``tools_reordered``, ``tools_reserialized``, ``tool_changed``,
  ``system_changed`` (flags timestamp / date / time / UUID / epoch / hex id),
  ``history_truncated``, ``history_edited``; lost = tokens of this call's blocks
  after the divergence whose content the earlier call had cached (the changed
  block itself too, for an in-place change of tools or system).

Lost dollars = cost of those tokens as billed (cache write, or input when the
call writes nothing) minus their cost as cache reads, with
:func:`~ctxbudget.prices.cost_of`. Token counts come from
:func:`ctxbudget.tokens.count_tokens` (estimates for models without a public
tokenizer). Provider diagnostics (Anthropic ``diagnostics.cache_miss_reason``,
OpenAI ``prompt_cache_diagnostics``) are ground truth: they are reported with the
finding and win when they disagree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ..errors import PricingError
from ..prices import PriceBook, cost_of
from ..usage import Usage
from .requests import (
    LOOKBACK_BLOCKS,
    Block,
    Request,
    load_requests,
    min_cacheable,
    normalize_request,
    requests_from_store,
)

__all__ = [
    "AuditReport",
    "Block",
    "Finding",
    "Request",
    "audit_requests",
    "load_requests",
    "normalize_request",
    "requests_from_store",
]


# --------------------------------------------------------------------------- findings


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One cause of a cache miss on one call."""

    index: int
    where: str
    ts: datetime
    group: str
    model: str
    cause: str
    component: str
    block: str | None
    """Label of the first differing block of this call (``None`` for cache-rule causes)."""
    detail: str
    lost_tokens: int
    """Tokens that would have been read from cache without this cause."""
    lost_usd: Decimal | None
    """Their cost as billed minus their cost as cache reads (``None``: model unpriced)."""
    compared_to: int | None
    """Index of the earlier call compared with."""
    diff: Mapping[str, Any] | None = None
    flags: tuple[str, ...] = ()
    provider_reason: str | None = None
    observed_cache_read_tokens: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "where": self.where, "ts": self.ts.isoformat(),
            "group": self.group, "model": self.model, "cause": self.cause,
            "component": self.component, "block": self.block, "detail": self.detail,
            "lost_tokens": self.lost_tokens,
            "lost_usd": None if self.lost_usd is None else str(self.lost_usd),
            "compared_to": self.compared_to, "diff": dict(self.diff) if self.diff else None,
            "flags": list(self.flags), "provider_reason": self.provider_reason,
            "observed_cache_read_tokens": self.observed_cache_read_tokens,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditReport:
    requests: int
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()

    def by_cause(self) -> dict[str, dict[str, Any]]:
        """Per cause: findings, lost tokens, lost USD (``None`` if any was unpriced)."""
        out: dict[str, dict[str, Any]] = {}
        for f in self.findings:
            d = out.setdefault(f.cause, {"findings": 0, "lost_tokens": 0,
                                         "lost_usd": Decimal(0)})
            d["findings"] += 1
            d["lost_tokens"] += f.lost_tokens
            d["lost_usd"] = None if d["lost_usd"] is None or f.lost_usd is None \
                else d["lost_usd"] + f.lost_usd
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "findings": [f.as_dict() for f in self.findings],
            "by_cause": {k: {**v, "lost_usd": None if v["lost_usd"] is None
                             else str(v["lost_usd"])} for k, v in self.by_cause().items()},
            "lost_tokens": sum(f.lost_tokens for f in self.findings),
            "notes": list(self.notes),
        }


_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("timestamp", re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?")),
    ("uuid", re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                        r"[0-9a-fA-F]{12}")),
    ("date", re.compile(r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b(Jan|Feb|Mar|Apr|"
                        r"May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* \d{1,2},? \d{4}\b")),
    ("time", re.compile(r"\b\d{1,2}:\d{2}(:\d{2})?\b")),
    ("epoch", re.compile(r"\b1\d{9}(\d{3})?\b")),
    ("hex_id", re.compile(r"\b[0-9a-f]{16,}\b")),
)


def _redact(s: str) -> str:
    return re.sub(r"[A-Za-z]", "x", re.sub(r"\d", "9", s))


def byte_diff(a: str, b: str, *, show_bytes: bool = False, context: int = 24) -> dict[str, Any]:
    """First differing byte of ``a`` (earlier) and ``b`` (this call), with an excerpt.

    Excerpts are redacted (letters -> x, digits -> 9) unless ``show_bytes``; the
    flags name volatile patterns found in the differing region of ``b``.
    """
    ab, bb = a.encode(), b.encode()
    n = min(len(ab), len(bb))
    i = 0
    while i < n and ab[i] == bb[i]:
        i += 1
    j = 0
    while j < n - i and ab[len(ab) - 1 - j] == bb[len(bb) - 1 - j]:
        j += 1
    lo = max(0, i - context)
    before = ab[lo:max(i, len(ab) - j) + context][: 3 * context + 40].decode(errors="replace")
    after = bb[lo:max(i, len(bb) - j) + context][: 3 * context + 40].decode(errors="replace")
    region_b = bb[max(0, i - 20):len(bb) - j + 20].decode(errors="replace")
    region_a = ab[max(0, i - 20):len(ab) - j + 20].decode(errors="replace")
    flags = [name for name, pat in _PATTERNS if pat.search(region_b) and pat.search(region_a)]
    if "timestamp" in flags:
        flags = [f for f in flags if f not in ("date", "time")]
    return {"offset": i, "earlier": before if show_bytes else _redact(before),
            "this": after if show_bytes else _redact(after), "flags": flags,
            "redacted": not show_bytes}


def _tok(r: Request, lo: int, hi: int) -> int:
    return sum(b.tokens for b in r.blocks[lo:hi])


def _classify(cur: Request, prev: Request, d: int, show_bytes: bool
              ) -> tuple[str, str, str, dict[str, Any] | None, tuple[str, ...]]:
    """(cause, component, detail, diff, flags) for a divergence at block ``d``."""
    bc = cur.blocks[d] if d < len(cur.blocks) else None
    bp = prev.blocks[d] if d < len(prev.blocks) else None
    comp = (bc or bp).component if (bc or bp) else "messages"  # type: ignore[union-attr]
    if d == 0 and cur.model != prev.model:
        return "model_changed", "params", f"model {prev.model} -> {cur.model}", None, ()
    if comp == "prefix":  # fingerprints only: no text to tell what changed
        return ("prefix_changed", "prefix",
                f"block {d} of the prefix differs (fingerprints only: the store keeps no text "
                "to classify it)", None, ())
    if comp == "params" and bc and bp:
        a, b = json.loads(bp.canon), json.loads(bc.canon)
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if "model" in keys:
            return ("model_changed", "params", f"model {a.get('model')} -> {b.get('model')}",
                    None, ())
        return "params_changed", "params", f"changed: {', '.join(keys)}", None, ()
    if comp == "tools" or (bc and bc.component == "tools") or (bp and bp.component == "tools"):
        ct = [b for b in cur.blocks if b.component == "tools"]
        pt = [b for b in prev.blocks if b.component == "tools"]
        cn, pn = [b.name or b.canon for b in ct], [b.name or b.canon for b in pt]
        added = [n for n in cn if n not in pn]
        removed = [n for n in pn if n not in cn]
        if added and not removed:
            return "tools_added", "tools", f"added: {', '.join(map(str, added))}", None, ()
        if removed and not added:
            return "tools_removed", "tools", f"removed: {', '.join(map(str, removed))}", None, ()
        if sorted(b.canon for b in ct) == sorted(b.canon for b in pt):
            if [b.canon for b in ct] != [b.canon for b in pt]:
                return ("tools_reordered", "tools",
                        f"order {', '.join(map(str, pn))} -> {', '.join(map(str, cn))}", None, ())
            if bc and bp:
                return ("tools_reserialized", "tools",
                        f"tool {bc.name}: same canonical JSON, different bytes (key order)",
                        byte_diff(bp.raw, bc.raw, show_bytes=show_bytes), ())
        if bc and bp and bc.component == "tools" and bp.component == "tools":
            return ("tool_changed", "tools", f"tool {bc.name} definition changed",
                    byte_diff(bp.raw, bc.raw, show_bytes=show_bytes), ())
        return "tools_changed", "tools", f"tools {pn} -> {cn}", None, ()
    if (bc and bc.component == "system") or (bp and bp.component == "system"):
        if not (bc and bp and bc.component == bp.component):
            what = "added" if bc and bc.component == "system" else "removed"
            return "system_changed", "system", f"system block {what}", None, ()
        diff = byte_diff(bp.raw, bc.raw, show_bytes=show_bytes)
        flags = tuple(diff["flags"])
        what = f" ({', '.join(flags)} interpolated?)" if flags else ""
        return "system_changed", "system", f"{bc.label} changed{what}", diff, flags
    # messages (or a component boundary moved)
    cm = [b.canon for b in cur.blocks if b.component == "messages"]
    pm = [b.canon for b in prev.blocks if b.component == "messages"]
    if cm and pm and cm[0] in pm[1:]:
        k = pm.index(cm[0])
        return ("history_truncated", "messages",
                f"history starts at earlier block {k} of the conversation ({k} blocks dropped "
                "from the front)", None, ())
    label = bc.label if bc else (bp.label if bp else "?")
    detail = f"{label} differs from the earlier call"
    if bc and bp:
        return "history_edited", "messages", detail, byte_diff(
            bp.raw, bc.raw, show_bytes=show_bytes), ()
    return "history_edited", "messages", detail, None, ()


_IN_PLACE = {"system_changed", "tools_reserialized", "tool_changed", "model_changed",
             "params_changed", "tools_reordered", "history_edited"}


def audit_requests(requests: Sequence[Request], *, book: PriceBook | None = None,
                   show_bytes: bool = False, notes: Iterable[str] = ()) -> AuditReport:
    """Audit ``requests`` (any order; replayed by time). See the module docstring."""
    book = book or PriceBook()
    reqs = sorted(requests, key=lambda r: (r.ts, r.index))
    by_group: dict[str, list[Request]] = {}
    findings: list[Finding] = []
    # per group: chain hash -> last touch time, for entries actually written, and for
    # entries that would have been written without the min-length / no-breakpoint rules
    written: dict[str, dict[str, datetime]] = {}
    shadow: dict[str, dict[str, tuple[datetime, str]]] = {}
    latest: dict[str, dict[str, Request]] = {}  # chain hash -> latest call with that prefix
    for r in reqs:
        earlier = by_group.setdefault(r.group, [])
        cache = written.setdefault(r.group, {})
        sh = shadow.setdefault(r.group, {})
        min_tok = min_cacheable(r.model, r.provider)
        ttl = timedelta(seconds=r.ttl_s)
        cum = [0]
        for b in r.blocks:
            cum.append(cum[-1] + b.tokens)
        n = len(r.blocks)
        # what the cache rules allow (P2), without lookback (P1), without TTL (P0)
        present = [q for q in range(n) if r.chain[q] in cache]
        fresh = [q for q in present if r.ts - cache[r.chain[q]] <= ttl]
        p0 = max(present, default=-1) + 1
        p1 = max(fresh, default=-1) + 1
        if r.provider == "anthropic":
            p2 = 0
            for bpos in r.breakpoints:
                for q in fresh:
                    if q <= bpos and _api_blocks(r, q, bpos) <= LOOKBACK_BLOCKS:
                        p2 = max(p2, q + 1)
        else:
            p2 = p1
        shadow_hits = [q for q in range(n) if r.chain[q] in sh]
        ps = max(shadow_hits, default=-1) + 1
        idx = latest.setdefault(r.group, {})
        best: Request | None = earlier[-1] if earlier else None
        d = 0
        for q in range(n - 1, -1, -1):
            hit = idx.get(r.chain[q])
            if hit is not None:
                best, d = hit, q + 1
                break
        observed = r.usage.cache_read_tokens if r.usage else None
        base = {"index": r.index, "where": r.where, "ts": r.ts, "group": r.group,
                "model": r.model, "observed_cache_read_tokens": observed,
                "provider_reason": r.provider_reason}

        uncached = [r.usage.prompt_tokens - r.usage.cache_read_tokens if r.usage else 0]

        def add(cause: str, component: str, block: str | None, detail: str, lost: int,
                cmp: int | None, diff: Mapping[str, Any] | None = None,
                flags: tuple[str, ...] = (), rq: Request = r,
                b0: dict[str, Any] = base, left: list[int] = uncached) -> None:
            if rq.usage is not None:  # the provider's usage is ground truth: cap the loss
                lost = min(lost, left[0])
                left[0] -= max(lost, 0)
            if lost <= 0:
                return
            findings.append(Finding(cause=cause, component=component, block=block,
                                    detail=detail, lost_tokens=lost,
                                    lost_usd=_lost_usd(book, rq, lost), compared_to=cmp,
                                    diff=diff, flags=flags, **b0))

        cmp_idx = best.index if best else None
        if ps > p0 and ps > p1:
            why, kind = sh[r.chain[ps - 1]][1], "below_min_cacheable"
            if why == "no_breakpoint":
                kind = "no_cache_breakpoint"
            detail = (f"shared prefix of {cum[ps]} tokens is below the minimum cacheable "
                      f"length {min_tok} for {r.model}" if kind == "below_min_cacheable" else
                      "the earlier call set no cache breakpoint (cache_control), so nothing "
                      "was written")
            add(kind, "prefix", None, detail, cum[ps] - cum[max(p0, p1)], cmp_idx)
        if p0 > p1:
            gap = (r.ts - cache[r.chain[p0 - 1]]).total_seconds()
            add("ttl_expired", "prefix", None,
                f"prefix last used {gap:.0f} s earlier, TTL {r.ttl_s:.0f} s", cum[p0] - cum[p1],
                cmp_idx)
        if p1 > p2:
            add("beyond_lookback", "prefix", None,
                f"cached prefix ends {_api_blocks(r, p1 - 1, max(r.breakpoints, default=n-1))} "
                f"blocks before the nearest breakpoint (lookback {LOOKBACK_BLOCKS})",
                cum[p1] - cum[p2], cmp_idx)
        alive = best is not None and r.ts - best.ts <= ttl
        if best is not None and alive and d < len(best.blocks) and d < n:
            # (past the TTL the earlier prefix was gone anyway: nothing lost to the change)
            cause, comp, detail, diff, flags = _classify(r, best, d, show_bytes)
            cached_len = _cached_len(best)
            prev_canon = {b.canon for b in best.blocks[d:cached_len]}
            lost = 0
            for q in range(d, n):
                b = r.blocks[q]
                if b.canon in prev_canon or (q == d and cause in _IN_PLACE and d < cached_len
                                             and b.component == best.blocks[d].component):
                    lost += b.tokens
            cause = _reconcile(cause, r.provider_reason)
            add(cause, comp, r.blocks[d].label, detail, lost, best.index, diff, flags)
        elif r.provider_reason and r.provider_missed_tokens and r.provider_reason not in (
                "previous_message_not_found", "unavailable"):
            add(r.provider_reason, "provider", None, "reported by the provider's diagnostics",
                r.provider_missed_tokens, cmp_idx)
        # update the cache state with this call's writes and refreshes
        for q in fresh:
            if q < p2:
                cache[r.chain[q]] = r.ts
        for bpos in r.breakpoints:
            if cum[bpos + 1] >= min_tok:
                cache[r.chain[bpos]] = r.ts
            else:
                sh[r.chain[bpos]] = (r.ts, "below_min")
        if not r.breakpoints and n:
            sh[r.chain[n - 1]] = (r.ts, "no_breakpoint")
        for q in range(n):
            idx[r.chain[q]] = r
        earlier.append(r)
    return AuditReport(requests=len(reqs), findings=tuple(findings), notes=tuple(notes))


def _api_blocks(r: Request, q: int, bpos: int) -> int:
    """Content blocks from the end of block ``q`` to breakpoint ``bpos`` (params excluded)."""
    return sum(1 for b in r.blocks[q + 1:bpos + 1] if b.component != "params")


def _cached_len(r: Request) -> int:
    """Blocks of ``r`` its own writes put in the cache (its last breakpoint + 1)."""
    return max(r.breakpoints, default=-1) + 1


_PROVIDER_FAMILY = {
    "model_changed": ("model_changed", "params_changed"),
    "system_changed": ("system_changed",),
    "tools_changed": ("tools_added", "tools_removed", "tools_reordered", "tools_reserialized",
                      "tool_changed", "tools_changed"),
    "messages_changed": ("history_truncated", "history_edited"),
}


def _reconcile(cause: str, provider_reason: str | None) -> str:
    """Our cause, unless the provider's diagnostic names another family (it wins)."""
    if not provider_reason or provider_reason not in _PROVIDER_FAMILY:
        return cause
    return cause if cause in _PROVIDER_FAMILY[provider_reason] else provider_reason


def _lost_usd(book: PriceBook, r: Request, lost: int) -> Decimal | None:
    try:
        price = book.resolve(r.model, r.provider, r.ts)
    except PricingError:
        return None
    prompt = r.usage.prompt_tokens if r.usage else r.prompt_tokens
    flat = replace(price, base=price.rates_for(prompt), tiers=())
    long_ttl = r.ttl_s > 300
    if r.breakpoints:
        billed = Usage(cache_write_1h_tokens=lost) if long_ttl else Usage(
            cache_write_5m_tokens=lost)
    else:
        billed = Usage(input_tokens=lost)
    return (cost_of(billed, flat, requests=0).total_usd
            - cost_of(Usage(cache_read_tokens=lost), flat, requests=0).total_usd)
