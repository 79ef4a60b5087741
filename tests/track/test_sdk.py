"""The real anthropic / openai SDK clients, tracked, against the local fake API.

Acceptance: the tracked buckets equal the adapters' on the same recorded bodies
(sync, async and streaming)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fakeapi import FakeAPI
from track_helpers import closing, recorded

import ctxbudget
import ctxbudget.track as tr
from ctxbudget.adapters import from_anthropic, from_openai_chat, from_openai_responses

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

MSG = [{"role": "user", "content": "Please explain what Python is."}]
A_MODEL = "claude-sonnet-4-5"
O_MODEL = "gpt-5.6-sol"


def _clients(api: FakeAPI, is_async: bool = False) -> tuple[Any, Any]:
    if is_async:
        a = anthropic.AsyncAnthropic(base_url=api.url, api_key="test", max_retries=0)
        o = openai.AsyncOpenAI(base_url=api.url + "/v1", api_key="test", max_retries=0)
    else:
        a = closing(anthropic.Anthropic(base_url=api.url, api_key="test", max_retries=0))
        o = closing(openai.OpenAI(base_url=api.url + "/v1", api_key="test", max_retries=0))
    return ctxbudget.track(a), ctxbudget.track(o)


def _expected(api: FakeAPI) -> dict[str, list[Any]]:
    return {
        "anthropic": [from_anthropic(b) for b in api.recorded("anthropic")],
        "openai-chat": [from_openai_chat(b) for b in api.recorded("openai-chat")],
        "openai-responses": [from_openai_responses(b) for b in api.recorded("openai-responses")],
    }


def _sync_round(a: Any, o: Any, n: int, stream: bool) -> None:
    for _ in range(n):
        if stream:
            for _ev in a.messages.create(model=A_MODEL, max_tokens=64, messages=MSG, stream=True):
                pass
            for _ch in o.chat.completions.create(model=O_MODEL, messages=MSG, stream=True,
                                                 stream_options={"include_usage": True}):
                pass
            for _ev in o.responses.create(model=O_MODEL, input="hi", stream=True):
                pass
        else:
            a.messages.create(model=A_MODEL, max_tokens=64, messages=MSG)
            o.chat.completions.create(model=O_MODEL, messages=MSG)
            o.responses.create(model=O_MODEL, input="hi")


async def _async_round(a: Any, o: Any, n: int, stream: bool) -> None:
    for _ in range(n):
        if stream:
            s = await a.messages.create(model=A_MODEL, max_tokens=64, messages=MSG, stream=True)
            async for _ev in s:
                pass
            s = await o.chat.completions.create(model=O_MODEL, messages=MSG, stream=True,
                                                stream_options={"include_usage": True})
            async for _ch in s:
                pass
            s = await o.responses.create(model=O_MODEL, input="hi", stream=True)
            async for _ev in s:
                pass
        else:
            await a.messages.create(model=A_MODEL, max_tokens=64, messages=MSG)
            await o.chat.completions.create(model=O_MODEL, messages=MSG)
            await o.responses.create(model=O_MODEL, input="hi")


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_tracked_buckets_equal_adapters(api: FakeAPI, spool: Path, is_async: bool,
                                        stream: bool) -> None:
    expected = _expected(api)
    n = max(len(v) for v in expected.values())
    errors_before = tr.stats()["tracking_errors"]

    async def run_async() -> None:
        a, o = _clients(api, True)
        async with a, o:
            await _async_round(a, o, n, stream)

    with ctxbudget.task("acc", type="acceptance") as t:
        if is_async:
            asyncio.run(run_async())
        else:
            a, o = _clients(api)
            with a, o:
                _sync_round(a, o, n, stream)
    calls, tasks = recorded(spool)
    assert len(calls) == 3 * n
    by_api = {"anthropic": [c for c in calls if c.provider == "anthropic"],
              "openai-chat": [c for c in calls if c.request_id and
                              c.request_id.startswith("chatcmpl")],
              "openai-responses": [c for c in calls if c.request_id and
                                   c.request_id.startswith("resp_")]}
    for kind, exp in expected.items():
        got = by_api[kind]
        assert len(got) == n, kind
        for i, c in enumerate(got):
            e = exp[i % len(exp)]
            assert c.usage == e.usage, (kind, i)
            assert c.request_id == e.request_id
            assert c.model == e.model
            assert c.input_inclusive == e.input_inclusive
            assert c.status == "ok"
            assert c.task_id == "acc" and c.task_type == "acceptance"
            assert c.latency_ms is not None and c.latency_ms >= 0
            assert bool(c.meta and c.meta.get("stream")) == stream
            assert not (c.meta and c.meta.get("stream_incomplete"))
    assert [x.task_id for x in tasks] == ["acc"]
    assert t.calls == 3 * n
    assert t.usage == sum((c.usage for c in calls), ctxbudget.Usage())
    assert tr.stats()["tracking_errors"] == errors_before


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_anthropic_stream_helper(api: FakeAPI, spool: Path, is_async: bool) -> None:
    exp = _expected(api)["anthropic"]

    async def run_async() -> Any:
        a, o = _clients(api, True)
        async with a, o, a.messages.stream(model=A_MODEL, max_tokens=64, messages=MSG) as s:
            return await s.get_final_message()

    if is_async:
        final = asyncio.run(run_async())
    else:
        a, _ = _clients(api)
        with a.messages.stream(model=A_MODEL, max_tokens=64, messages=MSG) as s:
            final = s.get_final_message()
    (c,), _ = recorded(spool)
    assert c.usage == exp[0].usage == from_anthropic(final).usage
    assert c.request_id == exp[0].request_id and c.meta and c.meta["stream"] is True


def test_anthropic_full_delta_usage(data_dir: Path, spool: Path) -> None:
    """message_delta repeating every cumulative count (the current API) gives the same buckets."""
    with FakeAPI(data_dir / "api-responses", anthropic_delta_usage="full") as api:
        a, _ = _clients(api)
        for _ in range(2):
            for _ev in a.messages.create(model=A_MODEL, max_tokens=64, messages=MSG, stream=True):
                pass
        exp = [from_anthropic(b).usage for b in api.recorded("anthropic")]
    calls, _ = recorded(spool)
    assert [c.usage for c in calls] == exp


def test_api_error_is_recorded_and_reraised_unchanged(api: FakeAPI, spool: Path) -> None:
    a, o = _clients(api)
    api.fail_next("anthropic", 529)
    api.fail_next("openai-chat", 500)
    with pytest.raises(anthropic.InternalServerError) as ei:
        a.messages.create(model=A_MODEL, max_tokens=64, messages=MSG)
    assert ei.value.status_code == 529
    with pytest.raises(openai.InternalServerError):
        o.chat.completions.create(model=O_MODEL, messages=MSG)
    calls, _ = recorded(spool)
    assert [c.status for c in calls] == ["error", "error"]
    assert calls[0].meta == {"error": "OverloadedError", "http_status": 529}
    assert calls[1].meta is not None and calls[1].meta["http_status"] == 500
    assert all(c.usage == ctxbudget.Usage() for c in calls)


def test_ledger_kwarg_is_stripped_and_recorded(api: FakeAPI, spool: Path) -> None:
    class Ledger:
        components: ClassVar[dict[str, int]] = {"system": 10, "history": 200, "user": 5}
        prefix_fingerprint = ("abc", "def")
        expected_cache_read_tokens = 210

    a, o = _clients(api)
    a.messages.create(model=A_MODEL, max_tokens=64, messages=MSG, ctxbudget_ledger=Ledger())
    with tr.use_ledger(Ledger()):
        o.responses.create(model=O_MODEL, input="hi")
    o.responses.create(model=O_MODEL, input="hi")
    calls, _ = recorded(spool)
    for c in calls[:2]:
        assert c.components == Ledger.components
        assert c.prefix_fingerprint == ("abc", "def")
        assert c.expected_cache_read_tokens == 210
    assert calls[2].components is None
    assert all("ctxbudget_ledger" not in body for _, _, body in api.requests)


def test_chat_stream_without_include_usage(api: FakeAPI, spool: Path) -> None:
    _, o = _clients(api)
    before = tr.stats()["usage_missing"]
    for _ch in o.chat.completions.create(model=O_MODEL, messages=MSG, stream=True):
        pass
    (c,), _ = recorded(spool)
    assert c.meta is not None
    assert c.meta["usage_missing"] is True and "stream_incomplete" not in c.meta
    # recorded (and charged) at its reservation: the counted prompt + the output cap
    est = c.meta["estimate"]
    assert c.meta["usage_estimated"] == "reservation"
    assert c.usage.prompt_tokens == est["prompt_tokens"] > 0
    assert c.usage.output_tokens == est["output_tokens"] == 4096
    assert tr.stats()["usage_missing"] == before + 1


def test_stream_closed_early_is_recorded_incomplete(api: FakeAPI, spool: Path) -> None:
    a, _ = _clients(api)
    with a.messages.create(model=A_MODEL, max_tokens=64, messages=MSG, stream=True) as s:
        for ev in s:
            if ev.type == "content_block_delta":
                break
    (c,), _ = recorded(spool)
    assert c.meta is not None and c.meta["stream_incomplete"] is True
    exp = from_anthropic(api.recorded("anthropic")[0]).usage
    assert c.usage.input_tokens == exp.input_tokens  # known from message_start
    assert c.usage.cache_read_tokens == exp.cache_read_tokens


def test_tracking_failure_never_reaches_the_app(api: FakeAPI, spool: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import ctxbudget.track._instrument as inst

    def broken(raw: Any) -> Any:
        raise RuntimeError("adapter bug")

    monkeypatch.setitem(inst._ADAPTERS, "anthropic", broken)
    a, _ = _clients(api)
    before = tr.stats()["tracking_errors"]
    msg = a.messages.create(model=A_MODEL, max_tokens=64, messages=MSG)
    assert msg.usage.output_tokens == api.recorded("anthropic")[0]["usage"]["output_tokens"]
    assert tr.stats()["tracking_errors"] == before + 1
    (c,), _ = recorded(spool)
    assert c.meta == {"usage_missing": True}


def test_track_is_per_instance_and_idempotent(api: FakeAPI, spool: Path) -> None:
    tracked = closing(anthropic.Anthropic(base_url=api.url, api_key="test", max_retries=0))
    plain = closing(anthropic.Anthropic(base_url=api.url, api_key="test", max_retries=0))
    assert ctxbudget.track(tracked) is tracked
    ctxbudget.track(tracked)  # second call must not double-wrap
    tracked.messages.create(model=A_MODEL, max_tokens=64, messages=MSG)
    plain.messages.create(model=A_MODEL, max_tokens=64, messages=MSG)
    calls, _ = recorded(spool)
    assert len(calls) == 1
    with pytest.raises(TypeError, match="supports anthropic and openai"):
        ctxbudget.track(object())


def test_parse_and_stream_helpers_record_exactly_once(api: FakeAPI, spool: Path) -> None:
    """parse() posts directly and .stream() helpers go through create(): each call must be
    recorded exactly once, with the adapters' buckets."""
    a, o = _clients(api)
    chat = o.chat.completions.parse(model=O_MODEL, messages=MSG)
    resp = o.responses.parse(model=O_MODEL, input="hi")
    msg = a.messages.parse(model=A_MODEL, max_tokens=64, messages=MSG)
    with o.chat.completions.stream(model=O_MODEL, messages=MSG,
                                   stream_options={"include_usage": True}) as s:
        chat2 = s.get_final_completion()
    with o.responses.stream(model=O_MODEL, input="hi") as s:
        resp2 = s.get_final_response()
    calls, _ = recorded(spool)
    assert [c.request_id for c in calls] == [chat.id, resp.id, msg.id, chat2.id, resp2.id]
    assert [c.usage for c in calls] == [
        from_openai_chat(chat).usage, from_openai_responses(resp).usage,
        from_anthropic(msg).usage, from_openai_chat(chat2).usage,
        from_openai_responses(resp2).usage]
    assert [bool(c.meta and c.meta.get("stream")) for c in calls] == [False] * 3 + [True] * 2


@pytest.mark.parametrize("kind", ["anthropic", "openai-chat"])
def test_mid_stream_error_is_recorded_and_reraised(api: FakeAPI, spool: Path, kind: str) -> None:
    a, o = _clients(api)
    api.fail_stream_next(kind, after_events=2)
    with pytest.raises(anthropic.APIError if kind == "anthropic" else openai.APIError):
        if kind == "anthropic":
            for _ev in a.messages.create(model=A_MODEL, max_tokens=64, messages=MSG, stream=True):
                pass
        else:
            for _ch in o.chat.completions.create(model=O_MODEL, messages=MSG, stream=True,
                                                 stream_options={"include_usage": True}):
                pass
    (c,), _ = recorded(spool)
    assert c.status == "error" and c.meta is not None and c.meta["stream"] is True
    if kind == "anthropic":  # message_start had arrived: its input/cache counts are kept
        exp = from_anthropic(api.recorded("anthropic")[0]).usage
        assert c.usage.cache_read_tokens == exp.cache_read_tokens
