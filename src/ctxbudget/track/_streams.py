"""Streaming: transparent proxies over SDK streams that read usage from the final events.

* Anthropic ``messages.create(stream=True)``: ``message_start`` carries the input and
  cache counts, ``message_delta`` carries cumulative counts (``output_tokens`` always,
  the others when present and then they overwrite); we merge them as the SDK's own
  accumulator does.
* OpenAI Chat Completions ``stream=True``: the last chunk carries ``usage`` only when the
  request set ``stream_options={"include_usage": True}``; without it the call is recorded
  with empty usage and ``meta.usage_missing`` (counted in ``stats()``).
* OpenAI Responses ``stream=True``: ``response.completed`` (or ``.incomplete`` /
  ``.failed``) carries the final response with its usage.

The call is recorded when the stream is exhausted, raises, or is closed / exited
early (then ``meta.stream_incomplete`` is set). A stream the app drops without
closing it is recorded and settled when it is garbage-collected (a
``weakref.finalize`` queues it; the settlement runs at the next safe point: the next
tracked call, the writer thread's next wake, ``flush()`` or exit) with
``meta.stream_dropped``; streams still open at interpreter exit are settled the same
way. A call answered without usage (no ``include_usage``, or dropped before the usage
event) is charged its reservation (see ``_core.finish_call``).
"""

from __future__ import annotations

import atexit
import time
import weakref
from collections.abc import Callable
from typing import Any

from ..adapters import AdaptedUsage, from_anthropic, from_openai_chat, from_openai_responses
from ._core import DROPPED, PendingCall, adapt_guarded, finish_call, internal_error

#: Observers of streams not finished yet (settled as dropped at exit).
_OPEN: dict[int, Observer] = {}


def _on_collect(obs: Observer) -> None:
    """weakref.finalize callback of a stream proxy: queue, do not settle here."""
    if not obs.p.done:
        DROPPED.append(obs.finish_dropped)


def watch(proxy: object, obs: Observer) -> None:
    """Settle ``obs`` as dropped if ``proxy`` is collected (or the process exits) first."""
    _OPEN[id(obs)] = obs
    weakref.finalize(proxy, _on_collect, obs).atexit = False


def _settle_open_at_exit() -> None:
    for obs in list(_OPEN.values()):
        try:
            obs.finish_dropped()
        except Exception as exc:  # pragma: no cover - finish guards itself
            internal_error(exc, "settling an open stream at exit")


atexit.register(_settle_open_at_exit)  # runs before the writer's exit flush (LIFO)

__all__ = ["AsyncStreamProxy", "StreamProxy", "make_observer"]


