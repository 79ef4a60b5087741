"""The upstream HTTP/1.1 client: pooled keep-alive connections, httptools' response parser.

Why not aiohttp: measured on the same machine against the same fake upstream, one
pooled aiohttp ``ClientSession.request`` + ``read`` costs ~200 µs of CPU per request;
this client ~50 µs (``docs/gateway.md``). The gateway needs little of a general client:
one request at a time per connection, a body it already holds, the response's status,
raw headers and body bytes as they arrive. So:

* The request is written as the client's own header bytes (hop-by-hop headers dropped,
  ``Host`` and ``Content-Length`` set) and the body, with one ``write``.
* The response headers are kept as received (``raw_headers``: name and value bytes);
  the body is handed over chunk by chunk as it arrives (chunked transfer decoded, as
  any proxy must before re-framing it for its own client).
* Connections are reused while the upstream keeps them alive, and dropped after
  ``keepalive`` seconds idle (aiohttp's default, 15 s) or when the upstream closes them.
  A request is never retried (a POST may have been billed).
* ``connect_timeout`` bounds opening a connection; ``read_timeout`` bounds the silence
  between two bytes from the upstream (:class:`TimeoutError`). Connection failures and
  malformed responses raise :class:`OSError` (:class:`UpstreamError` for the latter).
* Flow control: when the consumer falls ``_HIGH`` bytes behind, reading from the
  upstream pauses until it catches up (a slow client slows the upstream, memory stays
  bounded).
* ``HEAD`` responses end at their headers and the connection is not reused (the parser
  cannot be told a body is absent); 1xx informational responses are skipped.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools

__all__ = ["Origin", "Response", "UpstreamClient", "UpstreamError"]

#: Pause reading from the upstream when this many bytes wait for the consumer...
_HIGH = 256 * 1024
#: ...and resume below this.
_LOW = 64 * 1024


class UpstreamError(OSError):
    """The upstream sent something that is not an HTTP/1.1 response we can forward."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a base URL's requests go: ``Origin.parse("https://api.x.com/openai")``."""

    scheme: str
    host: str
    port: int
    host_header: bytes
    base_path: bytes
    """The base URL's path without a trailing slash (``b""`` for none)."""

    @classmethod
    def parse(cls, url: str) -> Origin:
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"expected an http(s) URL, got {url!r}")
        port = u.port or (443 if u.scheme == "https" else 80)
        default = (u.scheme == "https" and port == 443) or (u.scheme == "http" and port == 80)
        host = u.hostname if ":" not in u.hostname else f"[{u.hostname}]"
        return cls(scheme=u.scheme, host=u.hostname, port=port,
                   host_header=(host if default else f"{host}:{port}").encode("idna"),
                   base_path=u.path.rstrip("/").encode("latin-1"))


