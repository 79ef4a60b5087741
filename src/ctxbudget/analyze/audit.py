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

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..errors import InputFormatError, PricingError
from ..prices import PriceBook, cost_of
from ..usage import Usage

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

LOOKBACK_BLOCKS = 20
"""Anthropic looks for a cached prefix at most this many blocks before a breakpoint."""

_PARAM_KEYS = {
    "anthropic": ("model", "tool_choice", "thinking", "output_format", "output_config"),
    "openai-chat": ("model", "tool_choice", "response_format", "reasoning_effort",
                    "prompt_cache_key", "service_tier", "parallel_tool_calls"),
    "openai-responses": ("model", "tool_choice", "text", "reasoning", "prompt_cache_key",
                         "service_tier", "parallel_tool_calls"),
}


def _min_cacheable(model: str, provider: str) -> int:
    try:
        from ..pack import min_cacheable_tokens
    except ImportError:  # the packer is optional for the audit
        return 1024
    return int(min_cacheable_tokens(model, "openai" if provider == "openai" else "anthropic"))


def count_text_tokens(text: str, model: str, provider: str | None = None) -> int:
    """Tokens of ``text`` for ``model`` (:func:`ctxbudget.tokens.count_tokens`; len/4 fallback)."""
    try:
        from ..tokens import count_tokens
    except ImportError:  # pragma: no cover - tokens ships with the package
        return (len(text) + 3) // 4
    try:
        return int(count_tokens(text, model, provider=provider).tokens)
    except Exception:
        return (len(text) + 3) // 4


# --------------------------------------------------------------------------- normalization


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    """One labeled block of a request prefix."""

    label: str
    """``params``, ``tools[2]``, ``system[0]``, ``messages[3].content[1]``."""
    component: str
    """``params``, ``tools``, ``system`` or ``messages``."""
    raw: str
    """The bytes that reach the prompt: a tool's JSON in the key order it was sent; the
    canonical JSON for every other block (``cache_control`` removed)."""
    canon: str
    """The block's canonical JSON (sorted keys)."""
    tokens: int
    """Tokens of the block's text (its text parts, else its canonical JSON) by
    :func:`count_text_tokens`; when the response reported usage, scaled so the blocks
    add up to the provider's prompt tokens (framing overhead spread proportionally)."""
    breakpoint: bool = False
    """True when the block carries a cache breakpoint (``cache_control``)."""
    name: str | None = None
    """Tool name for tools, role for messages."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One logged call, normalized."""

    index: int
    where: str
    """``file:line`` or ``file#interaction``."""
    ts: datetime
    api: str
    """``anthropic``, ``openai-chat`` or ``openai-responses``."""
    provider: str
    model: str
    group: str
    blocks: tuple[Block, ...]
    chain: tuple[str, ...]
    """Chained hash of each prefix (``chain[k]`` covers blocks 0..k)."""
    breakpoints: tuple[int, ...]
    """Block indexes where the call writes the cache; every block under OpenAI automatic
    caching; empty when an Anthropic call has no ``cache_control``."""
    ttl_s: float
    usage: Usage | None = None
    request_id: str | None = None
    provider_reason: str | None = None
    provider_missed_tokens: int | None = None

    @property
    def prompt_tokens(self) -> int:
        """Counted tokens of all blocks (the params block counts 0)."""
        return sum(b.tokens for b in self.blocks)


def _strip_cc(obj: Any) -> tuple[Any, bool]:
    if isinstance(obj, Mapping):
        bp = "cache_control" in obj or "prompt_cache_breakpoint" in obj
        return {k: v for k, v in obj.items()
                if k not in ("cache_control", "prompt_cache_breakpoint")}, bp
    return obj, False


def _text_of(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, Mapping):
        for k in ("text", "content", "input_text", "output_text"):
            v = obj.get(k)
            if isinstance(v, str):
                return v
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)


