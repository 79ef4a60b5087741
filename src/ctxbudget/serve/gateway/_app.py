"""The gateway ASGI application: route, reserve, forward byte for byte, record, settle.

Built by :func:`build_app` from its dependencies (config, ledger, pricer, recorder,
clock); no module-level state, so tests build one per case and each worker process
builds its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fnmatch
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import msgspec

from ...adapters import AdaptedUsage, iteration_calls
from ...budgets import (
    Amount,
    BudgetStoreError,
    Charge,
    Decision,
    Ledger,
    RequestEstimate,
    RequestPricer,
    open_ledger,
    system_clock,
)
from ...errors import InputFormatError, UsageError
from ...usage import Call, Usage
from ._client import Origin, UpstreamClient
from ._config import GatewayConfig, Upstream, key_id
from ._metrics import Metrics
from ._usage import StreamUsage, body_usage

__all__ = ["Gateway", "build_app"]

log = logging.getLogger("ctxbudget.gateway")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Recorder = Callable[[Call], None]

#: Request headers never forwarded: hop-by-hop, the client's Host, the framing (the
#: client sets Host and Content-Length), ``expect`` (the body is sent at once).
_DROP_REQ = frozenset({b"host", b"connection", b"keep-alive", b"proxy-authorization",
                       b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
                       b"upgrade", b"accept-encoding", b"content-length", b"expect"})
#: Response headers never forwarded (the ASGI server frames the response itself).
_DROP_RESP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length",
                        b"proxy-connection", b"trailer", b"upgrade", b"date", b"server"})
_SESSION_RE = re.compile(r"session_([0-9a-fA-F-]{8,})")
#: Longest a finished request's settle / record waits for the loop to be idle (seconds).
_LATER_S = 0.002


@dataclass(slots=True)
class _Who:
    key: str | None
    key_id: str | None
    user: str | None
    team: str | None
    task: str | None
    session: str | None
    task_type: str | None

    def attr(self, name: str) -> str | None:
        return {"key": self.key_id, "user": self.user, "team": self.team, "task": self.task,
                "type": self.task_type}.get(name)


def _error_body(api_family: str, status: int, kind: str, message: str) -> bytes:
    if api_family == "anthropic":
        return msgspec.json.encode({"type": "error", "error": {"type": kind, "message": message}})
    return msgspec.json.encode({"error": {"message": message, "type": kind, "param": None,
                                          "code": kind}})


class Gateway:
    """One gateway process: ``await app(scope, receive, send)``."""

    def __init__(self, config: GatewayConfig, *, ledger: Ledger | None = None,
                 pricer: RequestPricer | None = None, recorder: Recorder | None = None,
                 clock: Callable[[], datetime] = system_clock) -> None:
        self.config = config
        self.clock = clock
        self._ledger = ledger
        if pricer is None:
            from ...prices import PriceBook

            pricer = RequestPricer(PriceBook(overrides=tuple(Path(p) for p in config.prices)))
        self.pricer = pricer
        self.recorder = recorder
        self.metrics = Metrics()
        self._client: UpstreamClient | None = None
        self._origins: dict[str, Origin] = {}
        self._routes: dict[str, tuple[Upstream, str, str | None]] = {}
        self._charge_cache: dict[tuple[Any, ...], list[Charge]] = {}
        self._iso: dict[datetime, bytes] = {}
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._key_cache: dict[str, tuple[str, tuple[str | None, str | None, str | None]]] = {}
        self._closing = False
        self._alert_tasks: set[asyncio.Task[Any]] = set()
        self._later: collections.deque[Callable[[], None]] = collections.deque()
        """Settling and recording of finished requests, run off the critical path: while
        the next request waits for its upstream, or ``_LATER_S`` after the response."""
        self._later_timer: asyncio.TimerHandle | None = None

    # -- lifecycle -------------------------------------------------------------------
    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = open_ledger(self.config.budget_store, clock=self.clock,
                                       reservation_ttl=self.config.reservation_ttl)
        return self._ledger

    async def startup(self) -> None:
        if self.recorder is None:
            from ... import track

            if self.config.spool_dir:
                track.configure(spool_dir=self.config.spool_dir)
            self.recorder = track.record_call
        if self.config.budgets:
            _ = self.ledger  # open (and replay) now, not on the first request
        # load the token encodings and the price catalog now, not on the first request
        for body, api, prov in ((b'{"model":"claude-sonnet-4-5","messages":[]}', "anthropic",
                                 "anthropic"),
                                (b'{"model":"gpt-4o","messages":[]}', "openai-chat", "openai")):
            with contextlib.suppress(Exception):
                self.pricer.estimate(body, api, provider=prov)
        # upstream_timeout bounds the silence between two bytes, not the whole response:
        # a long stream that keeps sending is never cut
        self._client = UpstreamClient(connect_timeout=self.config.connect_timeout,
                                      read_timeout=self.config.upstream_timeout)
        for u in self.config.upstreams:
            self._origins[u.base_url] = Origin.parse(u.base_url)

    async def shutdown(self, grace: float = 30.0) -> None:
        """Let in-flight requests finish (up to ``grace`` seconds), then close the upstream
        client and the ledger and flush the records."""
        self._closing = True
        pending = [t for t in self._in_flight if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=grace)
        self._run_later()
        if self._alert_tasks:
            await asyncio.wait(list(self._alert_tasks), timeout=5)
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._ledger is not None:
            with contextlib.suppress(Exception):
                await self._ledger.aclose()
        from ... import track

        track.flush()

    # -- ASGI ------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        t = scope["type"]
        if t == "http":
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.add(task)
            self.metrics.in_flight += 1
            try:
                await self._http(scope, receive, send)
            finally:
                self.metrics.in_flight -= 1
                if task is not None:
                    self._in_flight.discard(task)
        elif t == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    try:
                        await self.startup()
                    except Exception as exc:
                        await send({"type": "lifespan.startup.failed", "message": str(exc)})
                        return
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await self.shutdown()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _simple(self, send: Send, status: int, body: bytes,
                      ctype: bytes = b"application/json",
                      extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
        if extra:
            headers += extra
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path == "/healthz":
            await self._simple(send, 200, b'{"status":"ok"}')
            return
        if path == "/metrics":
            await self._simple(send, 200, self.metrics.render().encode(),
                               b"text/plain; version=0.0.4")
            return
        route = self._routes.get(path)
        if route is None:
            route = self.config.route(path)
            if route is not None and len(self._routes) < 4096:
                self._routes[path] = route
        if route is None:
            await self._simple(send, 404, _error_body(
                "openai", 404, "not_found_error",
                f"ctxbudget gateway: no configured upstream serves {path}"))
            return
        upstream, up_path, api = route
        family = upstream.api
        # -- body (bounded) ------------------------------------------------------------
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            b = msg.get("body", b"")
            if b:
                size += len(b)
                if size > self.config.max_body_bytes:
                    await self._simple(send, 413, _error_body(
                        family, 413, "request_too_large",
                        f"ctxbudget gateway: request body over {self.config.max_body_bytes} "
                        f"bytes (max_body_bytes)"))
                    return
                chunks.append(b)
            if not msg.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        who = self._who(headers)
        method: str = scope["method"]
        if api is None or method != "POST":
            await self._forward(scope, receive, send, upstream, up_path, body, headers, who,
                                None, None, None)
            return
        # -- reservation -----------------------------------------------------------------
        ts = self.clock()
        try:
            est = self.pricer.estimate(body, api, provider=upstream.provider, at=ts)
        except (InputFormatError, UsageError) as exc:
            await self._simple(send, 400, _error_body(
                family, 400, "invalid_request_error", f"ctxbudget gateway: {exc}"))
            return
        if who.session is None and est.user:
            m = _SESSION_RE.search(est.user)
            if m:
                who.session = m.group(1)
        charges = self._charges(who, upstream, est.model)
        decision: Decision | None = None
        if charges:
            if est.cost_usd is None and any(c.budget.metric == "usd" and not c.budget.soft
                                            for c in charges):
                await self._simple(send, 400, _error_body(
                    family, 400, "invalid_request_error",
                    f"ctxbudget gateway: no price for {upstream.provider}/{est.model}, so "
                    f"a USD budget cannot be enforced; add it to a price override file "
                    f"(prices: in the gateway config)"))
                return
            try:
                decision = await self.ledger.areserve(charges, est.amount)
            except BudgetStoreError as exc:
                self.metrics.store_errors += 1
                log.error("ctxbudget gateway: %s (fail: %s)", exc, self.config.fail)
                if self.config.fail == "closed":
                    await self._simple(send, 503, _error_body(
                        family, 503, "budget_store_unavailable",
                        "ctxbudget gateway: the budget store is unreachable and the gateway "
                        "fails closed"), extra=[(b"x-should-retry", b"false")])
                    return
            if decision is not None:
                self._note_states(decision)
                if decision.soft_exceeded:
                    self._alert(decision, who, est)
                if not decision.allowed:
                    await self._blocked(send, family, decision, upstream, up_path)
                    return
        await self._forward(scope, receive, send, upstream, up_path, body, headers, who, api,
                            est, decision, ts)

    # -- identity and budgets --------------------------------------------------------
    def _who(self, headers: list[tuple[bytes, bytes]]) -> _Who:
        key: str | None = None
        xh: dict[bytes, str] = {}
        for name, value in headers:
            if name == b"x-api-key":
                key = value.decode("latin-1")
            elif name == b"authorization" and key is None:
                v = value.decode("latin-1")
                key = v[7:] if v[:7].lower() == "bearer " else v
            elif name.startswith(b"x-ctxbudget-"):
                xh[name[12:]] = value.decode("utf-8", "replace")
        kid = user = team = ttype = None
        if key:
            hit = self._key_cache.get(key)
            if hit is None:
                rule = next((r for r in self.config.keys if r.matches(key)), None)
                hit = (key_id(key), (rule.user, rule.team, rule.task_type) if rule
                       else (None, None, None))
                if len(self._key_cache) < 100_000:
                    self._key_cache[key] = hit
            kid, (user, team, ttype) = hit
        return _Who(key=key, key_id=kid, user=xh.get(b"user") or user,
                    team=xh.get(b"team") or team, task=xh.get(b"task"),
                    session=xh.get(b"session"), task_type=xh.get(b"type") or ttype)

    def _charges(self, who: _Who, upstream: Upstream, model: str) -> list[Charge]:
        """The budgets that apply to a request (the same list for the same who / upstream /
        model: remembered, up to 10,000 combinations)."""
        ck = (who.key, who.user, who.team, who.task, who.task_type, upstream.name, model)
        hit = self._charge_cache.get(ck)
        if hit is not None:
            return hit
        out = self._match_charges(who, upstream, model)
        if len(self._charge_cache) >= 10_000:
            self._charge_cache.clear()
        self._charge_cache[ck] = out
        return out

    def _match_charges(self, who: _Who, upstream: Upstream, model: str) -> list[Charge]:
        out: list[Charge] = []
        for rule in self.config.budgets:
            ok = True
            for attr, pat in rule.match.items():
                if attr == "key":
                    val = who.key
                elif attr == "model":
                    val = model
                elif attr == "upstream":
                    val = upstream.name
                else:
                    val = who.attr(attr)
                if val is None or not fnmatch.fnmatchcase(val, pat):
                    ok = False
                    break
            if not ok:
                continue
            scope = ""
            if rule.per is not None:
                v = (model if rule.per == "model" else upstream.name if rule.per == "upstream"
                     else who.attr(rule.per))
                if v is None:
                    continue  # a per-task budget does not apply to a request without a task
                scope = v
            out.append(Charge(rule.budget, scope))
        return out

    def _note_states(self, d: Decision) -> None:
        for s in d.states:
            self.metrics.states[(s.name, s.scope, s.metric)] = s

    def _budget_headers(self, d: Decision | None) -> list[tuple[bytes, bytes]]:
        if d is None:
            return []
        states = d.states
        s = d.tightest() if len(states) != 1 or d.blocked_by is not None else (
            None if states[0].soft else states[0])
        if s is None:
            return []
        out = [(b"x-ctxbudget-budget", s.name.encode())]
        usd = s if s.metric == "usd" else next(
            (x for x in states if x.metric == "usd" and not x.soft), None)
        if usd is not None:
            out.append((b"x-ctxbudget-remaining-usd", f"{usd.remaining:.6f}".encode()))
        if s.metric != "usd":
            out.append((b"x-ctxbudget-remaining", f"{s.remaining} {s.metric}".encode()))
        r = s.resets_at
        if r is not None:
            iso = self._iso.get(r)
            if iso is None:
                if len(self._iso) > 1000:
                    self._iso.clear()
                iso = self._iso[r] = r.isoformat().encode()
            out.append((b"x-ctxbudget-reset", iso))
        return out

    async def _blocked(self, send: Send, family: str, d: Decision, upstream: Upstream,
                       route: str) -> None:
        s = d.blocked_by
        assert s is not None
        self.metrics.blocked[s.name] += 1
        self.metrics.requests[(upstream.name, route, 429)] += 1
        unit = "USD" if s.metric == "usd" else s.metric
        reset = f"; resets at {s.resets_at.isoformat()}" if s.resets_at else ""
        msg = (f"ctxbudget: budget {s.name!r} exceeded: limit {s.limit} {unit}, spent "
               f"{s.spent:f}, in flight {s.held:f}; this request was not sent{reset}")
        await self._simple(send, 429, _error_body(family, 429, "budget_exceeded", msg),
                           extra=[(b"x-should-retry", b"false"), *self._budget_headers(d)])

    def _alert(self, d: Decision, who: _Who, est: RequestEstimate) -> None:
        self.metrics.alerts += 1
        names = ", ".join(f"{s.name}[{s.scope}]" for s in d.soft_exceeded)
        log.warning("ctxbudget gateway: soft budget exceeded: %s", names)
        url = self.config.alert_webhook
        client = self._client
        if not url or client is None:
            return
        payload = {"event": "soft_budget_exceeded", "model": est.model,
                   "budgets": [{"name": s.name, "scope": s.scope, "metric": s.metric,
                                "limit": str(s.limit), "spent": str(s.spent),
                                "held": str(s.held)} for s in d.soft_exceeded]}

        async def post() -> None:
            try:
                o = Origin.parse(url)
                u = urlsplit(url)
                target = (o.base_path or b"/") + (b"?" + u.query.encode() if u.query else b"")
                async with await client.request(
                        o, "POST", target, [b"content-type: application/json\r\n"],
                        msgspec.json.encode(payload)) as r:
                    await r.read()
            except Exception as exc:
                log.warning("ctxbudget gateway: alert webhook failed: %r", exc)

        task = asyncio.ensure_future(post())
        self._alert_tasks.add(task)
        task.add_done_callback(self._alert_tasks.discard)

    # -- forwarding --------------------------------------------------------------------
    def _target(self, scope: Scope, upstream: Upstream, up_path: str) -> bytes:
        """The request target at the upstream: its base path + the client's path (as the
        client encoded it) + the query string."""
        raw: bytes | None = scope.get("raw_path")
        prefix = upstream.prefix.encode()
        if raw is not None and raw.startswith(prefix) and b"?" not in raw:
            path = raw[len(prefix):]
        else:
            path = quote(up_path).encode("latin-1")
        qs: bytes = scope.get("query_string", b"")
        return self._origins[upstream.base_url].base_path + path + (b"?" + qs if qs else b"")

    async def _forward(self, scope: Scope, receive: Receive, send: Send, upstream: Upstream,
                       up_path: str, body: bytes, headers: list[tuple[bytes, bytes]],
                       who: _Who, api: str | None, est: RequestEstimate | None,
                       decision: Decision | None, ts: datetime | None = None) -> None:
        metered = api is not None and est is not None
        # the client's own header bytes, minus hop-by-hop / framing / ours
        lines: list[bytes] = []
        accept_enc = b"identity"
        for name, value in headers:
            if name in _DROP_REQ or name.startswith(b"x-ctxbudget-"):
                if name == b"accept-encoding" and not metered:
                    accept_enc = value
                continue
            lines.append(name + b": " + value + b"\r\n")
        # identity: the upstream's bytes are what the client receives (no re-encoding)
        lines.append(b"accept-encoding: " + accept_enc + b"\r\n")
        origin = self._origins[upstream.base_url]
        target = self._target(scope, upstream, up_path)
        t0 = time.perf_counter()
        ts = ts or self.clock()
        res = decision.reservation if decision is not None else None
        status = 0
        ttft: float | None = None
        aborted = False
        error: str | None = None
        parser: StreamUsage | None = None
        copy: list[bytes] | None = None
        resp_id: str | None = None
        gone = False  # the client disconnected (streams only: see watch())
        reached = False  # the upstream answered (else the request was never billed)
        up: Any = None
        watcher: asyncio.Future[Any] | None = None

        async def watch() -> None:
            # A client that goes away mid-stream: close the upstream response so the
            # read loop ends now (and the provider stops generating), not at the end.
            nonlocal gone
            while True:
                m = await receive()
                if m["type"] == "http.disconnect":
                    gone = True
                    if up is not None:
                        up.close()
                    return

        try:
            assert self._client is not None
            if self._later:  # settle / record earlier requests while this one waits
                asyncio.get_running_loop().call_soon(self._run_later)
            try:
                up = await self._client.request(origin, scope["method"], target, lines, body)
            except (TimeoutError, OSError) as exc:
                error = f"upstream: {type(exc).__name__}: {exc}"
                status = 504 if isinstance(exc, TimeoutError) else 502
                await self._simple(send, status, _error_body(
                    upstream.api, status, "api_error",
                    f"ctxbudget gateway: upstream {upstream.name} unreachable "
                    f"({type(exc).__name__})"), extra=self._budget_headers(decision))
                return
            async with up:
                reached = True
                status = up.status
                ctype = b""
                out_headers: list[tuple[bytes, bytes]] = []
                chunked = False
                clen: bytes | None = None
                for k, v in up.raw_headers:
                    k = k.lower()
                    if k in _DROP_RESP:
                        if k == b"content-length":
                            clen = v
                        elif k == b"transfer-encoding":
                            chunked = True
                        continue
                    if k == b"content-type":
                        ctype = v
                    elif resp_id is None and k in (b"request-id", b"x-request-id"):
                        resp_id = v.decode("latin-1")
                    out_headers.append((k, v))
                if clen is not None and not chunked:
                    out_headers.append((b"content-length", clen))
                if decision is not None:
                    out_headers += self._budget_headers(decision)
                streaming = b"text/event-stream" in ctype
                if metered:
                    assert api is not None and est is not None
                    if streaming:
                        parser = StreamUsage(api, upstream.provider)
                    else:
                        copy = []
                await send({"type": "http.response.start", "status": status,
                            "headers": out_headers})
                if streaming:  # notice a client that goes away
                    watcher = asyncio.ensure_future(watch())
                n = up.content_length
                if not streaming and n is not None and n <= 8 * 1024 * 1024:
                    # a sized JSON body: one read, one write (the client cannot use part
                    # of a JSON document anyway)
                    data = await up.read()
                    ttft = time.perf_counter() - t0
                    if copy is not None:
                        copy.append(data)
                    await send({"type": "http.response.body", "body": data})
                    return
                while True:
                    try:
                        chunk = await up.read_chunk()
                    except OSError:
                        if gone:
                            break
                        raise
                    if not chunk:
                        break
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    # the chunk goes out first; reading it for usage waits
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    if parser is not None:
                        parser.feed(chunk)
                    elif copy is not None:
                        copy.append(chunk)
                    if gone:
                        break
                if gone:
                    aborted = True
                else:
                    await send({"type": "http.response.body", "body": b""})
        except asyncio.CancelledError:
            aborted = True
            raise
        except (TimeoutError, OSError) as exc:
            error = f"upstream: {type(exc).__name__}: {exc}"
            aborted = True
        finally:
            if watcher is not None:
                watcher.cancel()
            elapsed = time.perf_counter() - t0
            self.metrics.observe(upstream.name, elapsed)
            self.metrics.requests[(upstream.name, up_path, status)] += 1
            if metered:
                assert api is not None and est is not None
                self._defer(functools.partial(
                    self._finish, upstream, api, est, who, ts, status, elapsed, ttft, parser,
                    copy, aborted, error, resp_id, res if reached else None))
                if res is not None and not reached:
                    self._release(res)

    # -- recording and settling ----------------------------------------------------------
    def _defer(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` (a finished request's settle + record) once the response is out and
        the loop has a moment: when the next request has been sent upstream, or after
        ``_LATER_S`` (a client sending its next request at once does not wait for it)."""
        self._later.append(fn)
        if self._later_timer is None:
            self._later_timer = asyncio.get_running_loop().call_later(_LATER_S,
                                                                       self._run_later)

    def _run_later(self) -> None:
        if self._later_timer is not None:
            self._later_timer.cancel()
            self._later_timer = None
        later = self._later
        while later:
            fn = later.popleft()
            try:
                fn()
            except Exception:  # settling / recording never breaks the proxy
                log.exception("ctxbudget gateway: settling a finished request failed")

    def _release(self, res: Any) -> None:
        try:
            self.ledger.release(res)
        except BudgetStoreError as exc:
            self.metrics.store_errors += 1
            log.error("ctxbudget gateway: release failed: %s", exc)

    def _finish(self, upstream: Upstream, api: str, est: RequestEstimate, who: _Who,
                ts: datetime, status: int, elapsed: float, ttft: float | None,
                parser: StreamUsage | None, copy: list[bytes] | None, aborted: bool,
                error: str | None, resp_id: str | None, res: Any) -> None:
        adapted: AdaptedUsage | None = None
        meta: dict[str, Any] = {"gateway": True, "upstream": upstream.name, "api": api,
                                "http_status": status}
        try:
            if parser is not None:
                parser.close()
                adapted = parser.adapted()
            elif copy is not None and 200 <= status < 300:
                adapted = body_usage(api, upstream.provider, b"".join(copy))
        except UsageError as exc:
            meta["usage_error"] = str(exc)
        usage: Usage
        model = est.model
        source = "response"
        if adapted is not None:
            usage = adapted.usage
            model = adapted.model or model
            if parser is not None and (aborted or not parser.finished):
                usage = self._with_counted_output(usage, parser, model, upstream.provider)
                source = "stream-partial"
        elif parser is not None and status and 200 <= status < 300:
            # a stream without usage events (Chat without include_usage) or cut short:
            # the counted prompt and the counted output received so far
            usage = self._with_counted_output(
                Usage(input_tokens=est.usage.input_tokens,
                      cache_write_5m_tokens=est.usage.cache_write_5m_tokens,
                      cache_write_1h_tokens=est.usage.cache_write_1h_tokens),
                parser, model, upstream.provider)
            model = parser.model or model
            source = "counted"
        else:
            usage = Usage()
            source = "none"
        meta["usage_source"] = source
        if aborted:
            meta["aborted"] = True
        if error:
            meta["error"] = error
        if ttft is not None:
            meta["ttft_ms"] = round(ttft * 1000, 3)
        if est.stream:
            meta["stream"] = True
        for k in ("key_id", "user", "team"):
            v = getattr(who, k)
            if v:
                meta[k] = v
        meta["estimate"] = {"prompt_tokens": est.usage.prompt_tokens,
                            "output_tokens": est.usage.output_tokens,
                            "usd": str(est.cost_usd) if est.cost_usd is not None else None}
        ok = 200 <= status < 300 and not (parser is not None and parser.error)
        rid = (adapted.request_id if adapted is not None else None) or \
            (parser.id if parser is not None else None) or resp_id
        call = Call(ts=ts, provider=upstream.provider, model=model, usage=usage,
                    task_id=who.task, session_id=who.session, task_type=who.task_type,
                    request_id=rid, latency_ms=round(elapsed * 1000, 3),
                    status="ok" if ok else "error",
                    source="gateway",
                    service_tier=adapted.service_tier if adapted is not None else None,
                    prefix_fingerprint=est.fingerprint or None,
                    input_inclusive=adapted.input_inclusive if adapted is not None else None,
                    meta=meta)
        # a whole response: one record per sampling iteration, each at its own model, and
        # its tool counts (the split the tracker and the importers record, priced as
        # `ctxbudget usage --cost` prices the body)
        calls = iteration_calls(adapted, call) if adapted is not None and \
            source == "response" else [call]
        cost: Decimal | None = Decimal(0)
        if usage:
            costs = [self.pricer.price(c.usage, c.model, upstream.provider, ts, c.service_tier)
                     for c in calls]
            cost = None if None in costs else sum(filter(None, costs), Decimal(0))
        if cost:
            self.metrics.spend[(upstream.name, model)] += cost
        if res is not None:
            actual = Amount(usd=cost or Decimal(0), tokens=usage.total_tokens,
                            calls=1 if status else 0)
            try:
                if status or usage:
                    self.ledger.settle(res, actual)
                else:
                    self.ledger.release(res)
            except BudgetStoreError as exc:
                self.metrics.store_errors += 1
                log.error("ctxbudget gateway: settle failed: %s", exc)
        try:
            if self.recorder is not None:
                for c in calls:
                    self.recorder(c)
        except Exception as exc:  # recording never breaks the proxy
            log.warning("ctxbudget gateway: could not record a call: %r", exc)

    @staticmethod
    def _with_counted_output(usage: Usage, parser: StreamUsage, model: str,
                             provider: str) -> Usage:
        if not parser.text:
            return usage
        from ...tokens import count_tokens

        try:
            n = count_tokens("".join(parser.text), model, provider=provider).tokens
        except Exception:
            n = (sum(len(t) for t in parser.text) + 3) // 4
        if n <= usage.output_tokens:
            return usage
        return Usage(input_tokens=usage.input_tokens, cache_read_tokens=usage.cache_read_tokens,
                     cache_write_5m_tokens=usage.cache_write_5m_tokens,
                     cache_write_1h_tokens=usage.cache_write_1h_tokens, output_tokens=n,
                     reasoning_tokens=min(usage.reasoning_tokens, n))


def build_app(config: GatewayConfig, **deps: Any) -> Gateway:
    """The ASGI app for ``config``; ``deps``: ``ledger``, ``pricer``, ``recorder``,
    ``clock`` (defaults: from the config, the bundled prices, the tracker's spool
    writer, the system clock)."""
    return Gateway(config, **deps)
