"""Usage from a response: the JSON body, or a copy of the SSE stream's events.

The proxy forwards every chunk unchanged and feeds the same bytes to a
:class:`StreamUsage`, which splits them into events and keeps only what the record
needs: the usage objects the provider put in the stream (Anthropic ``message_start``
+ ``message_delta``; OpenAI Chat's last chunk when ``stream_options.include_usage``;
Responses ``response.completed`` / ``incomplete`` / ``failed``), the model and id, and
the generated text (to count the output of a stream that carried no usage or was cut
short). The provider's own usage objects then go through :mod:`ctxbudget.adapters`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...adapters import AdaptedUsage, adapt_usage

__all__ = ["StreamUsage", "adapter_name", "body_usage"]

_json = msgspec.json.Decoder()


def adapter_name(api: str, provider: str) -> str:
    """The :func:`ctxbudget.adapters.adapt_usage` format of an API's usage objects."""
    if api == "anthropic":
        return "anthropic"
    if api == "openai-responses":
        return "openai-responses"
    # OpenAI-compatible Chat APIs whose usage differs from OpenAI's: their own adapter
    # (the tracker's choice for the same provider)
    return _CHAT_FORMATS.get(provider, "openai-chat")


_CHAT_FORMATS = {"deepseek": "deepseek", "mistral": "mistral", "groq": "groq",
                 "openrouter": "openrouter", "x-ai": "xai", "xai": "xai"}


def body_usage(api: str, provider: str, body: bytes) -> AdaptedUsage | None:
    """Usage of a non-streamed JSON response (``None`` when it has none)."""
    try:
        obj = _json.decode(body)
    except msgspec.DecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("usage"), dict):
        return None
    return adapt_usage(adapter_name(api, provider), obj)


class StreamUsage:
    """Incremental SSE reader for one response stream (never holds the whole stream:
    only the current partial event, the usage objects and the generated text)."""

    __slots__ = ("_buf", "api", "error", "finished", "id", "model", "provider", "text",
                 "usage")

    def __init__(self, api: str, provider: str) -> None:
        self.api = api
        self.provider = provider
        self._buf = b""
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.id: str | None = None
        self.text: list[str] = []
        self.error = False
        self.finished = False

    def feed(self, chunk: bytes) -> None:
        buf = self._buf + chunk if self._buf else chunk
        if b"\n\n" not in buf and b"\r\n\r\n" not in buf:
            self._buf = buf
            return
        buf = buf.replace(b"\r\n", b"\n")
        *events, rest = buf.split(b"\n\n")
        self._buf = rest
        for ev in events:
            self._event(ev)

    def close(self) -> None:
        if self._buf.strip():
            self._event(self._buf.replace(b"\r\n", b"\n"))
        self._buf = b""

    def _event(self, ev: bytes) -> None:
        data = b""
        for line in ev.split(b"\n"):
            if line.startswith(b"data:"):
                d = line[5:]
                data = data + b"\n" + d.lstrip(b" ") if data else d.lstrip(b" ")
        if not data or data == b"[DONE]":
            if data == b"[DONE]":
                self.finished = True
            return
        try:
            obj = _json.decode(data)
        except msgspec.DecodeError:
            return
        if not isinstance(obj, dict):
            return
        if self.api == "anthropic":
            self._anthropic(obj)
        elif self.api == "openai-responses":
            self._responses(obj)
        else:
            self._chat(obj)

    def _anthropic(self, o: dict[str, Any]) -> None:
        t = o.get("type")
        if t == "content_block_delta":
            d = o.get("delta") or {}
            piece = d.get("text") or d.get("partial_json") or d.get("thinking")
            if isinstance(piece, str):
                self.text.append(piece)
        elif t == "message_start":
            m = o.get("message") or {}
            self.model = m.get("model") or self.model
            self.id = m.get("id") or self.id
            if isinstance(m.get("usage"), dict):
                self.usage = dict(m["usage"])
        elif t == "message_delta":
            u = o.get("usage")
            if isinstance(u, dict):
                base = self.usage if self.usage is not None else {}
                base.update({k: v for k, v in u.items() if v is not None})
                self.usage = base
        elif t == "message_stop":
            self.finished = True
        elif t == "error":
            self.error = True

    def _chat(self, o: dict[str, Any]) -> None:
        self.model = o.get("model") or self.model
        self.id = o.get("id") or self.id
        if isinstance(o.get("usage"), dict):
            self.usage = o["usage"]
        for ch in o.get("choices") or ():
            d = ch.get("delta") if isinstance(ch, dict) else None
            if not isinstance(d, dict):
                continue
            for k in ("content", "reasoning_content", "refusal"):
                if isinstance(d.get(k), str):
                    self.text.append(d[k])
            for tc in d.get("tool_calls") or ():
                fn = tc.get("function") if isinstance(tc, dict) else None
                if isinstance(fn, dict):
                    self.text.extend(v for v in (fn.get("name"), fn.get("arguments"))
                                     if isinstance(v, str))
        if "error" in o:
            self.error = True

    def _responses(self, o: dict[str, Any]) -> None:
        t = o.get("type") or ""
        if t.endswith(".delta") and isinstance(o.get("delta"), str):
            self.text.append(o["delta"])
            return
        r = o.get("response")
        if isinstance(r, dict):
            self.model = r.get("model") or self.model
            self.id = r.get("id") or self.id
            if isinstance(r.get("usage"), dict):
                self.usage = r["usage"]
        if t in ("response.completed", "response.incomplete", "response.failed"):
            self.finished = True
            if t == "response.failed":
                self.error = True
        elif t == "error":
            self.error = True

    def adapted(self) -> AdaptedUsage | None:
        """The stream's usage through the adapters (``None`` when the stream had none)."""
        if self.usage is None:
            return None
        body: dict[str, Any] = {"usage": self.usage}
        if self.model:
            body["model"] = self.model
        if self.id:
            body["id"] = self.id
        return adapt_usage(adapter_name(self.api, self.provider), body)