def _ttl_of(body: Mapping[str, Any]) -> float:
    def parse(v: Any) -> float | None:
        if isinstance(v, str):
            m = re.fullmatch(r"(\d+)\s*([smhd])", v.strip())
            if m:
                return int(m[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]]
        return None

    cc = body.get("cache_control")
    if isinstance(cc, Mapping) and parse(cc.get("ttl")):
        return parse(cc.get("ttl")) or 300.0
    opts = body.get("prompt_cache_options")
    if isinstance(opts, Mapping) and parse(opts.get("ttl")):
        return parse(opts.get("ttl")) or 300.0
    if parse(body.get("prompt_cache_retention")):
        return parse(body.get("prompt_cache_retention")) or 300.0
    text = json.dumps(body.get("system", ""), ensure_ascii=False) + json.dumps(
        body.get("tools", []), ensure_ascii=False) + json.dumps(body.get("messages", []))
    return 3600.0 if '"ttl": "1h"' in text or '"ttl":"1h"' in text else 300.0


def detect_api(body: Mapping[str, Any], uri: str = "", provider: str | None = None) -> str:
    """``anthropic``, ``openai-chat`` or ``openai-responses`` from the URI or body shape."""
    if "/responses" in uri or "input" in body or "instructions" in body:
        return "openai-responses"
    if "anthropic" in uri or provider == "anthropic":
        return "anthropic"
    if "openai" in uri or provider == "openai" or "/chat/completions" in uri:
        return "openai-chat"
    model = str(body.get("model", ""))
    if "system" in body or "claude" in model or any(
            isinstance(t, Mapping) and "input_schema" in t for t in body.get("tools") or []):
        return "anthropic"
    return "openai-chat"


def _mark_cache_points(out: list[tuple[str, str, Any, bool, str | None]]) -> None:
    """Bedrock Converse ``{"cachePoint": ...}`` entries: a breakpoint on the block before."""
    i = 0
    while i < len(out):
        value = out[i][2]
        part = value.get("part") if isinstance(value, Mapping) and "part" in value else value
        if isinstance(part, Mapping) and set(part) == {"cachePoint"}:
            del out[i]
            if i > 0:
                pl, pc, pv, _, pn = out[i - 1]
                out[i - 1] = (pl, pc, pv, True, pn)
            continue
        i += 1


def normalize_request(body: Mapping[str, Any], *, api: str | None = None,
                      uri: str = "") -> tuple[str, list[tuple[str, str, Any, bool, str | None]]]:
    """``(api, [(label, component, value, breakpoint, name)])`` for a request body.

    Bedrock Converse bodies (``toolConfig``, ``cachePoint`` markers) are read as
    Anthropic-shaped: a ``cachePoint`` entry marks the block before it.
    """
    if not isinstance(body, Mapping):
        raise InputFormatError("request body is not a JSON object")
    api = api or detect_api(body, uri)
    out: list[tuple[str, str, Any, bool, str | None]] = []
    params = {k: body[k] for k in _PARAM_KEYS[api] if k in body}
    out.append(("params", "params", params, False, None))
    tools = body.get("tools")
    if tools is None and isinstance(body.get("toolConfig"), Mapping):  # Bedrock Converse
        tools = body["toolConfig"].get("tools")
    for i, tool in enumerate(tools or []):
        t, bp = _strip_cc(tool)
        name = None
        if isinstance(t, Mapping):
            fn = t.get("function")
            name = str(t.get("name") or (fn.get("name") if isinstance(fn, Mapping) else "") or "")
        out.append((f"tools[{i}]", "tools", t, bp, name or None))
    if api == "anthropic":
        system = body.get("system")
        parts = [system] if isinstance(system, str) else list(system or [])
        for j, part in enumerate(parts):
            p, bp = _strip_cc(part)
            out.append((f"system[{j}]", "system", p, bp, None))
    if api == "openai-responses" and body.get("instructions"):
        out.append(("system[0]", "system", body["instructions"], False, None))
    if api == "openai-responses":
        items = body.get("input")
        msgs = [{"role": "user", "content": items}] if isinstance(items, str) else list(items or [])
    else:
        msgs = list(body.get("messages") or [])
    for k, msg in enumerate(msgs):
        if not isinstance(msg, Mapping):
            raise InputFormatError(f"messages[{k}] is not an object")
        role = msg.get("role")
        comp = "system" if role in ("system", "developer") else "messages"
        if "content" not in msg or role is None:  # Responses items: function_call, reasoning...
            m, bp = _strip_cc(msg)
            out.append((f"messages[{k}]", comp, m, bp, str(msg.get("type") or role or "")))
            continue
        content = msg["content"]
        parts = [content] if not isinstance(content, list) else content
        extra = {kk: v for kk, v in msg.items() if kk not in ("content", "role")}
        for m_i, part in enumerate(parts):
            p, bp = _strip_cc(part)
            value = {"role": role, "part": p, **({"extra": extra} if extra and m_i == 0 else {})}
            out.append((f"messages[{k}].content[{m_i}]", comp, value, bp, str(role)))
    _mark_cache_points(out)
    return api, out


