"""A local fake of the Anthropic Messages and OpenAI Chat Completions / Responses APIs.

It replays the *recorded* response bodies of ``../shared/data/api-responses/*.yaml``
(real API exchanges recorded by pydantic-ai's test suite), in order, cycling, per
endpoint; as JSON, or — when the request has ``"stream": true`` — as the SSE event
stream the real API would send for that body (usage in ``message_start`` +
``message_delta`` / the final ``include_usage`` chunk / ``response.completed``).
Every request's shape is validated (auth header, JSON body, required fields and
their types); a bad request gets a 400 in the provider's error format and is listed
in ``server.errors``.

Reusable by any test::

    from fakeapi import FakeAPI          # tests/track is on sys.path via conftest, or:
    # sys.path.insert(0, str(Path(__file__).parent)); from fakeapi import FakeAPI

    with FakeAPI(data_dir / "api-responses") as api:
        client = anthropic.Anthropic(base_url=api.url, api_key="test", max_retries=0)
        openai_client = openai.OpenAI(base_url=api.url + "/v1", api_key="test",
                                      max_retries=0)
        api.recorded("anthropic")          # the response bodies it will replay, in order
        api.fail_next("anthropic", 529)    # the next anthropic call gets an error
        api.requests                       # [(endpoint, headers, body), ...]
"""

from __future__ import annotations

import copy
import functools
import json
import threading
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

__all__ = ["FakeAPI", "sse_events"]

ENDPOINTS = {
    "/v1/messages": "anthropic",
    "/v1/chat/completions": "openai-chat",
    "/v1/responses": "openai-responses",
}


@functools.lru_cache(maxsize=8)
def _load(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in ENDPOINTS.values()}
    for f in sorted(Path(data_dir).glob("*.yaml")):
        doc = yaml.safe_load(f.read_text())
        for it in doc.get("interactions", []):
            uri = it["request"]["uri"].split("://", 1)[-1]
            path = "/" + uri.split("/", 1)[1].split("?", 1)[0]
            kind = ENDPOINTS.get(path)
            body = it["response"].get("parsed_body")
            if kind and isinstance(body, dict) and it["response"]["status"]["code"] == 200:
                out[kind].append(body)
    return out


# --------------------------------------------------------------------------- validation


