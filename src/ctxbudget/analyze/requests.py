"""Logged request bodies → ordered, labeled blocks (the audit's and cache simulator's input).

Anthropic Messages, OpenAI Chat Completions and Responses bodies are normalized
into a params block, ``tools[i]``, ``system[j]`` and ``messages[k].content[m]``
blocks, each with its bytes as sent and a canonical form, and a hash chained over
every block before it (equal ids = equal prefixes). Loaders read JSONL logs of
``{timestamp, request, response}``, HTTP cassettes, and the store's prefix
fingerprints. See :mod:`ctxbudget.analyze.audit` for what is done with them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..cache_rules import ANTHROPIC_LOOKBACK_BLOCKS, min_cacheable_tokens
from ..errors import InputFormatError
from ..usage import Usage

__all__ = [
    "LOOKBACK_BLOCKS",
    "STORE_REQUEST_COLUMNS",
    "Block",
    "Request",
    "build_request",
    "count_text_tokens",
    "detect_api",
    "load_requests",
    "min_cacheable",
    "normalize_request",
    "requests_from_rows",
    "requests_from_store",
]


LOOKBACK_BLOCKS = ANTHROPIC_LOOKBACK_BLOCKS

_PARAM_KEYS = {
    "anthropic": ("model", "tool_choice", "thinking", "output_format", "output_config"),
    "openai-chat": ("model", "tool_choice", "response_format", "reasoning_effort",
                    "prompt_cache_key", "service_tier", "parallel_tool_calls"),
    "openai-responses": ("model", "tool_choice", "text", "reasoning", "prompt_cache_key",
                         "service_tier", "parallel_tool_calls"),
}


def min_cacheable(model: str, provider: str) -> int:
    """Minimum cacheable prefix for a logged request (:mod:`ctxbudget.cache_rules`)."""
    return min_cacheable_tokens("openai" if provider == "openai" else "anthropic", model)


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


def requests_from_store(path: Path | str, *, ttl_s: float | None = None,
                        since: datetime | None = None,
                        until: datetime | None = None) -> list[Request]:
    """Calls of the store that carry a ``prefix_fingerprint``, as :class:`Request` objects
    (those with ``since <= ts < until`` when given).

    Without text, blocks are labeled ``block[k]`` (component ``prefix``); tokens per
    block come from ``meta.block_tokens`` or an even split of the prompt; breakpoints
    from ``meta.breakpoints``, else every block (OpenAI) or the last block (Anthropic).
    """
    from ..store import open_store
    from .sql import Filters

    where = Filters(since=since, until=until).where()
    with open_store(path, read_only=True) as st:
        rows = st.con.execute(
            "SELECT ts, provider, model, session_id, prefix_fingerprint, input_tokens, "
            "cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, output_tokens, "
            f"meta, call_key FROM calls WHERE prefix_fingerprint IS NOT NULL AND {where} "
            "ORDER BY ts, call_key").fetchall()
    return requests_from_rows(rows, str(path), ttl_s=ttl_s)


#: The columns :func:`requests_from_rows` reads, in order.
STORE_REQUEST_COLUMNS = ("ts", "provider", "model", "session_id", "prefix_fingerprint",
                         "input_tokens", "cache_read_tokens", "cache_write_5m_tokens",
                         "cache_write_1h_tokens", "output_tokens", "meta", "call_key")


def requests_from_rows(rows: Sequence[Sequence[Any]], path: str, *,
                       ttl_s: float | None = None) -> list[Request]:
    """Store rows (:data:`STORE_REQUEST_COLUMNS`, time order) as :class:`Request` objects;
    see :func:`requests_from_store`. The dashboard audits one session this way."""
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