def _chain(blocks: Sequence[Block], salt: str) -> tuple[str, ...]:
    h = hashlib.blake2b(salt.encode(), digest_size=12)
    out = []
    for b in blocks:
        h.update(b"\x00" + b.raw.encode())
        out.append(h.copy().hexdigest())
    return tuple(out)


def build_request(body: Mapping[str, Any], *, index: int, where: str, ts: datetime,
                  response: Mapping[str, Any] | None = None, uri: str = "",
                  session: str | None = None, provider_hint: str | None = None,
                  ttl_s: float | None = None) -> Request:
    """Normalize ``body`` (and read usage / diagnostics from ``response``) into a Request."""
    api, parts = normalize_request(body, api=None if not provider_hint else
                                   detect_api(body, uri, provider_hint), uri=uri)
    provider = "anthropic" if api == "anthropic" else "openai"
    model = str(body.get("model") or body.get("modelId") or (response or {}).get("model") or "")
    bedrock = "bedrock" in uri or provider_hint == "bedrock"
    if bedrock and not model and "/model/" in uri:
        from urllib.parse import unquote

        model = unquote(uri.split("/model/", 1)[1].split("/", 1)[0])
    model = model or "unknown"
    blocks: list[Block] = []
    for label, comp, value, bp, name in parts:
        canon = json.dumps(value, ensure_ascii=False, sort_keys=True)
        # key order is rendered into the prompt only for tool definitions
        raw = json.dumps(value, ensure_ascii=False) if comp == "tools" else canon
        toks = 0 if comp == "params" else count_text_tokens(
            _text_of(value.get("part") if isinstance(value, Mapping) and "part" in value
                     else value), model, provider)
        blocks.append(Block(label=label, component=comp, raw=raw, canon=canon, tokens=toks,
                            breakpoint=bp, name=name))
    usage = reason = missed = rid = None
    if response:
        usage, reason, missed, rid = _read_response(response, "bedrock" if bedrock else provider)
    est = sum(b.tokens for b in blocks)
    if usage is not None and usage.prompt_tokens > 0 and est > 0:
        # scale the tokenizer's counts to the provider-reported prompt (framing included)
        acc, done = 0, 0
        for i, b in enumerate(blocks):
            acc += b.tokens
            upto = round(acc * usage.prompt_tokens / est)
            blocks[i] = replace(b, tokens=upto - done)
            done = upto
    explicit = [i for i, b in enumerate(blocks) if b.breakpoint]
    if api == "anthropic":
        bps = explicit + ([len(blocks) - 1] if body.get("cache_control") else [])
    elif explicit and isinstance(body.get("prompt_cache_options"), Mapping) and \
            body["prompt_cache_options"].get("mode") == "explicit":
        bps = explicit
    else:  # OpenAI automatic caching: any prefix can be read
        bps = list(range(len(blocks)))
    cache_key = body.get("prompt_cache_key")
    group = f"key:{cache_key}" if cache_key else (f"session:{session}" if session else "all")
    return Request(index=index, where=where, ts=ts, api=api, provider=provider, model=model,
                   group=group, blocks=tuple(blocks), chain=_chain(blocks, group),
                   breakpoints=tuple(sorted(set(bps))),
                   ttl_s=ttl_s if ttl_s is not None else _ttl_of(body), usage=usage,
                   request_id=rid, provider_reason=reason, provider_missed_tokens=missed)


