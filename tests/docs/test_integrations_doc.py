"""Every snippet of docs/integrations.md runs, as written, against the local fakes.

Each snippet runs in a fresh interpreter, as written; the test only points the SDKs'
standard base-URL environment variables at local fake servers replaying recorded
responses, then checks the snippet recorded its calls with its task id. A snippet
without an entry in ``EXPECT`` fails the test (docs cannot drift).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integrations"))
sys.path.insert(0, str(HERE.parent / "track"))

from fakeapi import FakeAPI  # noqa: E402
from fakeproviders import FakeProviders  # noqa: E402
from track_helpers import recorded  # noqa: E402

import ctxbudget.track as tr  # noqa: E402

ROOT = HERE.parents[1]
DOC = ROOT / "docs" / "integrations.md"
SNIPPET = re.compile(r"<!-- snippet: (\S+) -->\s*```python\n(.*?)```", re.S)


def snippets() -> dict[str, str]:
    return dict(SNIPPET.findall(DOC.read_text(encoding="utf-8")))


class Env:
    def __init__(self, mp: pytest.MonkeyPatch, api: FakeAPI, prov: FakeProviders) -> None:
        self.mp, self.api, self.prov = mp, api, prov
        self.cleanups: list[Callable[[], None]] = []


def _gemini(e: Env) -> None:
    pytest.importorskip("google.genai")
    e.mp.setenv("GOOGLE_API_KEY", "test-key")
    e.mp.delenv("GEMINI_API_KEY", raising=False)
    e.mp.setenv("GOOGLE_GEMINI_BASE_URL", e.prov.url)


def _bedrock(e: Env) -> None:
    pytest.importorskip("boto3")
    e.mp.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", e.prov.url)
    e.mp.setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
    e.mp.setenv("AWS_SECRET_ACCESS_KEY", "secret")


def _openai(e: Env) -> None:
    pytest.importorskip("openai")
    e.mp.setenv("OPENAI_BASE_URL", e.api.url + "/v1")
    e.mp.setenv("OPENAI_API_KEY", "test")


def _litellm(e: Env) -> None:
    e.mp.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    pytest.importorskip("litellm")
    _openai(e)


def _otlp(e: Env) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    uvicorn = pytest.importorskip("uvicorn")
    import socket
    import threading

    from ctxbudget.serve.otlp import Receiver, build_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = build_app(Receiver(recorder=tr.record_call, flush=tr.flush))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 30
    while not server.started and th.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        th.join(30)

    e.cleanups.append(stop)
    e.mp.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{port}/v1/traces")


def _metrics(e: Env) -> None:
    pytest.importorskip("prometheus_client")
    _openai(e)


def _langchain(e: Env) -> None:
    pytest.importorskip("langchain_openai")
    _openai(e)


def _pydantic_ai(e: Env) -> None:
    pytest.importorskip("pydantic_ai")
    _openai(e)


def _openai_agents(e: Env) -> None:
    pytest.importorskip("agents")
    _openai(e)


def _llama_index(e: Env) -> None:
    pytest.importorskip("llama_index.llms.litellm")
    _litellm(e)


def _llama_index_bedrock(e: Env) -> None:
    pytest.importorskip("llama_index.llms.bedrock_converse")
    _bedrock(e)


#: snippet -> (environment setup, calls it records, their task id, provider)
EXPECT: dict[str, tuple[Callable[[Env], None], int, str, str]] = {
    "gemini": (_gemini, 2, "ticket-42", "google"),
    "bedrock": (_bedrock, 3, "ticket-43", "aws"),
    "openai-compatible": (_openai, 1, "ticket-44", "google"),
    "litellm": (_litellm, 1, "ticket-45", "openai"),
    "otlp": (_otlp, 1, "ticket-46", "openai"),
    "metrics": (_metrics, 1, "ticket-47", "openai"),
    "langchain": (_langchain, 1, "ticket-48", "openai"),
    "pydantic-ai": (_pydantic_ai, 1, "ticket-49", "openai"),
    "openai-agents": (_openai_agents, 1, "ticket-50", "openai"),
    "llama-index": (_llama_index, 1, "ticket-51", "openai"),
    "llama-index-stream": (_llama_index_bedrock, 1, "ticket-52", "aws"),
}


@pytest.fixture
def env(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    with FakeAPI(data_dir / "api-responses") as api, \
            FakeProviders(data_dir / "api-responses") as prov:
        e = Env(monkeypatch, api, prov)
        try:
            yield e
        finally:
            for fn in e.cleanups:
                fn()
        assert not api.errors and not prov.errors, (api.errors, prov.errors)


def test_every_snippet_has_an_expectation() -> None:
    assert set(snippets()) == set(EXPECT)


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_snippet_runs_and_records(name: str, env: Env, tmp_path: Path) -> None:
    """Run the snippet as a user would (a fresh interpreter, the snippet's text as is)."""
    setup, n, task_id, provider = EXPECT[name]
    home = tmp_path / "home"
    spool = home / "spool"
    tr.configure(spool_dir=spool, flush_interval=0.05)  # the OTLP receiver records here
    try:
        setup(env)
        penv = {**os.environ, "CTXBUDGET_HOME": str(home),
                "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.run([sys.executable, "-c", snippets()[name]], env=penv,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        calls, _ = recorded(spool)
    finally:
        tr.configure()
    assert len(calls) == n, proc.stderr[-3000:]
    assert {c.task_id for c in calls} == {task_id}
    assert {c.provider for c in calls} == {provider}
    assert all(c.usage.total_tokens > 0 for c in calls)
