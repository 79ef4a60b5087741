"""The gateway's upstream HTTP/1.1 client against raw servers that send exact bytes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ctxbudget.serve.gateway._client import Origin, UpstreamClient, UpstreamError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(r: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await r.readuntil(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    return head, await r.readexactly(n) if n else b""


def _run(handler: Handler, test: Callable[[UpstreamClient, Origin], Awaitable[Any]],
         **client: Any) -> Any:
    async def main() -> Any:
        tasks: set[asyncio.Task[Any]] = set()
        writers: list[asyncio.StreamWriter] = []

        async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            tasks.add(asyncio.current_task())  # type: ignore[arg-type]
            writers.append(w)
            try:
                await handler(r, w)
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                w.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        c = UpstreamClient(**client)
        try:
            return await test(c, Origin.parse(f"http://127.0.0.1:{port}/base"))
        finally:
            await c.close()
            server.close()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in writers:
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()
            await server.wait_closed()

    return asyncio.run(main())


def test_origin() -> None:
    o = Origin.parse("https://api.groq.com/openai/")
    assert (o.host, o.port, o.host_header, o.base_path) == ("api.groq.com", 443,
                                                            b"api.groq.com", b"/openai")
    assert Origin.parse("http://[::1]:8080").host_header == b"[::1]:8080"
    with pytest.raises(ValueError):
        Origin.parse("ftp://x")


def test_request_bytes_keepalive_and_chunked() -> None:
    seen: list[tuple[bytes, bytes]] = []
    conns = 0

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal conns
        conns += 1
        while True:
            try:
                head, body = await _read_request(r)
            except asyncio.IncompleteReadError:
                return
            seen.append((head, body))
            if len(seen) == 1:  # sized
                w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"X-Thing: A b\r\nContent-Length: 5\r\n\r\nhello")
            else:  # chunked, split across writes, with a 100 Continue before it
                w.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
                await w.drain()
                await asyncio.sleep(0.01)
                w.write(b"2\r\nde\r\n0\r\n\r\n")
            await w.drain()

    async def test(c: UpstreamClient, o: Origin) -> Any:
        async with await c.request(o, "POST", b"/base/v1/x?a=1", [b"x-api-key: k\r\n"],
                                   b'{"a":1}') as r1:
            assert r1.status == 200 and r1.content_length == 5
            assert (b"X-Thing", b"A b") in r1.raw_headers
            assert await r1.read() == b"hello"
        async with await c.request(o, "POST", b"/base/v1/y", [], b"{}") as r2:
            assert r2.status == 201 and r2.content_length is None
            chunks = []
            while c2 := await r2.read_chunk():
                chunks.append(c2)
            assert b"".join(chunks) == b"abcde"

    _run(handler, test)
    assert conns == 1  # the connection was reused
    head, body = seen[0]
    assert head.startswith(b"POST /base/v1/x?a=1 HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"\r\nx-api-key: k\r\ncontent-length: 7\r\n\r\n" in head and body == b'{"a":1}'


def test_body_until_close_and_head() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head, _ = await _read_request(r)
        if head.startswith(b"HEAD"):
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")
            await w.drain()
            await asyncio.sleep(0.2)
        else:
            w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
            await w.drain()
        w.close()

    async def test(c: UpstreamClient, o: Origin) -> Any:
        async with await c.request(o, "GET", b"/", [], b"") as r:
            assert await r.read() == b"until the end"
        async with await c.request(o, "HEAD", b"/", [], b"") as r:
            assert r.status == 200 and await r.read() == b""

    _run(handler, test)


def test_cut_response_timeout_and_garbage() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head, _ = await _read_request(r)
        if b"/cut" in head:
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
            await w.drain()
        elif b"/slow" in head:
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")
            await w.drain()
            await asyncio.sleep(1)
        else:
            w.write(b"SMTP ready\r\n\r\n")
            await w.drain()
        w.close()

    async def test(c: UpstreamClient, o: Origin) -> Any:
        async with await c.request(o, "POST", b"/cut", [], b"x") as r:
            assert await r.read_chunk() == b"only this"
            with pytest.raises(ConnectionResetError):
                await r.read_chunk()
        async with await c.request(o, "POST", b"/slow", [], b"x") as r:
            assert await r.read_chunk() == b"hi"
            with pytest.raises(TimeoutError):
                await r.read_chunk()
        with pytest.raises(UpstreamError):
            await c.request(o, "POST", b"/garbage", [], b"x")

    _run(handler, test, read_timeout=0.3)


def test_connect_refused_is_oserror() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main() -> None:
        c = UpstreamClient()
        with pytest.raises(OSError):
            await c.request(Origin.parse(f"http://127.0.0.1:{port}"), "GET", b"/", [], b"")
        await c.close()

    asyncio.run(main())


def test_large_body_flow_control() -> None:
    """A body far over the pause threshold arrives whole, read slowly or at once."""
    blob = bytes(range(256)) * 8192  # 2 MB

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            try:
                await _read_request(r)
            except asyncio.IncompleteReadError:
                return
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(blob) + blob)
            await w.drain()

    async def test(c: UpstreamClient, o: Origin) -> Any:
        async with await c.request(o, "GET", b"/", [], b"") as r:
            got = bytearray()
            while chunk := await r.read_chunk():
                got += chunk
                await asyncio.sleep(0)
            assert got == blob
        async with await c.request(o, "GET", b"/", [], b"") as r:
            await asyncio.sleep(0.2)  # let the buffer fill (reading pauses)
            assert await r.read() == blob

    _run(handler, test)


def test_bytes_on_an_idle_connection_retire_it() -> None:
    """A server that says something unasked on a kept-alive connection (a 408 before
    it closes it): that connection is not reused; the next request opens a new one."""
    conns = 0

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal conns
        conns += 1
        await _read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await w.drain()
        await asyncio.sleep(0.05)
        w.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
        await w.drain()
        await asyncio.sleep(1)

    async def test(c: UpstreamClient, o: Origin) -> Any:
        for _ in range(2):
            async with await c.request(o, "GET", b"/", [], b"") as r:
                assert r.status == 200 and await r.read() == b"ok"
            await asyncio.sleep(0.2)

    _run(handler, test)
    assert conns == 2