def _read_response(resp: Mapping[str, Any], provider: str
                   ) -> tuple[Usage | None, str | None, int | None, str | None]:
    from ..adapters import adapt_usage

    usage = None
    raw = resp.get("usage")
    if isinstance(raw, Mapping):
        try:
            usage = adapt_usage(provider, raw).usage
        except Exception:
            usage = None
    reason: str | None = None
    missed: int | None = None
    diag = resp.get("diagnostics")
    if isinstance(diag, Mapping) and isinstance(diag.get("cache_miss_reason"), Mapping):
        cmr = diag["cache_miss_reason"]
        reason = str(cmr.get("type")) if cmr.get("type") else None
        v = cmr.get("cache_missed_input_tokens")
        missed = int(v) if isinstance(v, int) else None
    pcd = resp.get("prompt_cache_diagnostics")
    if isinstance(pcd, Mapping):
        found = _first_key(pcd, ("reason", "type"))
        reason = reason or (str(found) if found else None)
    rid = resp.get("id")
    return usage, reason, missed, str(rid) if rid else None


def _first_key(obj: Any, keys: Sequence[str]) -> Any:
    if isinstance(obj, Mapping):
        for k in keys:
            if isinstance(obj.get(k), str):
                return obj[k]
        for v in obj.values():
            r = _first_key(v, keys)
            if r is not None:
                return r
    return None


# --------------------------------------------------------------------------- loading


def _parse_ts(v: Any, where: str) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    if isinstance(v, int | float) and not isinstance(v, bool):
        return datetime.fromtimestamp(v / 1000 if v > 1e11 else v, tz=UTC)
    if isinstance(v, str):
        try:
            d = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise InputFormatError(f"{where}: timestamp {v!r} is not ISO 8601") from None
        return d if d.tzinfo else d.replace(tzinfo=UTC)
    raise InputFormatError(f"{where}: timestamp {v!r} is not a date")


def load_requests(path: Path | str, *, ttl_s: float | None = None
                  ) -> tuple[list[Request], list[str]]:
    """Read logged calls: JSONL of ``{timestamp, request, response}`` or an HTTP cassette
    (YAML with ``interactions``). Returns the requests and notes on what was skipped.

    Cassettes carry no timestamps: interactions are taken as 1 second apart (noted).
    """
    p = Path(path)
    if not p.exists():
        raise InputFormatError(f"{p}: file not found")
    notes: list[str] = []
    out: list[Request] = []
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise InputFormatError(f"{p}: not valid YAML ({exc})") from None
        inter = doc.get("interactions") if isinstance(doc, Mapping) else None
        if not isinstance(inter, list):
            raise InputFormatError(f"{p}: expected a cassette with an 'interactions' list")
        t0 = datetime(2000, 1, 1, tzinfo=UTC)
        notes.append(f"{p.name}: no timestamps in a cassette; calls taken as 1 s apart")
        for i, it in enumerate(inter):
            where = f"{p}#{i}"
            req = it.get("request") or {}
            body = req.get("parsed_body")
            if body is None and isinstance(req.get("body"), str):
                try:
                    body = json.loads(req["body"])
                except json.JSONDecodeError:
                    body = None
            if not isinstance(body, Mapping) or not ({"messages", "input"} & set(body)):
                notes.append(f"{where}: skipped (no Messages / Chat / Responses body)")
                continue
            resp = (it.get("response") or {}).get("parsed_body")
            out.append(build_request(body, index=len(out), where=where,
                                     ts=t0 + timedelta(seconds=i), uri=str(req.get("uri", "")),
                                     response=resp if isinstance(resp, Mapping) else None,
                                     ttl_s=ttl_s))
        return out, notes
    with p.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{p}:{n}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFormatError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, Mapping) or not isinstance(rec.get("request"), Mapping):
                raise InputFormatError(f"{where}: expected an object with a 'request' body")
            ts = _parse_ts(rec.get("timestamp", rec.get("ts")), where)
            if ts is None:
                raise InputFormatError(f"{where}: missing 'timestamp'")
            resp = rec.get("response")
            try:
                out.append(build_request(
                    rec["request"], index=len(out), where=where, ts=ts,
                    response=resp if isinstance(resp, Mapping) else None,
                    uri=str(rec.get("url") or rec.get("uri") or ""),
                    session=rec.get("session_id"), provider_hint=rec.get("provider"),
                    ttl_s=ttl_s))
            except InputFormatError as exc:
                raise InputFormatError(f"{where}: {exc}") from None
    return out, notes