class Response:
    """One upstream response: ``status``, ``raw_headers``, then the body through
    :meth:`read` (all of it) or :meth:`read_chunk` (as it arrives; ``b""`` at the end).

    Use it as an async context manager: on exit the connection goes back to the pool
    when the body was read to the end, and is closed otherwise."""

    __slots__ = ("_buffered", "_chunks", "_conn", "_exc", "_paused", "_released",
                 "_reusable", "_waiter", "content_length", "done", "head", "headers_done",
                 "informational", "keep_alive", "raw_headers", "status", "until_close")

    def __init__(self, conn: _Conn, head: bool) -> None:
        self._conn = conn
        self.head = head
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = False
        self.informational = False
        self.headers_done = False
        self.done = False
        self.until_close = False
        self.content_length: int | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._exc: BaseException | None = None
        self._reusable = False
        self._released = False

    # -- fed by the connection ---------------------------------------------------
    def _wake(self) -> None:
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    def _headers_complete(self, status: int, keep_alive: bool) -> None:
        self.status = status
        self.keep_alive = keep_alive
        chunked = False
        for name, value in self.raw_headers:
            n = name.lower()
            if n == b"content-length":
                v = value.strip()
                if v.isdigit():
                    self.content_length = int(v)
            elif n == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            self.content_length = None
        self.until_close = (not chunked and self.content_length is None and not self.head
                            and status not in (204, 304))
        self.headers_done = True
        self._wake()

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH and not self._paused:
            self._paused = True
            self._conn.pause()
        self._wake()

    def _complete(self, reusable: bool) -> None:
        if not self.done:
            self.done = True
            self._reusable = reusable
            self._wake()

    def _fail(self, exc: BaseException) -> None:
        if not self.done:
            self.done = True
            self._exc = exc
            self._reusable = False
            self._wake()

    async def _wait(self) -> None:
        fut = self._waiter = self._conn.loop.create_future()
        await fut

    # -- consumer ------------------------------------------------------------------
    async def _wait_headers(self) -> None:
        while not self.headers_done:
            if self.done:
                assert self._exc is not None
                raise self._exc
            await self._wait()

    async def read_chunk(self) -> bytes:
        """The next piece of the body as it arrived (``b""`` once it is complete).

        Raises :class:`TimeoutError` / :class:`OSError` when the upstream went silent or
        the connection broke before the end (after handing over what did arrive)."""
        while True:
            if self._chunks:
                c = self._chunks.popleft()
                self._buffered -= len(c)
                if self._paused and self._buffered < _LOW:
                    self._paused = False
                    self._conn.resume()
                return c
            if self.done:
                if self._exc is not None:
                    raise self._exc
                self._release()
                return b""
            await self._wait()

    async def read(self) -> bytes:
        """The whole body."""
        while not self.done and not self._paused:
            await self._wait()
        if self.done and self._exc is None:  # all of it is here: one join
            data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
            self._chunks.clear()
            self._buffered = 0
            self._release()
            return data
        parts: list[bytes] = []  # larger than _HIGH (reading paused), or cut short
        while True:
            c = await self.read_chunk()
            if not c:
                return b"".join(parts)
            parts.append(c)

    def close(self) -> None:
        """Abandon the response: close its connection (a pending read raises)."""
        if not self.done:
            self._fail(ConnectionAbortedError("the response was closed"))
        self._release()

    def _release(self) -> None:
        if self._released:
            return
        self._released = True
        conn = self._conn
        if self._reusable and not self._chunks:
            conn.client._put_idle(conn)
        else:
            conn.close()

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self.done or self._chunks:
            self.close()
        else:
            self._release()


class _Conn(asyncio.Protocol):
    """One keep-alive connection to an origin; one request at a time."""

    def __init__(self, client: UpstreamClient, key: tuple[str, str, int]) -> None:
        self.client = client
        self.key = key
        self.loop = client.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.resp: Response | None = None
        self.closed = False
        self.last = 0.0
        self.idle_since = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.paused = False

    # -- asyncio.Protocol ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if self.resp is None:  # bytes on an idle connection (e.g. a 408 before closing)
            self.close()
            return
        self.last = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._abort(UpstreamError("the upstream switched protocols (not supported)"))
        except httptools.HttpParserError as exc:
            self._abort(UpstreamError(f"malformed response from the upstream: {exc}"))

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        r = self.resp
        if r is not None:
            self.resp = None
            if r.headers_done and r.until_close and exc is None:
                r._complete(False)  # a body delimited by the end of the connection
            else:
                r._fail(exc or ConnectionResetError(
                    "the upstream closed the connection before the response ended"))

    # -- httptools callbacks -------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        r = self.resp
        if r is not None:
            r.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        r = self.resp
        if r is None:
            return
        status = self.parser.get_status_code()
        if status < 200:
            r.raw_headers = []
            r.informational = True
            return
        r._headers_complete(status, self.parser.should_keep_alive())
        if r.head:  # no body follows, whatever content-length says
            self.resp = None
            self._cancel_timer()
            r._complete(False)

    def on_body(self, body: bytes) -> None:
        r = self.resp
        if r is not None:
            r._feed(body)

    def on_message_complete(self) -> None:
        r = self.resp
        if r is None:
            return
        if r.informational:
            r.informational = False
            return
        self.resp = None
        self._cancel_timer()
        r._complete(r.keep_alive)

    # -- ours ------------------------------------------------------------------------
    def start(self, resp: Response, data: bytes, body: bytes) -> None:
        assert self.transport is not None
        self.resp = resp
        self.last = self.loop.time()
        if self.client.read_timeout:
            self.timer = self.loop.call_at(self.last + self.client.read_timeout, self._check)
        if len(body) <= 65536:
            self.transport.write(data + body if body else data)
        else:
            self.transport.writelines((data, body))

    def _check(self) -> None:
        self.timer = None
        r = self.resp
        if r is None or self.closed:
            return
        timeout = self.client.read_timeout
        now = self.loop.time()
        if self.paused or now - self.last < timeout:  # not silent: look again later
            self.timer = self.loop.call_at(max(now, self.last) + timeout, self._check)
            return
        self._abort(TimeoutError(f"no data from the upstream for {timeout:g} s"))

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _abort(self, exc: BaseException) -> None:
        r = self.resp
        self.resp = None
        if r is not None:
            r._fail(exc)
        self.close()

    def pause(self) -> None:
        if self.transport is not None and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.closed and self.paused:
            self.paused = False
            self.last = self.loop.time()
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()