def _dump(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return obj
    d = obj.model_dump() if hasattr(obj, "model_dump") else dict(vars(obj))
    return d if isinstance(d, dict) else {}


class Observer:
    """Watches the events of one stream and records the call once at the end."""

    adapter: Callable[[Any], AdaptedUsage] = staticmethod(from_anthropic)

    def __init__(self, pending: PendingCall) -> None:
        self.p = pending
        self.complete = False
        self.failed = False
        self.dropped = False
        self.last_t = time.perf_counter()

    def observe(self, ev: Any) -> None:
        self.last_t = time.perf_counter()
        try:
            self._observe(ev)
        except Exception as exc:
            internal_error(exc, "stream event")

    def _observe(self, ev: Any) -> None:
        raise NotImplementedError

    def body(self) -> Any:
        raise NotImplementedError

    def finish_dropped(self) -> None:
        """The app let go of the stream without closing it."""
        self.dropped = True
        self.finish()

    def finish(self, error: BaseException | None = None) -> None:
        _OPEN.pop(id(self), None)
        if self.p.done:
            return
        try:
            body = self.body()
            adapted = adapt_guarded(self.adapter, body) if body is not None else None
        except Exception as exc:
            internal_error(exc, "stream usage")
            adapted = None
        meta: dict[str, Any] = {"stream": True}
        if not self.complete and error is None:
            meta["stream_incomplete"] = True
        latency = None
        if self.dropped:
            meta["stream_dropped"] = True
            latency = (self.last_t - self.p.t0) * 1000.0  # until its last event
        finish_call(self.p, adapted, status="error" if self.failed else "ok", error=error,
                    meta=meta, latency_ms=latency, responded=True)


class AnthropicObserver(Observer):
    adapter = staticmethod(from_anthropic)

    def __init__(self, pending: PendingCall) -> None:
        super().__init__(pending)
        self.usage: dict[str, Any] = {}
        self.id: str | None = None
        self.model: str | None = None

    def _observe(self, ev: Any) -> None:
        t = getattr(ev, "type", None)
        if t == "message_start":
            m = ev.message
            self.id, self.model = m.id, m.model
            self.usage = {k: v for k, v in _dump(m.usage).items() if v is not None}
        elif t == "message_delta":
            for k, v in _dump(ev.usage).items():
                if v is not None:
                    self.usage[k] = v
        elif t == "message_stop":
            self.complete = True

    def body(self) -> Any:
        if not self.usage:
            return None
        return {"usage": self.usage, "id": self.id, "model": self.model}


class OpenAIChatObserver(Observer):
    adapter = staticmethod(from_openai_chat)

    def __init__(self, pending: PendingCall) -> None:
        super().__init__(pending)
        self.usage: Any = None
        self.id: str | None = None
        self.model: str | None = None
        self.tier: str | None = None

    def _observe(self, ev: Any) -> None:
        self.id = getattr(ev, "id", None) or self.id
        self.model = getattr(ev, "model", None) or self.model
        self.tier = getattr(ev, "service_tier", None) or self.tier
        for choice in getattr(ev, "choices", None) or ():
            if getattr(choice, "finish_reason", None):
                self.complete = True
        u = getattr(ev, "usage", None)
        if u is not None:
            self.usage = u
            self.complete = True

    def body(self) -> Any:
        if self.usage is None:
            return None
        return {"usage": self.usage, "id": self.id, "model": self.model,
                "service_tier": self.tier}


class OpenAIResponsesObserver(Observer):
    adapter = staticmethod(from_openai_responses)

    def __init__(self, pending: PendingCall) -> None:
        super().__init__(pending)
        self.response: Any = None

    def _observe(self, ev: Any) -> None:
        t = getattr(ev, "type", None)
        if t in ("response.completed", "response.incomplete", "response.failed"):
            self.response = ev.response
            self.complete = True
            if t == "response.failed":
                self.failed = True
        elif t == "response.created" and self.response is None:
            self.response = ev.response

    def body(self) -> Any:
        r = self.response
        if r is None or getattr(r, "usage", None) is None:
            return None
        body = {"usage": r.usage, "id": r.id, "model": r.model,
                "service_tier": getattr(r, "service_tier", None)}
        output = getattr(r, "output", None)  # web / file search call items: per-call fees
        if isinstance(output, list):
            body["output"] = output
        return body


_OBSERVERS: dict[str, type[Observer]] = {
    "anthropic": AnthropicObserver,
    "openai-chat": OpenAIChatObserver,
    "openai-responses": OpenAIResponsesObserver,
}


def make_observer(api: str, pending: PendingCall) -> Observer:
    return _OBSERVERS[api](pending)


class StreamProxy:
    """Wraps a sync SDK stream; everything else is delegated to it."""

    def __init__(self, inner: Any, obs: Observer) -> None:
        self._ctxb_inner = inner
        self._ctxb_obs = obs
        self._ctxb_it: Any = None
        watch(self, obs)

    def __iter__(self) -> StreamProxy:
        return self

    def __next__(self) -> Any:
        if self._ctxb_it is None:
            self._ctxb_it = iter(self._ctxb_inner)
        try:
            ev = next(self._ctxb_it)
        except StopIteration:
            self._ctxb_obs.finish()
            raise
        except Exception as exc:
            self._ctxb_obs.finish(exc)
            raise
        self._ctxb_obs.observe(ev)
        return ev

    def __enter__(self) -> StreamProxy:
        enter = getattr(self._ctxb_inner, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(self, *exc: Any) -> Any:
        try:
            ex = getattr(self._ctxb_inner, "__exit__", None)
            return ex(*exc) if ex is not None else None
        finally:
            self._ctxb_obs.finish()

    def close(self) -> None:
        try:
            self._ctxb_inner.close()
        finally:
            self._ctxb_obs.finish()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctxb_inner, name)


class AsyncStreamProxy:
    """Wraps an async SDK stream; everything else is delegated to it."""

    def __init__(self, inner: Any, obs: Observer) -> None:
        self._ctxb_inner = inner
        self._ctxb_obs = obs
        self._ctxb_it: Any = None
        watch(self, obs)

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        if self._ctxb_it is None:
            self._ctxb_it = self._ctxb_inner.__aiter__()
        try:
            ev = await self._ctxb_it.__anext__()
        except StopAsyncIteration:
            self._ctxb_obs.finish()
            raise
        except Exception as exc:
            self._ctxb_obs.finish(exc)
            raise
        self._ctxb_obs.observe(ev)
        return ev

    async def __aenter__(self) -> AsyncStreamProxy:
        enter = getattr(self._ctxb_inner, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        try:
            ex = getattr(self._ctxb_inner, "__aexit__", None)
            return (await ex(*exc)) if ex is not None else None
        finally:
            self._ctxb_obs.finish()

    async def close(self) -> None:
        try:
            await self._ctxb_inner.close()
        finally:
            self._ctxb_obs.finish()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctxb_inner, name)
