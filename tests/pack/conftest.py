"""A small local API server for the pack tests: validates request shapes, replies canned.

Anthropic ``/v1/messages``: top-level order tools -> system -> messages, at most 4
``cache_control`` markers, user first, every ``tool_use`` answered by a ``tool_result``
in the next message (and no result without its call), no empty text block.
OpenAI ``/v1/chat/completions`` and ``/v1/responses``: every tool call followed by its
results, ``prompt_cache_key`` present. A violation answers HTTP 400 (the SDK raises).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


def _count_cache_control(obj: Any) -> int:
    if isinstance(obj, dict):
        return ("cache_control" in obj) + sum(_count_cache_control(v) for v in obj.values())
    if isinstance(obj, list):
        return sum(_count_cache_control(v) for v in obj)
    return 0


def check_anthropic(keys: list[str], body: dict[str, Any]) -> list[str]:
    errs = []
    # The SDK serializes its keyword arguments in its own order, so JSON key order says
    # nothing; the prefix order is tools -> system -> messages by definition. What can be
    # wrong is where the breakpoints sit: check they walk that order and never land in
    # the closing (volatile) user message.
    marks = [("tools", i) for i, t in enumerate(body.get("tools") or []) if "cache_control" in t]
    marks += [("system", i) for i, b in enumerate(body.get("system") or [])
              if isinstance(b, dict) and "cache_control" in b]
    msgs_ = body.get("messages") or []
    marks += [("messages", i) for i, m in enumerate(msgs_)
              if any("cache_control" in b for b in m["content"] if isinstance(b, dict))]
    loop_end = bool(msgs_) and all(isinstance(b, dict) and b.get("type") == "tool_result"
                                   for b in msgs_[-1]["content"])  # history ends the body
    if msgs_ and ("messages", len(msgs_) - 1) in marks and len(msgs_) > 1 and not loop_end:
        errs.append("breakpoint on the closing volatile message")
    if set(keys) - {"model", "max_tokens", "tools", "system", "messages", "metadata",
                    "temperature", "tool_choice", "stream", "thinking"}:
        errs.append(f"unexpected keys {sorted(set(keys))}")
    if not isinstance(body.get("model"), str) or not isinstance(body.get("max_tokens"), int):
        errs.append("model/max_tokens")
    n = _count_cache_control(body)
    if n > 4:
        errs.append(f"{n} cache_control breakpoints > 4")
    msgs = body.get("messages") or []
    if not msgs or msgs[0]["role"] != "user":
        errs.append("first message must be user")
    pending: set[str] = set()
    for i, m in enumerate(msgs):
        content = m["content"]
        if not isinstance(content, list) or not content:
            errs.append(f"messages[{i}] empty content")
            continue
        results = {b["tool_use_id"] for b in content if b["type"] == "tool_result"}
        if pending and (m["role"] != "user" or results != pending):
            errs.append(f"messages[{i}]: tool_use {sorted(pending)} not answered")
        if results and results != pending:
            errs.append(f"messages[{i}]: tool_result without its tool_use")
        if results and any(b["type"] != "tool_result" for b in content[:len(results)]):
            errs.append(f"messages[{i}]: tool_result blocks must come first")
        pending = {b["id"] for b in content if b["type"] == "tool_use"}
        if pending and m["role"] != "assistant":
            errs.append(f"messages[{i}]: tool_use in a user message")
        for b in content:
            if b["type"] == "text" and not b["text"]:
                errs.append(f"messages[{i}]: empty text block")
    if pending:
        errs.append("last tool_use not answered")
    errs += _check_thinking(body)
    return errs


def _check_thinking(body: dict[str, Any]) -> list[str]:
    """Extended thinking (Anthropic docs, "Extended thinking" / "thinking with tool use"):
    thinking blocks only in assistant messages, before any other block, a signature on
    each ``thinking`` block, ``data`` on each ``redacted_thinking`` block, never a
    ``cache_control`` on them; with thinking enabled, the assistant message whose tool
    calls the closing tool results answer starts with its thinking block(s)."""
    errs = []
    msgs = body.get("messages") or []
    for i, m in enumerate(msgs):
        content = m["content"] if isinstance(m["content"], list) else []
        kinds = [b["type"] for b in content]
        think = [k in ("thinking", "redacted_thinking") for k in kinds]
        if any(think) and m["role"] != "assistant":
            errs.append(f"messages[{i}]: thinking block in a {m['role']} message")
        if any(think) and think != sorted(think, reverse=True):
            errs.append(f"messages[{i}]: thinking blocks must come first")
        for b in content:
            if b["type"] == "thinking" and not (isinstance(b.get("signature"), str)
                                                and b["signature"]):
                errs.append(f"messages[{i}]: thinking block without its signature")
            if b["type"] == "redacted_thinking" and not b.get("data"):
                errs.append(f"messages[{i}]: redacted_thinking block without data")
            if b["type"] in ("thinking", "redacted_thinking") and "cache_control" in b:
                errs.append(f"messages[{i}]: cache_control on a thinking block")
    enabled = (body.get("thinking") or {}).get("type") == "enabled"
    if enabled and len(msgs) >= 2:
        last = msgs[-1]["content"]
        in_loop = isinstance(last, list) and last and all(
            b["type"] == "tool_result" for b in last)
        prev = msgs[-2]
        if in_loop and prev["role"] == "assistant" and prev["content"][0]["type"] not in (
                "thinking", "redacted_thinking"):
            errs.append("thinking enabled: the assistant tool-use message of the current "
                        "turn must start with its thinking block")
    return errs


def check_chat(body: dict[str, Any]) -> list[str]:
    errs = []
    if not body.get("prompt_cache_key"):
        errs.append("no prompt_cache_key")
    pending: set[str] = set()
    for i, m in enumerate(body.get("messages") or []):
        if m["role"] == "tool":
            if m["tool_call_id"] not in pending:
                errs.append(f"messages[{i}]: tool result without its call")
            pending.discard(m["tool_call_id"])
            continue
        if pending:
            errs.append(f"messages[{i}]: tool calls {sorted(pending)} not answered")
        pending = {c["id"] for c in m.get("tool_calls") or []}
    if pending:
        errs.append("last tool calls not answered")
    return errs


def check_responses(body: dict[str, Any]) -> list[str]:
    errs = []
    if not body.get("prompt_cache_key"):
        errs.append("no prompt_cache_key")
    pending: set[str] = set()
    for i, it in enumerate(body.get("input") or []):
        kind = it.get("type", "message")
        if kind == "function_call":
            pending.add(it["call_id"])
        elif kind == "function_call_output":
            if it["call_id"] not in pending:
                errs.append(f"input[{i}]: output without its call")
            pending.discard(it["call_id"])
        elif pending:
            errs.append(f"input[{i}]: calls {sorted(pending)} not answered")
    if pending:
        errs.append("last function calls not answered")
    return errs


_USAGE_A = {"input_tokens": 3, "output_tokens": 1, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0}


def _reply(path: str, body: dict[str, Any]) -> dict[str, Any]:
    model = body.get("model", "m")
    if _QUEUE.get(path):
        return _QUEUE[path].pop(0)
    if path.endswith("/messages"):
        return {"id": "msg_1", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                "stop_sequence": None, "usage": _USAGE_A}
    if path.endswith("/chat/completions"):
        return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "ok"}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
    return {"id": "resp_1", "object": "response", "created_at": 0, "model": model,
            "status": "completed", "parallel_tool_calls": True, "tool_choice": "auto",
            "tools": [], "output": [{"type": "message", "id": "m1", "status": "completed",
                                     "role": "assistant", "content": [
                                         {"type": "output_text", "text": "ok",
                                          "annotations": []}]}],
            "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}}}


_QUEUE: dict[str, list[dict[str, Any]]] = {}


class FakeAPI:
    """``replies[path]``: canned replies served in order before the default one."""

    def __init__(self) -> None:
        self.replies = _QUEUE
        _QUEUE.clear()
        self.requests: list[tuple[str, dict[str, Any], list[str]]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                keys: list[str] = []

                def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
                    nonlocal keys
                    keys = [k for k, _ in pairs]
                    return dict(pairs)

                body = json.loads(raw, object_pairs_hook=hook)
                path = self.path
                if path.endswith("/messages"):
                    errs = check_anthropic(keys, body)
                elif path.endswith("/chat/completions"):
                    errs = check_chat(body)
                elif path.endswith("/responses"):
                    errs = check_responses(body)
                else:
                    errs = [f"unknown path {path}"]
                api.requests.append((path, body, errs))
                status, out = (400, {"type": "error", "error": {
                    "type": "invalid_request_error", "message": "; ".join(errs)}}) if errs \
                    else (200, _reply(path, body))
                data = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def fake_api() -> Iterator[FakeAPI]:
    with FakeAPI() as api:
        yield api


# --------------------------------------------------------------------------- agent server
# A scripted OpenAI-compatible model server for the framework hooks' tests (Chat
# Completions and Responses): request ``k`` (0-based) answers with a call of the tool
# ``read_log`` (arguments ``{"part": k}``) while ``k < rounds``, then with the text
# ``done``. Every request body is kept with the tool-pair check above.

_USAGE_CHAT = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
_USAGE_RESP = {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12,
               "input_tokens_details": {"cached_tokens": 0},
               "output_tokens_details": {"reasoning_tokens": 0}}


class AgentServer:
    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.requests: list[tuple[str, dict[str, Any], list[str]]] = []
        self.lock = threading.Lock()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                body = json.loads(raw)
                with srv.lock:
                    k = len(srv.requests)
                    chat = self.path.endswith("/chat/completions")
                    errs = check_chat(body) if chat else check_responses(body)
                    errs = [e for e in errs if e != "no prompt_cache_key"]  # frameworks' own
                    srv.requests.append((self.path, body, errs))
                out = srv.reply(k, body, chat)
                data = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def reply(self, k: int, body: dict[str, Any], chat: bool) -> dict[str, Any]:
        model = body.get("model", "gpt-4.1")
        call = k < self.rounds
        args = json.dumps({"part": k})
        if chat:
            msg: dict[str, Any] = {"role": "assistant", "content": None if call else "done"}
            if call:
                msg["tool_calls"] = [{"id": f"call_{k}", "type": "function",
                                      "function": {"name": "read_log", "arguments": args}}]
            return {"id": f"chatcmpl-{k}", "object": "chat.completion", "created": 0,
                    "model": model, "usage": _USAGE_CHAT,
                    "choices": [{"index": 0, "message": msg,
                                 "finish_reason": "tool_calls" if call else "stop"}]}
        item: dict[str, Any] = (
            {"type": "function_call", "id": f"fc_{k}", "call_id": f"call_{k}",
             "name": "read_log", "arguments": args, "status": "completed"} if call else
            {"type": "message", "id": f"msg_{k}", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "done", "annotations": []}]})
        return {"id": f"resp_{k}", "object": "response", "created_at": 0, "model": model,
                "status": "completed", "parallel_tool_calls": True, "tool_choice": "auto",
                "tools": [], "output": [item], "usage": _USAGE_RESP}

    def __enter__(self) -> AgentServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def agent_server() -> Iterator[Any]:
    servers: list[AgentServer] = []

    def start(rounds: int) -> AgentServer:
        s = AgentServer(rounds).__enter__()
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.__exit__()
