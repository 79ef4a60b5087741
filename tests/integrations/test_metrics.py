"""``ctxbudget.metrics``: /metrics scraped and parsed by Prometheus' text-format parser moves
with the tracked calls (spend, tokens per bucket, cache hit ratio, blocked calls per task
type and model); the OTel instruments report the same figures."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from fakeapi import FakeAPI
from track_helpers import closing

import ctxbudget
import ctxbudget.metrics as cm
from ctxbudget.adapters import from_openai_chat
from ctxbudget.errors import BudgetExceeded
from ctxbudget.prices import default_pricebook

prom = pytest.importorskip("prometheus_client")
openai = pytest.importorskip("openai")

MSG = [{"role": "user", "content": "hi"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def installed() -> Iterator[tuple[cm.CallMetrics, str]]:
    port = _free_port()
    m = cm.install(port=port, registry=prom.CollectorRegistry())
    yield m, f"http://127.0.0.1:{port}/metrics"
    cm.uninstall()


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): float(s.value)
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _get(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
         **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(dict(ls).get(k) == x for k, x in labels.items()))


def test_prometheus_counters_move_with_calls(installed: tuple[cm.CallMetrics, str],
                                             api: FakeAPI, spool: Path) -> None:
    _, url = installed
    body = api.recorded("openai-chat")[0]
    model = body["model"]
    client = ctxbudget.track(closing(openai.OpenAI(base_url=api.url + "/v1", api_key="t",
                                                   max_retries=0)))
    before = _scrape(url)
    assert _get(before, "ctxbudget_calls_total") == 0
    for _ in range(2):
        api.respond_next("openai-chat", body)
    with ctxbudget.task("m-1", type="support"):
        client.chat.completions.create(model=model, messages=MSG)
    one = _scrape(url)
    with ctxbudget.task("m-2", type="support"):
        client.chat.completions.create(model=model, messages=MSG)
    two = _scrape(url)

    want = from_openai_chat(body).usage
    price = default_pricebook().cost(want, model, "openai").total_usd
    lab = {"task_type": "support", "model": model}
    assert _get(one, "ctxbudget_calls_total", **lab, status="ok") == 1
    assert _get(two, "ctxbudget_calls_total", **lab, status="ok") == 2
    assert Decimal(str(_get(two, "ctxbudget_spend_usd_total", **lab))) \
        .quantize(Decimal("1e-9")) == (2 * price).quantize(Decimal("1e-9"))
    assert _get(two, "ctxbudget_tokens_total", **lab, bucket="input") == 2 * want.input_tokens
    assert _get(two, "ctxbudget_tokens_total", **lab, bucket="cache_read") \
        == 2 * want.cache_read_tokens
    assert _get(two, "ctxbudget_tokens_total", **lab, bucket="output") == 2 * want.output_tokens
    assert _get(two, "ctxbudget_cache_hit_ratio", **lab) == pytest.approx(
        want.cache_read_tokens / want.prompt_tokens)

    # a budget blocks the second call of a task: counted per task type and model
    api.respond_next("openai-chat", body)
    with pytest.raises(BudgetExceeded), ctxbudget.task("m-3", type="capped", max_calls=1):
        client.chat.completions.create(model=model, messages=MSG)
        client.chat.completions.create(model=model, messages=MSG)
    three = _scrape(url)
    assert _get(three, "ctxbudget_blocked_calls_total", task_type="capped", model=model) == 1
    assert _get(three, "ctxbudget_calls_total", task_type="capped") == 1


def test_unpriced_model_is_not_zero_dollars(installed: tuple[cm.CallMetrics, str]) -> None:
    from datetime import UTC, datetime

    from ctxbudget.usage import Call, Usage

    m, url = installed
    m.observe(Call(ts=datetime.now(UTC), provider="acme", model="no-such-model",
                   usage=Usage(input_tokens=10, output_tokens=2), task_type="t"))
    s = _scrape(url)
    assert _get(s, "ctxbudget_unpriced_calls_total", model="no-such-model") == 1
    assert _get(s, "ctxbudget_spend_usd_total", model="no-such-model") == 0
    assert not any(n == "ctxbudget_spend_usd_total" and dict(ls).get("model") == "no-such-model"
                   for (n, ls) in s)


def test_otel_metrics(api: FakeAPI, spool: Path) -> None:
    pytest.importorskip("opentelemetry.sdk.metrics")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    m = cm.install_otel(MeterProvider(metric_readers=[reader]))
    try:
        body = api.recorded("openai-chat")[0]
        api.respond_next("openai-chat", body)
        client = ctxbudget.track(closing(openai.OpenAI(base_url=api.url + "/v1", api_key="t",
                                                       max_retries=0)))
        with ctxbudget.task("o-1", type="support"):
            client.chat.completions.create(model=body["model"], messages=MSG)
    finally:
        cm.uninstall()
    assert m.registry is None
    data = reader.get_metrics_data()
    points: dict[str, list[tuple[dict[str, str], float]]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points[metric.name] = [(dict(p.attributes), p.value)
                                       for p in metric.data.data_points]
    want = from_openai_chat(body).usage
    assert points["ctxbudget.calls"][0][1] == 1
    assert points["ctxbudget.calls"][0][0]["task_type"] == "support"
    toks = {a["bucket"]: v for a, v in points["ctxbudget.tokens"]}
    assert toks["input"] == want.input_tokens and toks["output"] == want.output_tokens
    assert points["ctxbudget.spend"][0][1] == pytest.approx(float(
        default_pricebook().cost(want, body["model"], "openai").total_usd))
    assert points["ctxbudget.cache_hit_ratio"][0][1] == pytest.approx(
        want.cache_read_tokens / want.prompt_tokens)