def _validate(kind: str, headers: dict[str, str], body: Any) -> str | None:
    """A reason the request is malformed, or None."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: required string"
    if "ctxbudget_ledger" in body:
        return "ctxbudget_ledger leaked into the request body"
    if kind == "anthropic":
        if not headers.get("x-api-key") and not headers.get("authorization", "").startswith(
                "Bearer "):
            return "missing x-api-key (or Authorization: Bearer) header"
        if not headers.get("anthropic-version"):
            return "missing anthropic-version header"
        mt = body.get("max_tokens")
        if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
            return "max_tokens: required positive integer"
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            return "messages: required non-empty list"
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant") \
                    or "content" not in m:
                return f"messages.{i}: needs role user|assistant and content"
        if "system" in body and not isinstance(body["system"], str | list):
            return "system: string or list of blocks"
    else:
        if not headers.get("authorization", "").startswith("Bearer "):
            return "missing Authorization: Bearer header"
        if kind == "openai-chat":
            msgs = body.get("messages")
            if not isinstance(msgs, list) or not msgs:
                return "messages: required non-empty list"
            for i, m in enumerate(msgs):
                if not isinstance(m, dict) or "role" not in m:
                    return f"messages.{i}: needs a role"
            so = body.get("stream_options")
            if so is not None and not body.get("stream"):
                return "stream_options: only allowed with stream=true"
        else:
            if not isinstance(body.get("input"), str | list):
                return "input: required string or list"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "stream: boolean"
    return None


def _error_body(kind: str, status: int, message: str) -> dict[str, Any]:
    if kind == "anthropic":
        etype = {400: "invalid_request_error", 401: "authentication_error",
                 429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": etype, "message": message}}
    return {"error": {"message": message, "type": "invalid_request_error" if status == 400
                      else "server_error", "param": None, "code": None}}


# --------------------------------------------------------------------------- SSE synthesis


def _texts(kind: str, body: dict[str, Any]) -> list[str]:
    if kind == "anthropic":
        return [b.get("text", "") for b in body.get("content", []) if b.get("type") == "text"]
    if kind == "openai-chat":
        return [c["message"].get("content") or "" for c in body.get("choices", [])][:1]
    out = []
    for item in body.get("output", []):
        for c in item.get("content", []) or []:
            if c.get("type") == "output_text":
                out.append(c.get("text", ""))
    return out


def _pieces(text: str, n: int = 3) -> list[str]:
    if not text:
        return [""]
    step = max(1, len(text) // n)
    return [text[i:i + step] for i in range(0, len(text), step)]


def sse_events(kind: str, body: dict[str, Any], *, include_usage: bool = False,
               anthropic_delta_usage: str = "output") -> Iterator[tuple[str | None, Any]]:
    """(event name, data) pairs the real API streams for the final ``body``.

    ``anthropic_delta_usage``: ``"output"`` — ``message_delta`` carries only
    ``output_tokens`` (input/cache counts come from ``message_start``); ``"full"`` — it
    repeats every cumulative count, as the current API does."""
    if kind == "anthropic":
        u = body["usage"]
        start_usage = {k: v for k, v in u.items() if k != "output_tokens"}
        start_usage["output_tokens"] = 1
        msg = {k: v for k, v in body.items() if k not in ("content", "usage", "stop_reason",
                                                           "stop_sequence")}
        msg.update(content=[], stop_reason=None, stop_sequence=None, usage=start_usage)
        yield "message_start", {"type": "message_start", "message": msg}
        for i, text in enumerate(_texts(kind, body)):
            yield "content_block_start", {"type": "content_block_start", "index": i,
                                          "content_block": {"type": "text", "text": ""}}
            yield "ping", {"type": "ping"}
            for piece in _pieces(text):
                yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                              "delta": {"type": "text_delta", "text": piece}}
            yield "content_block_stop", {"type": "content_block_stop", "index": i}
        if anthropic_delta_usage == "full":
            delta_usage = {k: v for k, v in u.items() if k in (
                "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                "output_tokens")}
        else:
            delta_usage = {"output_tokens": u["output_tokens"]}
        yield "message_delta", {"type": "message_delta",
                                "delta": {"stop_reason": body.get("stop_reason"),
                                          "stop_sequence": body.get("stop_sequence")},
                                "usage": delta_usage}
        yield "message_stop", {"type": "message_stop"}
    elif kind == "openai-chat":
        base = {"id": body["id"], "object": "chat.completion.chunk",
                "created": body.get("created", 0), "model": body["model"],
                "service_tier": body.get("service_tier"),
                "system_fingerprint": body.get("system_fingerprint")}
        extra = {"usage": None} if include_usage else {}
        yield None, {**base, **extra, "choices": [{"index": 0, "delta": {
            "role": "assistant", "content": ""}, "finish_reason": None}]}
        for text in _texts(kind, body):
            for piece in _pieces(text):
                yield None, {**base, **extra, "choices": [
                    {"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        finish = (body.get("choices") or [{}])[0].get("finish_reason", "stop")
        yield None, {**base, **extra, "choices": [
            {"index": 0, "delta": {}, "finish_reason": finish}]}
        if include_usage:
            yield None, {**base, "choices": [], "usage": body["usage"]}
        yield None, "[DONE]"
    else:
        seq = 0
        created = {**body, "status": "in_progress", "output": [], "usage": None}
        yield "response.created", {"type": "response.created", "sequence_number": seq,
                                   "response": created}
        for item_i, item in enumerate(body.get("output", [])):
            seq += 1
            empty = {**item, "status": "in_progress", "content": []} if "content" in item \
                else item
            yield "response.output_item.added", {
                "type": "response.output_item.added", "sequence_number": seq,
                "output_index": item_i, "item": empty}
            for ci, c in enumerate(item.get("content", []) or []):
                if c.get("type") != "output_text":
                    continue
                seq += 1
                yield "response.content_part.added", {
                    "type": "response.content_part.added", "sequence_number": seq,
                    "item_id": item.get("id", ""), "output_index": item_i, "content_index": ci,
                    "part": {**c, "text": ""}}
                for piece in _pieces(c.get("text", "")):
                    seq += 1
                    yield "response.output_text.delta", {
                        "type": "response.output_text.delta", "sequence_number": seq,
                        "item_id": item.get("id", ""), "output_index": item_i,
                        "content_index": ci, "delta": piece, "logprobs": []}
                seq += 1
                yield "response.output_text.done", {
                    "type": "response.output_text.done", "sequence_number": seq,
                    "item_id": item.get("id", ""), "output_index": item_i,
                    "content_index": ci, "text": c.get("text", ""), "logprobs": []}
                seq += 1
                yield "response.content_part.done", {
                    "type": "response.content_part.done", "sequence_number": seq,
                    "item_id": item.get("id", ""), "output_index": item_i, "content_index": ci,
                    "part": c}
            seq += 1
            yield "response.output_item.done", {
                "type": "response.output_item.done", "sequence_number": seq,
                "output_index": item_i, "item": item}
        seq += 1
        yield "response.completed", {"type": "response.completed", "sequence_number": seq,
                                     "response": body}


def _encode_sse(events: Iterator[tuple[str | None, Any]]) -> bytes:
    parts = []
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data)
        parts.append((f"event: {name}\n" if name else "") + f"data: {payload}\n\n")
    return "".join(parts).encode()


# --------------------------------------------------------------------------- server


class FakeAPI:
    """Threaded HTTP server on 127.0.0.1 (random port). Use as a context manager."""

    def __init__(self, data_dir: Path | str, *, anthropic_delta_usage: str = "output") -> None:
        self.bodies = _load(Path(data_dir))
        self.anthropic_delta_usage = anthropic_delta_usage
        self._next: dict[str, int] = {k: 0 for k in self.bodies}
        self._failures: dict[str, deque[tuple[int, str]]] = {k: deque() for k in self.bodies}
        self._overrides: dict[str, deque[dict[str, Any]]] = {k: deque() for k in self.bodies}
        self._stream_failures: dict[str, deque[int]] = {k: deque() for k in self.bodies}
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control -------------------------------------------------------------
    def recorded(self, kind: str) -> list[dict[str, Any]]:
        """The recorded response bodies of ``kind`` (replayed in this order, cycling)."""
        return [copy.deepcopy(b) for b in self.bodies[kind]]

    def fail_next(self, kind: str, status: int, message: str = "injected failure") -> None:
        """Make the next request of ``kind`` fail with ``status``."""
        self._failures[kind].append((status, message))

    def fail_stream_next(self, kind: str, after_events: int = 3) -> None:
        """Make the next *streaming* request of ``kind`` send ``after_events`` events, then
        an error event (``overloaded_error`` / an ``error`` chunk), as real APIs do."""
        self._stream_failures[kind].append(after_events)

    def respond_next(self, kind: str, body: dict[str, Any]) -> None:
        """Replay ``body`` for the next request of ``kind`` instead of the next recording."""
        self._overrides[kind].append(copy.deepcopy(body))

    def reset(self) -> None:
        with self._lock:
            self._next = {k: 0 for k in self.bodies}
            self.requests.clear()
            self.errors.clear()

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> FakeAPI:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                api._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- handling --------------------------------------------------------------
    def _send(self, h: BaseHTTPRequestHandler, status: int, payload: bytes, ctype: str) -> None:
        h.send_response(status)
        h.send_header("content-type", ctype)
        h.send_header("content-length", str(len(payload)))
        h.send_header("request-id", f"req_fake_{len(self.requests)}")
        h.send_header("x-request-id", f"req_fake_{len(self.requests)}")
        h.end_headers()
        h.wfile.write(payload)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        kind = ENDPOINTS.get(path)
        n = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(n) if n else b""
        headers = {k.lower(): v for k, v in h.headers.items()}
        if kind is None:
            self.errors.append(f"unknown endpoint {h.path}")
            self._send(h, 404, b'{"error": "not found"}', "application/json")
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        reason = _validate(kind, headers, body)
        with self._lock:
            self.requests.append((kind, headers, body))
            if reason is not None:
                self.errors.append(f"{kind}: {reason}")
                fail: tuple[int, str] | None = (400, reason)
            elif self._failures[kind]:
                fail = self._failures[kind].popleft()
            else:
                fail = None
            resp: dict[str, Any] | None = None
            if fail is None:
                if self._overrides[kind]:
                    resp = self._overrides[kind].popleft()
                else:
                    bodies = self.bodies[kind]
                    resp = copy.deepcopy(bodies[self._next[kind] % len(bodies)])
                    self._next[kind] += 1
        if fail is not None:
            status, message = fail
            self._send(h, status, json.dumps(_error_body(kind, status, message)).encode(),
                       "application/json")
            return
        assert resp is not None and isinstance(body, dict)
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            events = list(sse_events(kind, resp, include_usage=include,
                                     anthropic_delta_usage=self.anthropic_delta_usage))
            with self._lock:
                cut = self._stream_failures[kind].popleft() if self._stream_failures[kind] \
                    else None
            if cut is not None:
                err = _error_body(kind, 529, "injected mid-stream failure")
                events = [*events[:cut], ("error" if kind == "anthropic" else None, err)]
            payload = _encode_sse(iter(events))
            self._send(h, 200, payload, "text/event-stream")
        else:
            self._send(h, 200, json.dumps(resp).encode(), "application/json")
