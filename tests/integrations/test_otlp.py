"""``ctxbudget otlp``: an app instrumented with the OTel SDK's OTLP/HTTP exporter sends its
spans to the receiver (a real ``ctxbudget otlp`` process on 127.0.0.1); ``report`` shows
them; re-sending adds nothing; malformed payloads get a 400 with a reason and nothing
already recorded is lost."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ctxbudget.adapters import from_otel
from ctxbudget.prices import default_pricebook

pytest.importorskip("opentelemetry.proto")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

ROOT = Path(__file__).resolve().parents[2]

SPANS = [  # (name, attributes): what OpenLLMetry / the OTel GenAI instrumentations set
    ("chat gpt-4o", {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
                     "gen_ai.response.model": "gpt-4o-2024-08-06",
                     "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 80,
                     "gen_ai.usage.cache_read.input_tokens": 1024,
                     "gen_ai.response.id": "chatcmpl-1",
                     "ctxbudget.task_id": "otel-task", "ctxbudget.task_type": "support"}),
    ("chat claude", {"gen_ai.provider.name": "anthropic",
                     "gen_ai.request.model": "claude-sonnet-4-5",
                     "gen_ai.usage.input_tokens": 3000, "gen_ai.usage.output_tokens": 400,
                     "gen_ai.usage.cache_creation.input_tokens": 2000,
                     "ctxbudget.task_id": "otel-task", "ctxbudget.task_type": "support"}),
    ("GET /health", {"http.request.method": "GET"}),  # no usage: skipped
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    home = tmp_path / "home"
    port = _free_port()
    env = {**os.environ, "CTXBUDGET_HOME": str(home),
           "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ctxbudget.cli.main import main; main()", "otlp",
         "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/metrics", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    _out, err = proc.communicate(timeout=5)
                    pytest.fail(f"receiver did not start: {err.decode()[-2000:]}")
                time.sleep(0.1)
        yield url, home
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def _report(home: Path) -> dict[str, Any]:
    from ctxbudget.cli.main import app

    res = CliRunner().invoke(app, ["report", "--by", "task", "--json"],
                             env={"CTXBUDGET_HOME": str(home)})
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def _metric(url: str, name: str) -> float:
    """The sum of the samples of ``name`` over all label sets."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url + "/metrics").text
    return sum(float(s.value) for fam in text_string_to_metric_families(text)
               for s in fam.samples if s.name == name)


def _tracer(url: str) -> tuple[Any, Any, Any]:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = OTLPSpanExporter(endpoint=url + "/v1/traces")
    memory = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "my-agent"}))
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    tp.add_span_processor(SimpleSpanProcessor(memory))
    return tp, exporter, memory


def _task_row(rep: dict[str, Any], task: str) -> dict[str, Any]:
    rows = rep.get("rows") or rep.get("groups") or []
    for r in rows:
        if task in json.dumps(r):
            return dict(r)
    raise AssertionError(f"{task} not in report: {json.dumps(rep)[:2000]}")