class UpstreamClient:
    """Pooled HTTP/1.1 client for the gateway's upstreams (one per event loop)."""

    def __init__(self, *, connect_timeout: float = 10.0, read_timeout: float | None = 600.0,
                 keepalive: float = 15.0, max_idle: int = 256) -> None:
        self.loop = asyncio.get_running_loop()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout or 0.0
        self.keepalive = keepalive
        self.max_idle = max_idle
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def request(self, origin: Origin, method: str, target: bytes,
                      headers: list[bytes], body: bytes) -> Response:
        """Send ``method target`` with ``headers`` (complete ``b"name: value\\r\\n"``
        lines, without ``Host`` / ``Content-Length``) and ``body``; returns once the
        response headers arrived."""
        conn = self._get_idle(origin)
        if conn is None:
            conn = await self._connect(origin)
        head = method == "HEAD"
        resp = Response(conn, head)
        lines = [method.encode("latin-1"), b" ", target or b"/", b" HTTP/1.1\r\nhost: ",
                 origin.host_header, b"\r\n", *headers]
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            lines += (b"content-length: ", str(len(body)).encode(), b"\r\n")
        lines.append(b"\r\n")
        conn.start(resp, b"".join(lines), body)
        try:
            await resp._wait_headers()
        except BaseException:
            resp.close()
            raise
        return resp

    # -- pool --------------------------------------------------------------------------
    def _get_idle(self, origin: Origin) -> _Conn | None:
        idle = self._idle.get((origin.scheme, origin.host, origin.port))
        if not idle:
            return None
        now = self.loop.time()
        while idle:
            c = idle.pop()
            if c.closed or c.transport is None or c.transport.is_closing():
                continue
            if now - c.idle_since > self.keepalive:
                c.close()
                continue
            return c
        return None

    def _put_idle(self, conn: _Conn) -> None:
        if conn.closed or self._closed:
            conn.close()
            return
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = self.loop.time()
        idle.append(conn)

    async def _connect(self, origin: Origin) -> _Conn:
        key = (origin.scheme, origin.host, origin.port)
        ctx: ssl.SSLContext | None = None
        if origin.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            ctx = self._ssl
        kwargs: dict[str, Any] = {"ssl": ctx, "server_hostname": origin.host} if ctx else {}
        try:
            _, conn = await asyncio.wait_for(self.loop.create_connection(
                lambda: _Conn(self, key), origin.host, origin.port, **kwargs),
                self.connect_timeout)
        except TimeoutError:
            raise TimeoutError(f"connecting to {origin.host}:{origin.port} took over "
                               f"{self.connect_timeout:g} s") from None
        return conn

    async def close(self) -> None:
        """Close every idle connection (in-flight responses keep theirs until read)."""
        self._closed = True
        for idle in self._idle.values():
            for c in idle:
                c.close()
        self._idle.clear()
