"""The prefix fast path for long Anthropic bodies gives exactly what decoding the whole
body gives, whatever a client does between two requests."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctxbudget.budgets import RequestPricer
from ctxbudget.budgets._prefix import MIN_BYTES, common_prefix
from ctxbudget.errors import InputFormatError


def _message(i: int, role: str, size: int, cc: str | None = None) -> dict[str, Any]:
    if role == "assistant":
        content: list[dict[str, Any]] = [
            {"type": "text", "text": f"step {i}: " + "reading the code. " * (size // 20)},
            {"type": "tool_use", "id": f"tu{i}", "name": "Read", "input": {"path": f"/f{i}"}}]
    else:
        content = [{"type": "tool_result", "tool_use_id": f"tu{i - 1}",
                    "content": f"line {i}\n" + "def f(x):\n    return x + 1\n" * (size // 28)}]
    if cc:
        content[-1]["cache_control"] = {"type": "ephemeral", **({"ttl": "1h"} if cc == "1h"
                                                              else {})}
    return {"role": role, "content": content}


def _body(msgs: list[dict[str, Any]], *, order: str, extra: dict[str, Any],
          sep: tuple[str, str]) -> bytes:
    fields: dict[str, Any] = {
        "model": "claude-sonnet-4-5", "max_tokens": 8000, "stream": True,
        "metadata": {"user_id": "user_x_account__session_abc"},
        "system": [{"type": "text", "text": "You are a coding agent. " * 60,
                    "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "tools": [{"name": f"T{k}", "description": "does things " * 30,
                   "input_schema": {"type": "object"}} for k in range(6)],
        **extra}
    keys = list(fields)
    if order == "messages-first":
        keys = ["model", "messages", *[k for k in keys if k != "model"]]
    elif order == "messages-last":
        keys = [*keys, "messages"]
    else:
        keys = ["model", "max_tokens", "messages", *[k for k in keys
                                                     if k not in ("model", "max_tokens")]]
    d = {k: (msgs if k == "messages" else fields[k]) for k in keys}
    return json.dumps(d, separators=sep).encode()


def _same(fast: RequestPricer, whole: RequestPricer, body: bytes) -> None:
    try:
        want = whole.estimate(body, "anthropic", provider="anthropic")
    except InputFormatError as exc:
        with pytest.raises(InputFormatError) as got:
            fast.estimate(body, "anthropic", provider="anthropic")
        assert str(got.value) == str(exc)
        return
    assert fast.estimate(body, "anthropic", provider="anthropic") == want


EDITS = ("append", "append", "append", "move-breakpoint", "edit-early", "truncate",
         "top-cache", "max-tokens", "garbage-tail", "repeat-key", "same")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1),
       order=st.sampled_from(["messages-first", "messages-last", "messages-middle"]),
       sep=st.sampled_from([(",", ":"), (", ", ": ")]),
       edits=st.lists(st.sampled_from(EDITS), min_size=4, max_size=10))
def test_prefix_path_equals_whole_decode(seed: int, order: str, sep: tuple[str, str],
                                         edits: list[str]) -> None:
    rnd = random.Random(seed)
    fast, whole = RequestPricer(), RequestPricer(prefix_bytes=0)
    msgs = [_message(i, "user" if i % 2 == 0 else "assistant", rnd.randint(200, 3000))
            for i in range(30)]
    msgs[-1] = _message(29, "assistant", 500, cc="5m")
    extra: dict[str, Any] = {}
    body = _body(msgs, order=order, extra=extra, sep=sep)
    assert len(body) >= MIN_BYTES
    _same(fast, whole, body)
    n = len(msgs)
    for step, edit in enumerate(edits):
        if edit == "append":
            for _ in range(rnd.randint(1, 3)):
                msgs.append(_message(n, "user" if n % 2 == 0 else "assistant",
                                     rnd.randint(100, 4000), cc=rnd.choice([None, "5m", "1h"])))
                n += 1
        elif edit == "move-breakpoint":
            for m in msgs:
                for b in m["content"]:
                    b.pop("cache_control", None)
            msgs[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
        elif edit == "edit-early":
            k = rnd.randrange(len(msgs))
            msgs[k] = _message(1000 + step, msgs[k]["role"], rnd.randint(100, 2000))
        elif edit == "truncate" and len(msgs) > 4:
            del msgs[rnd.randint(3 * len(msgs) // 4, len(msgs) - 1):]
        elif edit == "top-cache":
            if "cache_control" in extra:
                del extra["cache_control"]
            else:
                extra["cache_control"] = {"type": "ephemeral", "ttl": rnd.choice(["1h", "5m"])}
        elif edit == "max-tokens":
            extra["max_tokens"] = rnd.choice([None, 1, 64000])
        body = _body(msgs, order=order, extra=extra, sep=sep)
        if edit == "garbage-tail":
            body = body[:-1] + b',"x": }'
        elif edit == "repeat-key":  # a second messages key after the array: last one wins
            body = body[:-1] + b',"messages":[{"role":"user","content":"only me"}]}'
        _same(fast, whole, body)


@pytest.mark.parametrize("order", ["messages-first", "messages-last", "messages-middle"])
def test_growing_session_counts_only_new_blocks(order: str) -> None:
    p, whole = RequestPricer(), RequestPricer(prefix_bytes=0)
    msgs = [_message(i, "user" if i % 2 == 0 else "assistant", 2000) for i in range(40)]
    p.estimate(_body(msgs, order=order, extra={}, sep=(",", ":")), "anthropic")
    assert p.prefix is not None
    for i in range(40, 46):
        msgs.append(_message(i, "user" if i % 2 == 0 else "assistant", 2000))
        misses, hits = p.cache.misses, p.prefix.hits
        body = _body(msgs, order=order, extra={}, sep=(",", ":"))
        est = p.estimate(body, "anthropic")
        assert p.prefix.hits == hits + 1 and p.cache.misses == misses + 1
        assert len(est.fingerprint) == 6 + 1 + len(msgs)
        assert est == whole.estimate(body, "anthropic")


def test_common_prefix() -> None:
    a = bytes(range(256)) * 1000
    for k in (0, 1, 65535, 65536, 65537, 200_000, len(a) - 1):
        b = a[:k] + bytes([(a[k] + 1) % 256]) + a[k + 1:]
        assert common_prefix(a, b) == k
    assert common_prefix(a, a) == len(a) and common_prefix(a, a[:10]) == 10