def test_otel_sdk_exporter_to_receiver_then_report(receiver: tuple[str, Path]) -> None:
    url, home = receiver
    tp, exporter, memory = _tracer(url)
    tracer = tp.get_tracer("app")
    with tracer.start_as_current_span("agent run"):
        for name, attrs in SPANS:
            with tracer.start_as_current_span(name, attributes=attrs):
                pass
    tp.force_flush()
    assert _metric(url, "ctxbudget_otlp_spans_recorded_total") == 2
    assert _metric(url, "ctxbudget_otlp_spans_skipped_total") == 2  # /health + agent run

    rep = _report(home)
    row = _task_row(rep, "otel-task")
    want = [from_otel(a) for _, a in SPANS[:2]]
    pb = default_pricebook()
    cost = sum((pb.cost(w.usage, m, p).total_usd for w, m, p in zip(
        want, ["gpt-4o-2024-08-06", "claude-sonnet-4-5"], ["openai", "anthropic"],
        strict=True)), Decimal(0))
    assert row["calls"] == 2
    assert Decimal(str(row["cost_usd"])) == cost
    assert row["cache_read_tokens"] == 1024
    assert row["cache_write_5m_tokens"] == 2000

    # the same spans again (an exporter retry, a replayed batch): nothing is added
    from opentelemetry.sdk.trace.export import SpanExportResult

    assert exporter.export(memory.get_finished_spans()) == SpanExportResult.SUCCESS
    assert _metric(url, "ctxbudget_otlp_spans_duplicate_total") == 2
    assert _task_row(_report(home), "otel-task")["calls"] == 2

    # malformed payloads: 400 with the reason; what was recorded stays
    r = httpx.post(url + "/v1/traces", content=b"\xff\x00garbage",
                   headers={"content-type": "application/x-protobuf"})
    assert r.status_code == 400
    assert b"ExportTraceServiceRequest" in r.content
    r = httpx.post(url + "/v1/traces", content=b'{"resourceSpans": 5}',
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and "resourceSpans: expected a list" in r.json()["message"]
    r = httpx.post(url + "/v1/traces", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not JSON" in r.json()["message"]
    r = httpx.post(url + "/v1/traces", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert _metric(url, "ctxbudget_otlp_bad_requests_total") == 4
    assert _task_row(_report(home), "otel-task")["calls"] == 2
    # the receiver's call metrics moved with the calls
    assert _metric(url, "ctxbudget_calls_total") == 2
    tp.shutdown()


def _json_span(span_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
    def val(v: Any) -> dict[str, Any]:
        return {"intValue": str(v)} if isinstance(v, int) else {"stringValue": str(v)}

    return {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": span_id, "name": "chat",
            "startTimeUnixNano": "1764547200000000000", "endTimeUnixNano": "1764547201500000000",
            "attributes": [{"key": k, "value": val(v)} for k, v in attrs.items()]}


def test_json_partial_success(receiver: tuple[str, Path]) -> None:
    url, home = receiver
    good = dict(SPANS[0][1], **{"ctxbudget.task_id": "json-task"})
    bad = dict(good, **{"gen_ai.usage.cache_read.input_tokens": 5000})  # cached > input
    doc = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [
        {"scope": {"name": "openllmetry"},
         "spans": [_json_span("eee19b7ec3c1b174", good), _json_span("eee19b7ec3c1b175", bad)]}]}]}
    r = httpx.post(url + "/v1/traces", json=doc)
    assert r.status_code == 200
    ps = r.json()["partialSuccess"]
    assert ps["rejectedSpans"] == 1
    assert "spans[1]" in ps["errorMessage"] and "cache_read" in ps["errorMessage"]
    row = _task_row(_report(home), "json-task")
    assert row["calls"] == 1
    r = httpx.post(url + "/v1/traces", json=doc)  # re-sent: the good span is a duplicate
    assert _metric(url, "ctxbudget_otlp_spans_duplicate_total") == 1
    assert _task_row(_report(home), "json-task")["calls"] == 1


def test_pydantic_ai_instrumentation_to_receiver(receiver: tuple[str, Path], data_dir: Path
                                                 ) -> None:
    """pydantic-ai's own OTel instrumentation (what Logfire shows), exported over OTLP to
    the receiver: the recorded buckets equal our adapter's on the model's response."""
    pytest.importorskip("pydantic_ai")
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "track"))
    import httpx2
    from fakeapi import FakeAPI
    from pydantic_ai import Agent, InstrumentationSettings
    from pydantic_ai.capabilities.instrumentation import Instrumentation
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    from ctxbudget.adapters import from_openai_chat

    url, home = receiver
    tp, _, _ = _tracer(url)
    with FakeAPI(data_dir / "api-responses") as api:
        body = api.recorded("openai-chat")[1]  # the cache-read call
        api.respond_next("openai-chat", body)
        # no pooled connection: run_sync's event loop ends with the run
        model = OpenAIChatModel(body["model"], provider=OpenAIProvider(
            base_url=api.url + "/v1", api_key="test",
            http_client=httpx2.AsyncClient(limits=httpx2.Limits(max_keepalive_connections=0))))
        agent = Agent(model, capabilities=[Instrumentation(
            settings=InstrumentationSettings(tracer_provider=tp))])
        asyncio.run(agent.run("hi"))
    tp.force_flush()
    tp.shutdown()
    assert _metric(url, "ctxbudget_otlp_spans_recorded_total") == 1
    rep = _report(home)
    rows = rep.get("rows") or rep.get("groups") or []
    assert len(rows) == 1
    row = dict(rows[0])
    want = from_openai_chat(body).usage
    assert row["calls"] == 1
    assert row["input_tokens"] == want.input_tokens
    assert row["cache_read_tokens"] == want.cache_read_tokens
    assert row["output_tokens"] == want.output_tokens
