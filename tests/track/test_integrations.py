"""LiteLLM callback and OpenTelemetry span processor; thread/async context propagation."""

from __future__ import annotations

import asyncio
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from track_helpers import recorded

import ctxbudget
import ctxbudget.track as tr
from ctxbudget.adapters import from_anthropic
from ctxbudget.track.litellm import litellm_usage, record_litellm_event
from ctxbudget.track.otel import record_span
from ctxbudget.usage import Usage

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _litellm_response(body: dict) -> SimpleNamespace:
    """What LiteLLM hands its callbacks for the recorded Anthropic body: OpenAI-style usage
    whose prompt_tokens include cache reads and writes (litellm's anthropic transformation)."""
    u = body["usage"]
    prompt = u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
    usage = SimpleNamespace(
        prompt_tokens=prompt, completion_tokens=u["output_tokens"], total_tokens=0,
        prompt_tokens_details=SimpleNamespace(cached_tokens=u["cache_read_input_tokens"],
                                              cache_creation_tokens=None),
        completion_tokens_details=None,
        cache_creation_input_tokens=u["cache_creation_input_tokens"],
        cache_read_input_tokens=u["cache_read_input_tokens"])
    return SimpleNamespace(id=body["id"], model=body["model"], usage=usage)


def test_litellm_event_gives_the_adapter_buckets(data_dir: Path, spool: Path) -> None:
    from fakeapi import _load

    bodies = _load(data_dir / "api-responses")["anthropic"]
    kwargs = {"model": "anthropic/claude-sonnet-4-5",
              "litellm_params": {"custom_llm_provider": "anthropic", "metadata": {}}}
    with ctxbudget.task("lite", type="rag") as t:
        for b in bodies:
            record_litellm_event(kwargs, _litellm_response(b), T0, T0 + timedelta(seconds=2))
    record_litellm_event({"model": "gpt-4o", "exception": ValueError("boom"),
                          "litellm_params": {"metadata": {"ctxbudget_task_id": "from-meta"}}},
                         None, T0, T0, failed=True)
    calls, _ = recorded(spool)
    assert [c.usage for c in calls[:-1]] == [from_anthropic(b).usage for b in bodies]
    assert all(c.source == "litellm" and c.provider == "anthropic" and c.task_id == "lite"
               and c.latency_ms == 2000.0 and c.ts == T0 for c in calls[:-1])
    assert calls[-1].status == "error" and calls[-1].task_id == "from-meta"
    assert calls[-1].meta == {"error": "ValueError"}
    assert t.calls == len(bodies)


def test_litellm_usage_rejects_inconsistent_counts(spool: Path) -> None:
    bad = SimpleNamespace(usage=SimpleNamespace(prompt_tokens=5, completion_tokens=1,
                                                cache_read_input_tokens=10), id="x", model="m")
    before = tr.stats()["tracking_errors"]
    record_litellm_event({"model": "m"}, bad, T0, T0)
    assert tr.stats()["tracking_errors"] == before + 1
    assert litellm_usage(bad.usage)["prompt_tokens_details"]["cached_tokens"] == 10
    (c,), _ = recorded(spool)
    assert c.usage == Usage() and c.meta == {"usage_missing": True}


