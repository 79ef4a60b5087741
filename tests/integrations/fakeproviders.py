"""A local fake of the Gemini API and the Bedrock runtime API, replaying recorded bodies.

Data: ``../shared/data/api-responses`` (real exchanges recorded by pydantic-ai's test
suite, MIT, see that folder's README):

* Gemini: ``test_google_stream_usage_is_live_mid_stream.yaml`` — a recorded
  ``streamGenerateContent?alt=sse`` response (three chunks, cumulative
  ``usageMetadata``). ``:streamGenerateContent`` replays those chunks as SSE;
  ``:generateContent`` answers with the last chunk (the complete usage) as JSON.
* Bedrock: ``test_bedrock_cache_write_and_read.yaml`` — two recorded ``converse``
  responses (a cache write, then a cache read). ``/converse`` replays them in order;
  ``/converse-stream`` sends the same body as the AWS event stream Bedrock sends
  (``messageStart``, ``contentBlockDelta``, ``contentBlockStop``, ``messageStop``,
  ``metadata`` with the usage), binary-framed with CRCs; ``/invoke`` answers with the
  recorded Anthropic Messages bodies (``test_anthropic_cache_real_api.yaml``) and the
  ``x-amzn-bedrock-*-token-count`` headers Bedrock adds. ``/invoke-with-response-stream``
  streams those Anthropic bodies as the Anthropic streaming events (``message_start``
  ... ``message_delta`` with the output count, ``message_stop`` with Bedrock's
  ``amazon-bedrock-invocationMetrics``), each the base64 ``bytes`` of one ``chunk``
  event of the AWS event stream; a Llama body (``prompt``, no ``messages``) gets Llama's
  chunks (``generation``), the last one carrying only the invocation metrics (the
  counts of the next recorded ``converse`` response).

Requests are validated (JSON body, required fields); bad ones get a 400 and are listed
in ``server.errors``.
"""

from __future__ import annotations

import base64
import copy
import json
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml
from fakeapi import sse_events

__all__ = ["FakeProviders", "event_stream_message"]


def _interactions(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load(path.read_text()).get("interactions", []))


def _sse_chunks(text: str) -> list[dict[str, Any]]:
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))
    return out