def requests_from_store(path: Path | str, *, ttl_s: float | None = None) -> list[Request]:
    """Calls of the store that carry a ``prefix_fingerprint``, as :class:`Request` objects.

    Without text, blocks are labeled ``block[k]`` (component ``prefix``); tokens per
    block come from ``meta.block_tokens`` or an even split of the prompt; breakpoints
    from ``meta.breakpoints``, else every block (OpenAI) or the last block (Anthropic).
    """
    from ..store import open_store

    with open_store(path, read_only=True) as st:
        rows = st.con.execute(
            "SELECT ts, provider, model, session_id, prefix_fingerprint, input_tokens, "
            "cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, output_tokens, "
            "meta, call_key FROM calls WHERE prefix_fingerprint IS NOT NULL "
            "ORDER BY ts, call_key").fetchall()
    out: list[Request] = []
    for i, (ts, prov, model, sess, fp_json, inp, cr, w5, w1, o, meta_json, key) in \
            enumerate(rows):
        where = f"{path}: call {key}"
        try:
            fp = [str(h) for h in json.loads(fp_json)]
            meta = json.loads(meta_json) if meta_json else {}
        except json.JSONDecodeError:
            raise InputFormatError(f"{where}: prefix_fingerprint / meta is not JSON") from None
        usage = Usage(input_tokens=inp or 0, cache_read_tokens=cr or 0,
                      cache_write_5m_tokens=w5 or 0, cache_write_1h_tokens=w1 or 0,
                      output_tokens=o or 0)
        n = len(fp)
        bt = meta.get("block_tokens") if isinstance(meta, Mapping) else None
        if not (isinstance(bt, list) and len(bt) == n):
            p = usage.prompt_tokens
            bt = [p // n + (1 if k < p % n else 0) for k in range(n)] if n else []
        provider = "openai" if prov == "openai" else "anthropic"
        mbp = meta.get("breakpoints") if isinstance(meta, Mapping) else None
        if isinstance(mbp, list) and all(isinstance(x, int) for x in mbp):
            bps = tuple(x for x in mbp if 0 <= x < n)
        else:
            bps = tuple(range(n)) if provider == "openai" else ((n - 1,) if n else ())
        blocks = tuple(Block(label=f"block[{k}]", component="prefix", raw=h, canon=h,
                             tokens=int(bt[k]), breakpoint=k in bps) for k, h in enumerate(fp))
        group = f"session:{sess}" if sess else "all"
        out.append(Request(index=i, where=where, ts=ts, api=provider, provider=provider,
                           model=str(model), group=group, blocks=blocks,
                           chain=_chain(blocks, f"{group}|{model}"), breakpoints=bps,
                           ttl_s=ttl_s if ttl_s is not None else 300.0, usage=usage))
    return out


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
        min_tok = _min_cacheable(r.model, r.provider)
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