def test_litellm_callback_class(spool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price fetch at import
    pytest.importorskip("litellm.integrations.custom_logger")
    from litellm.integrations.custom_logger import CustomLogger

    cb = tr.litellm_callback()
    assert isinstance(cb, CustomLogger)
    kwargs: dict = {"model": "gpt-4o", "litellm_params": {"custom_llm_provider": "openai"}}
    with ctxbudget.task("cb-task"):
        cb.log_pre_api_call("gpt-4o", [], kwargs)  # LiteLLM calls this on the caller's thread
    resp = SimpleNamespace(id="chatcmpl-1", model="gpt-4o", usage=SimpleNamespace(
        prompt_tokens=100, completion_tokens=7,
        prompt_tokens_details=SimpleNamespace(cached_tokens=60)))
    # success callbacks run in LiteLLM's thread pool, outside the task's context
    th = threading.Thread(target=cb.log_success_event, args=(kwargs, resp, T0, T0))
    th.start()
    th.join()
    (c,), _ = recorded(spool)
    assert c.task_id == "cb-task"
    assert c.usage == Usage(input_tokens=40, cache_read_tokens=60, output_tokens=7)


def test_otel_record_span_duck_typed(spool: Path) -> None:
    span = SimpleNamespace(
        name="chat gpt-4o", start_time=1_700_000_000_000_000_000,
        end_time=1_700_000_000_250_000_000, status=SimpleNamespace(status_code=None),
        attributes={"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.id": "chatcmpl-9", "gen_ai.usage.input_tokens": 120,
                    "gen_ai.usage.cache_read.input_tokens": 100,
                    "gen_ai.usage.output_tokens": 9, "ctxbudget.task_id": "span-task"})
    assert record_span(span) is True
    assert record_span(SimpleNamespace(attributes={"http.method": "GET"})) is False
    (c,), _ = recorded(spool)
    assert (c.provider, c.model, c.request_id, c.task_id, c.source) == \
        ("openai", "gpt-4o", "chatcmpl-9", "span-task", "otel")
    assert c.usage == Usage(input_tokens=20, cache_read_tokens=100, output_tokens=9)
    assert c.latency_ms == pytest.approx(250.0)


def test_otel_span_processor_with_sdk(spool: Path) -> None:
    pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Status, StatusCode

    provider = TracerProvider()
    provider.add_span_processor(tr.otel_span_processor())
    tracer = provider.get_tracer("test")
    with ctxbudget.task("otel-task"):
        with tracer.start_as_current_span("chat claude") as span:
            span.set_attributes({"gen_ai.provider.name": "anthropic",
                                 "gen_ai.response.model": "claude-sonnet-4-5-20250929",
                                 "gen_ai.usage.input_tokens": 1532,
                                 "gen_ai.usage.cache_read.input_tokens": 1111,
                                 "gen_ai.usage.cache_creation.input_tokens": 418,
                                 "gen_ai.usage.output_tokens": 33})
        with tracer.start_as_current_span("failed") as span:
            span.set_attributes({"gen_ai.usage.input_tokens": 1, "gen_ai.usage.output_tokens": 0})
            span.set_status(Status(StatusCode.ERROR))
        with tracer.start_as_current_span("not genai"):
            pass
    provider.shutdown()
    calls, _ = recorded(spool)
    assert len(calls) == 2 and all(c.task_id == "otel-task" for c in calls)
    assert calls[0].usage == Usage(input_tokens=3, cache_read_tokens=1111,
                                   cache_write_5m_tokens=418, output_tokens=33)
    assert calls[1].status == "error"


# ----------------------------------------------------------------------------- context


def test_task_outcomes_and_records(spool: Path) -> None:
    with ctxbudget.task("ok", type="support", session_id="s1") as t:
        assert ctxbudget.current_task() is t
        with ctxbudget.task("child") as c:
            assert (c.parent, c.session_id, c.task_type) == (t, "s1", "support")
            c.outcome = "partial"
    with pytest.raises(KeyError), ctxbudget.task("bad") as b:
        b.outcome = "success"
        raise KeyError("x")
    assert b.outcome == "failure" and ctxbudget.current_task() is None
    with pytest.raises(ValueError, match="outcome must be one of"):
        t.outcome = "great"  # type: ignore[assignment]
    _, tasks = recorded(spool)
    got = {x.task_id: (x.outcome, x.parent_id, x.session_id) for x in tasks}
    assert got == {"ok": ("success", None, "s1"), "child": ("partial", "ok", "s1"),
                   "bad": ("failure", None, None)}
    assert all(x.started_at and x.ended_at and x.started_at <= x.ended_at for x in tasks)


def test_decorator_sync_and_async(spool: Path) -> None:
    @ctxbudget.task(type="job")
    def job(n: int) -> str:
        t = ctxbudget.current_task()
        assert t is not None
        return t.task_id

    @ctxbudget.task("async-job")
    async def ajob() -> str | None:
        await asyncio.sleep(0)
        t = ctxbudget.current_task()
        return t.task_id if t else None

    ids = {job(1), job(2)}
    assert len(ids) == 2  # a fresh id per invocation
    assert asyncio.run(ajob()) == "async-job"
    _, tasks = recorded(spool)
    assert sorted(x.task_type or "" for x in tasks) == ["", "job", "job"]


def test_context_crosses_threads_and_asyncio_tasks() -> None:
    seen: dict[str, object] = {}
    with ctxbudget.task("root") as root:
        plain = threading.Thread(target=lambda: seen.__setitem__("plain",
                                                                 ctxbudget.current_task()))
        plain.start()
        plain.join()
        with tr.TaskThreadPoolExecutor(max_workers=2) as ex:
            seen["pool"] = list(ex.map(lambda _: ctxbudget.current_task(), range(4)))
        wrapped = tr.propagate(ctxbudget.current_task)
        th = threading.Thread(target=lambda: seen.__setitem__("propagate", wrapped()))
        th.start()
        th.join()

        async def main() -> list[object]:
            async def sub() -> object:
                await asyncio.sleep(0)
                return ctxbudget.current_task()
            return list(await asyncio.gather(sub(), sub(), asyncio.to_thread(
                ctxbudget.current_task)))

        seen["asyncio"] = asyncio.run(main())
    assert seen["plain"] is None  # documented: plain threads start with an empty context
    assert seen["pool"] == [root] * 4
    assert seen["propagate"] is root
    assert seen["asyncio"] == [root] * 3


def test_import_ctxbudget_stays_light() -> None:
    import subprocess

    code = ("import sys, ctxbudget; ctxbudget.task; ctxbudget.track; "
            "bad = [m for m in ('anthropic', 'openai', 'litellm', 'opentelemetry', 'duckdb') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
    assert callable(ctxbudget.track) and ctxbudget.track.flush is tr.flush