def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack("B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v


def event_stream_message(event_type: str, payload: dict[str, Any]) -> bytes:
    """One ``application/vnd.amazon.eventstream`` message (prelude, headers, payload,
    CRC32s), as Bedrock frames each ``converse-stream`` / ``invoke-with-response-stream``
    event."""
    headers = (_header(":event-type", event_type) + _header(":content-type", "application/json")
               + _header(":message-type", "event"))
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    msg = prelude + headers + body
    return msg + struct.pack(">I", zlib.crc32(msg) & 0xFFFFFFFF)


class FakeProviders:
    """Threaded HTTP server on 127.0.0.1 (random port). Use as a context manager."""

    def __init__(self, data_dir: Path) -> None:
        g = _interactions(data_dir / "test_google_stream_usage_is_live_mid_stream.yaml")
        self.gemini_chunks: list[dict[str, Any]] = _sse_chunks(g[0]["response"]["body"]["string"])
        self.converse: list[dict[str, Any]] = [
            it["response"]["parsed_body"]
            for it in _interactions(data_dir / "test_bedrock_cache_write_and_read.yaml")
            if it["response"]["status"]["code"] == 200]
        self.anthropic: list[dict[str, Any]] = [
            it["response"]["parsed_body"]
            for it in _interactions(data_dir / "test_anthropic_cache_real_api.yaml")
            if it["response"]["status"]["code"] == 200
            and isinstance(it["response"].get("parsed_body"), dict)]
        self._n: dict[str, int] = {"converse": 0, "invoke": 0}
        self.stream_cut: int | None = None
        """Send only this many chunks of the next invoke stream (a stream cut short)."""
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.errors: list[str] = []
        self.failures: list[int] = []
        """HTTP statuses the next requests get, in order (``fail_next``)."""
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def next_converse(self) -> dict[str, Any]:
        """The converse body the next converse / converse-stream request gets."""
        return copy.deepcopy(self.converse[self._n["converse"] % len(self.converse)])

    def fail_next(self, status: int) -> None:
        """Make the next request fail with ``status`` (in the provider's error shape)."""
        self.failures.append(status)

    def __enter__(self) -> FakeProviders:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                fake._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _send(self, h: BaseHTTPRequestHandler, status: int, payload: bytes, ctype: str,
              extra: dict[str, str] | None = None) -> None:
        h.send_response(status)
        h.send_header("content-type", ctype)
        h.send_header("content-length", str(len(payload)))
        h.send_header("x-amzn-requestid", f"fake-req-{len(self.requests)}")
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(payload)

    def _bad(self, h: BaseHTTPRequestHandler, reason: str) -> None:
        self.errors.append(reason)
        self._send(h, 400, json.dumps({"error": {"code": 400, "message": reason}}).encode(),
                   "application/json")

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        n = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(n) if n else b""
        try:
            body = json.loads(raw)
        except ValueError:
            return self._bad(h, f"{h.path}: body is not JSON")
        path = unquote(h.path.split("?", 1)[0])
        with self._lock:
            self.requests.append((path, body))
            fail = self.failures.pop(0) if self.failures else None
        if fail is not None:
            err = {"error": {"code": fail, "message": "injected failure",
                             "status": "UNAVAILABLE"}} if "/models/" in path \
                else {"message": "injected failure"}
            return self._send(h, fail, json.dumps(err).encode(), "application/json",
                              {"x-amzn-errortype": "ValidationException"})
        if path.startswith(("/v1beta/models/", "/v1/models/")):
            return self._gemini(h, path, body)
        if path.startswith("/model/"):
            return self._bedrock(h, path, body)
        return self._bad(h, f"unknown endpoint {h.path}")

    def _gemini(self, h: BaseHTTPRequestHandler, path: str, body: Any) -> None:
        if not h.headers.get("x-goog-api-key"):
            return self._bad(h, "gemini: missing x-goog-api-key header")
        if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
            return self._bad(h, "gemini: contents: required list")
        if path.endswith(":streamGenerateContent"):
            payload = "".join(f"data: {json.dumps(c)}\r\n\r\n" for c in self.gemini_chunks)
            return self._send(h, 200, payload.encode(), "text/event-stream")
        if path.endswith(":generateContent"):
            return self._send(h, 200, json.dumps(self.gemini_chunks[-1]).encode(),
                              "application/json")
        return self._bad(h, f"gemini: unknown method {path}")

    def _bedrock(self, h: BaseHTTPRequestHandler, path: str, body: Any) -> None:
        if not h.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256"):
            return self._bad(h, "bedrock: request is not SigV4-signed")
        parts = path.split("/")
        if len(parts) != 4:
            return self._bad(h, f"bedrock: bad path {path}")
        op = parts[3]
        if op in ("converse", "converse-stream"):
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                return self._bad(h, "bedrock: messages: required list")
            with self._lock:
                resp = self.next_converse()
                self._n["converse"] += 1
            if op == "converse":
                return self._send(h, 200, json.dumps(resp).encode(), "application/json")
            text = resp["output"]["message"]["content"][0]["text"]
            frames = [
                event_stream_message("messageStart", {"role": "assistant"}),
                event_stream_message("contentBlockDelta", {"contentBlockIndex": 0,
                                                           "delta": {"text": text}}),
                event_stream_message("contentBlockStop", {"contentBlockIndex": 0}),
                event_stream_message("messageStop", {"stopReason": resp["stopReason"]}),
                event_stream_message("metadata", {"usage": resp["usage"],
                                                  "metrics": resp["metrics"]}),
            ]
            return self._send(h, 200, b"".join(frames), "application/vnd.amazon.eventstream")
        if op == "invoke":
            if not isinstance(body, dict) or "messages" not in body \
                    or "anthropic_version" not in body:
                return self._bad(h, "bedrock invoke: an Anthropic body needs messages and "
                                    "anthropic_version")
            with self._lock:
                resp = copy.deepcopy(self.anthropic[self._n["invoke"] % len(self.anthropic)])
                self._n["invoke"] += 1
            u = resp["usage"]
            headers = {
                "x-amzn-bedrock-input-token-count": str(u["input_tokens"]),
                "x-amzn-bedrock-output-token-count": str(u["output_tokens"]),
            }
            return self._send(h, 200, json.dumps(resp).encode(), "application/json", headers)
        if op == "invoke-with-response-stream":
            return self._invoke_stream(h, body)
        return self._bad(h, f"bedrock: unknown operation {op}")

    def _invoke_stream(self, h: BaseHTTPRequestHandler, body: Any) -> None:
        if isinstance(body, dict) and "messages" in body and "anthropic_version" in body:
            with self._lock:
                resp = copy.deepcopy(self.anthropic[self._n["invoke"] % len(self.anthropic)])
                self._n["invoke"] += 1
            u = resp["usage"]
            docs = [d for name, d in sse_events("anthropic", resp) if name != "ping"]
            docs[-1]["amazon-bedrock-invocationMetrics"] = {
                "inputTokenCount": u["input_tokens"], "outputTokenCount": u["output_tokens"],
                "invocationLatency": 1200, "firstByteLatency": 400,
                "cacheReadInputTokenCount": u.get("cache_read_input_tokens", 0),
                "cacheWriteInputTokenCount": u.get("cache_creation_input_tokens", 0)}
        elif isinstance(body, dict) and isinstance(body.get("prompt"), str):
            with self._lock:
                conv = self.next_converse()
                self._n["converse"] += 1
            text = conv["output"]["message"]["content"][0]["text"]
            cu = conv["usage"]
            docs = [{"generation": text, "prompt_token_count": cu["inputTokens"],
                     "generation_token_count": cu["outputTokens"], "stop_reason": None},
                    {"generation": "", "prompt_token_count": None,
                     "generation_token_count": cu["outputTokens"], "stop_reason": "stop",
                     "amazon-bedrock-invocationMetrics": {
                         "inputTokenCount": cu["inputTokens"],
                         "outputTokenCount": cu["outputTokens"],
                         "invocationLatency": 900, "firstByteLatency": 300}}]
        else:
            return self._bad(h, "bedrock invoke stream: an Anthropic body (messages, "
                                "anthropic_version) or a Llama body (prompt)")
        if self.stream_cut is not None:
            docs, self.stream_cut = docs[:self.stream_cut], None
        frames = [event_stream_message("chunk", {
            "bytes": base64.b64encode(json.dumps(d).encode()).decode()}) for d in docs]
        return self._send(h, 200, b"".join(frames), "application/vnd.amazon.eventstream",
                          {"x-amzn-bedrock-content-type": "application/json"})
