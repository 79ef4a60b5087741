"""A fake Anthropic + OpenAI upstream on 127.0.0.1 that records what it receives.

Responses follow the providers' documented wire formats (JSON bodies and SSE event
sequences). Per-request knobs, as request headers the SDKs let a caller add:

* ``x-fake-chunks``: number of text deltas in a stream (default 5);
* ``x-fake-delay-ms``: pause before each delta (default 0);
* ``x-fake-output-tokens``: output tokens reported in the usage (default: chunks);
* ``x-fake-input-tokens``: uncached input tokens reported (default 25);
* ``x-fake-status``: answer with this HTTP status and the provider's error shape.

Run alone for benchmarks: ``python fake_upstream.py PORT``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeUpstream:
    host: str = "127.0.0.1"
    port: int = 0
    received: list[Received] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)
    """The exact response bytes of each request, in order (bodies only)."""
    record: bool = True
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> FakeUpstream:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    # -- handler ------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.record:
            self.received.append(Received(request.method, request.path_qs,
                                          dict(request.headers), body))
        h = request.headers
        status = int(h.get("x-fake-status", "200"))
        req: dict[str, Any] = json.loads(body) if body else {}
        anthropic = request.path.startswith("/v1/messages")
        if status != 200:
            err = ({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
                   if anthropic else {"error": {"message": "busy", "type": "server_error",
                                                "param": None, "code": None}})
            data = json.dumps(err).encode()
            self.sent.append(data)
            return web.Response(status=status, body=data, content_type="application/json",
                                headers={"retry-after": "7", "x-should-retry": "false"})
        n = int(h.get("x-fake-chunks", "5"))
        delay = int(h.get("x-fake-delay-ms", "0")) / 1000
        out_tokens = int(h.get("x-fake-output-tokens", str(n)))
        in_tokens = int(h.get("x-fake-input-tokens", "25"))
        model = req.get("model", "unknown")
        rl = {"anthropic-ratelimit-requests-remaining": "999", "retry-after": "0",
              "x-ratelimit-remaining-tokens": "12345"}
        p = request.path
        if p == "/v1/messages/count_tokens":
            return self._json({"input_tokens": 42}, rl)
        if p == "/v1/messages":
            if req.get("stream"):
                return await self._sse(request, _anthropic_events(model, n, in_tokens,
                                                                  out_tokens), delay, rl)
            return self._json(_anthropic_message(model, n, in_tokens, out_tokens), rl)
        if p == "/v1/chat/completions":
            if req.get("stream"):
                inc = bool((req.get("stream_options") or {}).get("include_usage"))
                return await self._sse(request, _chat_events(model, n, in_tokens, out_tokens,
                                                             inc), delay, rl)
            return self._json(_chat_completion(model, n, in_tokens, out_tokens), rl)
        if p == "/v1/responses":
            if req.get("stream"):
                return await self._sse(request, _responses_events(model, n, in_tokens,
                                                                  out_tokens), delay, rl)
            return self._json(_response(model, n, in_tokens, out_tokens), rl)
        if p == "/v1/embeddings":
            return self._json({"object": "list", "model": model, "data": [
                {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                "usage": {"prompt_tokens": in_tokens, "total_tokens": in_tokens}}, rl)
        return web.Response(status=404, text="no such fake route")

    def _json(self, obj: Any, headers: dict[str, str]) -> web.Response:
        data = json.dumps(obj).encode()
        self.sent.append(data)
        return web.Response(body=data, content_type="application/json",
                            headers={**headers, "request-id": "req_fake_" + str(time.time_ns())})

    async def _sse(self, request: web.Request, events: list[bytes], delay: float,
                   headers: dict[str, str]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={**headers, "content-type": "text/event-stream",
                                           "cache-control": "no-cache"})
        await resp.prepare(request)
        sent = bytearray()
        self.sent.append(b"")
        idx = len(self.sent) - 1
        try:
            for ev in events:
                if delay:
                    await asyncio.sleep(delay)
                await resp.write(ev)
                sent += ev
                self.sent[idx] = bytes(sent)
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp


def _id() -> str:
    return f"{time.time_ns():x}"


def _anthropic_message(model: str, n: int, inp: int, out: int) -> dict[str, Any]:
    return {"id": "msg_" + _id(), "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": " ".join(["word"] * n)}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": inp, "cache_creation_input_tokens": 100,
                      "cache_read_input_tokens": 200,
                      "cache_creation": {"ephemeral_5m_input_tokens": 100,
                                         "ephemeral_1h_input_tokens": 0},
                      "output_tokens": out, "service_tier": "standard"}}


def _ev(name: str | None, obj: Any) -> bytes:
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {json.dumps(obj)}\n\n".encode()


def _anthropic_events(model: str, n: int, inp: int, out: int) -> list[bytes]:
    msg = _anthropic_message(model, 0, inp, 1)
    msg["content"] = []
    msg["stop_reason"] = None
    evs = [_ev("message_start", {"type": "message_start", "message": msg}),
           _ev("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}}),
           _ev("ping", {"type": "ping"})]
    evs += [_ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": "word "}})
            for _ in range(n)]
    evs += [_ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _ev("message_delta", {"type": "message_delta",
                                  "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                  "usage": {"output_tokens": out}}),
            _ev("message_stop", {"type": "message_stop"})]
    return evs


def _chat_usage(inp: int, out: int) -> dict[str, Any]:
    return {"prompt_tokens": inp + 64, "completion_tokens": out,
            "total_tokens": inp + 64 + out,
            "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}


def _chat_completion(model: str, n: int, inp: int, out: int) -> dict[str, Any]:
    return {"id": "chatcmpl-" + _id(), "object": "chat.completion", "created": 1764633600,
            "model": model, "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                         "message": {"role": "assistant", "refusal": None,
                                                     "content": " ".join(["word"] * n)}}],
            "usage": _chat_usage(inp, out), "system_fingerprint": "fp_fake"}


def _chat_events(model: str, n: int, inp: int, out: int, include_usage: bool) -> list[bytes]:
    cid = "chatcmpl-" + _id()
    base = {"id": cid, "object": "chat.completion.chunk", "created": 1764633600,
            "model": model, "system_fingerprint": "fp_fake"}
    extra = {"usage": None} if include_usage else {}
    evs = [_ev(None, {**base, "choices": [{"index": 0, "delta": {"role": "assistant",
                                                                 "content": ""},
                                           "finish_reason": None}], **extra})]
    evs += [_ev(None, {**base, "choices": [{"index": 0, "delta": {"content": "word "},
                                            "finish_reason": None}], **extra})
            for _ in range(n)]
    evs.append(_ev(None, {**base, "choices": [{"index": 0, "delta": {},
                                               "finish_reason": "stop"}], **extra}))
    if include_usage:
        evs.append(_ev(None, {**base, "choices": [], "usage": _chat_usage(inp, out)}))
    evs.append(b"data: [DONE]\n\n")
    return evs


def _response(model: str, n: int, inp: int, out: int, status: str = "completed"
              ) -> dict[str, Any]:
    return {"id": "resp_" + _id(), "object": "response", "created_at": 1764633600,
            "status": status, "model": model, "output": [
                {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": " ".join(["word"] * n),
                              "annotations": []}]}],
            "usage": {"input_tokens": inp + 32, "input_tokens_details": {"cached_tokens": 32},
                      "output_tokens": out, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": inp + 32 + out}}


def _responses_events(model: str, n: int, inp: int, out: int) -> list[bytes]:
    r = _response(model, n, inp, out)
    created = {**r, "status": "in_progress", "output": [], "usage": None}
    evs = [_ev("response.created", {"type": "response.created", "sequence_number": 0,
                                    "response": created})]
    evs += [_ev("response.output_text.delta", {"type": "response.output_text.delta",
                                               "sequence_number": i + 1, "item_id": "msg_1",
                                               "output_index": 0, "content_index": 0,
                                               "delta": "word "}) for i in range(n)]
    evs.append(_ev("response.completed", {"type": "response.completed",
                                          "sequence_number": n + 1, "response": r}))
    return evs


if __name__ == "__main__":
    up = FakeUpstream(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0, record=False)
    up.start()
    print(up.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        up.stop()
