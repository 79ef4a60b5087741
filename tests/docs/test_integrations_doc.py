"""Every snippet of docs/integrations.md runs, as written, against the local fakes.

Each Python snippet runs in a fresh interpreter, as written; the test only points the
SDKs' standard base-URL environment variables at local fake servers replaying recorded
responses, then checks the snippet recorded its calls with its task id. The shell
snippets run in ``bash`` (a ``ctxbudget`` command on the PATH) and the LiteLLM proxy's
YAML runs in a real ``litellm`` proxy, with only their fixed ports and hosts replaced by
local ones. A code block of the page that is not a snippet, or a Python snippet without
an entry in ``EXPECT``, fails the test (docs cannot drift).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integrations"))
sys.path.insert(0, str(HERE.parent / "track"))

from fakeapi import FakeAPI  # noqa: E402
from fakeproviders import FakeProviders  # noqa: E402
from track_helpers import recorded  # noqa: E402

ROOT = HERE.parents[1]
DOC = ROOT / "docs" / "integrations.md"
SNIPPET = re.compile(r"<!-- snippet: (\S+) -->\s*```(\w+)\n(.*?)```", re.S)
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks() -> dict[str, tuple[str, str]]:
    """Every tagged snippet: name -> (language, code)."""
    return {name: (lang, code)
            for name, lang, code in SNIPPET.findall(DOC.read_text(encoding="utf-8"))}


def snippets() -> dict[str, str]:
    return {name: code for name, (lang, code) in blocks().items() if lang == "python"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, alive: Callable[[], bool], what: str, log: Path,
               timeout: float = 240) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if not alive() or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            pytest.fail(f"{what} did not start:\n{tail}")
        time.sleep(0.2)


def _shim_path(tmp: Path) -> str:
    """A PATH whose ``ctxbudget`` runs this checkout's CLI with this interpreter."""
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    shim = bindir / "ctxbudget"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ctxbudget.cli.main "$@"\n')
    shim.chmod(0o755)
    return str(bindir) + os.pathsep + os.environ.get("PATH", "")


def _child_env(home: Path) -> dict[str, str]:
    return {**os.environ, "CTXBUDGET_HOME": str(home),
            "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}


class Env:
    def __init__(self, mp: pytest.MonkeyPatch, api: FakeAPI, prov: FakeProviders,
                 home: Path) -> None:
        self.mp, self.api, self.prov, self.home = mp, api, prov, home
        self.cleanups: list[Callable[[], None]] = []
        self.remote = False
        """The calls are recorded by another process (a receiver, a proxy): wait for them."""
        self.transform: Callable[[str], str] = lambda code: code
        self.check: Callable[[str], None] = lambda stdout: None


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _otlp(e: Env) -> None:
    """Run the ``otlp-receiver`` shell snippet (its port replaced by a free one) in bash:
    it starts ``ctxbudget otlp`` in the background and exports the endpoint the Python
    snippet's exporter reads."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    pytest.importorskip("uvicorn")
    lang, code = blocks()["otlp-receiver"]
    assert lang == "bash" and "4318" in code
    port = _free_port()
    pidfile, envfile = e.home / "receiver.pid", e.home / "receiver.env"
    script = (code.replace("4318", str(port))
              + f'echo "$!" > "{pidfile}"\nenv > "{envfile}"\n')
    e.home.mkdir(parents=True, exist_ok=True)
    with open(e.home / "receiver.log", "wb") as log:
        subprocess.run(["bash", "-euc", script], check=True, timeout=60, stdout=log,
                       stderr=subprocess.STDOUT,
                       env={**_child_env(e.home), "PATH": _shim_path(e.home)})
    pid = int(pidfile.read_text())

    def stop() -> None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    e.cleanups.append(stop)
    exported = dict(line.split("=", 1) for line in envfile.read_text().splitlines()
                    if line.startswith("OTEL_"))
    assert exported == {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":
                        f"http://127.0.0.1:{port}/v1/traces"}
    for k, v in exported.items():
        e.mp.setenv(k, v)
    _wait_http(f"http://127.0.0.1:{port}/metrics", lambda: _alive(pid), "ctxbudget otlp",
               e.home / "receiver.log")
    e.remote = True


def _metrics(e: Env) -> None:
    """The snippet serves /metrics on a fixed port: run it on a free one, then scrape it
    from the snippet's process with a Prometheus text parser."""
    pytest.importorskip("prometheus_client")
    _openai(e)
    port = _free_port()

    def transform(code: str) -> str:
        assert "port=9464" in code
        return (code.replace("port=9464", f"port={port}")
                + "\nimport urllib.request\n"
                  f"print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics')"
                  ".read().decode())\n")

    def check(stdout: str) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        samples = {(s.name, s.labels.get("task_type"), s.labels.get("bucket")): s.value
                   for fam in text_string_to_metric_families(stdout) for s in fam.samples}
        assert samples[("ctxbudget_calls_total", "support", None)] == 1
        assert samples[("ctxbudget_spend_usd_total", "support", None)] > 0
        assert samples[("ctxbudget_tokens_total", "support", "input")] > 0

    e.transform, e.check = transform, check


def _litellm_proxy(e: Env) -> None:
    """A real LiteLLM proxy whose config.yaml is the ``litellm-proxy`` snippet plus a
    ``model_list`` pointing at the fake API; the request snippet talks to it."""
    import importlib.util

    if importlib.util.find_spec("litellm") is None:  # not imported: it fetches at import
        pytest.skip("litellm is not installed")
    lang, code = blocks()["litellm-proxy"]
    assert lang == "yaml"
    config = yaml.safe_load(code)
    assert set(config) == {"litellm_settings"}
    config["model_list"] = [{"model_name": "gpt-4o", "litellm_params": {
        "model": "openai/gpt-4o", "api_base": e.api.url + "/v1", "api_key": "test"}}]
    e.home.mkdir(parents=True, exist_ok=True)
    cfg = e.home / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    port = _free_port()
    key = "sk-ctxbudget-docs-test-0123456789abcdef"
    log = open(e.home / "proxy.log", "wb")  # noqa: SIM115 - closed by the cleanup
    proc = subprocess.Popen(
        [sys.executable, "-c", "from litellm.proxy.proxy_cli import run_server; run_server()",
         "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
        env={**_child_env(e.home), "LITELLM_MASTER_KEY": key,
             "LITELLM_LOCAL_MODEL_COST_MAP": "True"})

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
        log.close()

    e.cleanups.append(stop)
    _wait_http(f"http://127.0.0.1:{port}/health/liveliness", lambda: proc.poll() is None,
               "the LiteLLM proxy", e.home / "proxy.log")
    e.mp.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}")
    e.mp.setenv("OPENAI_API_KEY", key)
    e.remote = True


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
    "litellm-proxy-request": (_litellm_proxy, 1, "ticket-53", "openai"),
    "otlp": (_otlp, 1, "ticket-46", "openai"),
    "metrics": (_metrics, 1, "ticket-47", "openai"),
    "langchain": (_langchain, 1, "ticket-48", "openai"),
    "pydantic-ai": (_pydantic_ai, 1, "ticket-49", "openai"),
    "openai-agents": (_openai_agents, 1, "ticket-50", "openai"),
    "llama-index": (_llama_index, 1, "ticket-51", "openai"),
    "llama-index-stream": (_llama_index_bedrock, 1, "ticket-52", "aws"),
}


@pytest.fixture
def env(data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Env]:
    with FakeAPI(data_dir / "api-responses") as api, \
            FakeProviders(data_dir / "api-responses") as prov:
        e = Env(monkeypatch, api, prov, tmp_path / "home")
        try:
            yield e
        finally:
            for fn in e.cleanups:
                fn()
        assert not api.errors and not prov.errors, (api.errors, prov.errors)


def test_every_snippet_has_an_expectation() -> None:
    assert set(snippets()) == set(EXPECT)


def test_every_code_block_is_a_snippet() -> None:
    """A code block without a ``<!-- snippet: NAME -->`` tag would be run by nothing."""
    text = DOC.read_text(encoding="utf-8")
    tagged = {code for _lang, code in blocks().values()}
    untagged = [code for _lang, code in BLOCK.findall(text) if code not in tagged]
    assert not untagged, untagged
    assert {lang for lang, _ in blocks().values()} <= {"python", "bash", "yaml"}
    assert {n for n, (lang, _) in blocks().items() if lang != "python"} == {
        "litellm-proxy", "otlp-receiver", "pull"}  # each run by a test below


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_snippet_runs_and_records(name: str, env: Env) -> None:
    """Run the snippet as a user would (a fresh interpreter, the snippet's text as is)."""
    setup, n, task_id, provider = EXPECT[name]
    spool = env.home / "spool"  # the snippet's $CTXBUDGET_HOME
    setup(env)
    proc = subprocess.run([sys.executable, "-c", env.transform(snippets()[name])],
                          env=_child_env(env.home), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    env.check(proc.stdout)
    calls, _ = recorded(spool)
    deadline = time.monotonic() + 60
    while env.remote and len(calls) < n and time.monotonic() < deadline:
        time.sleep(0.2)  # recorded by the receiver / proxy process
        calls, _ = recorded(spool)
    assert len(calls) == n, proc.stderr[-3000:]
    assert {c.task_id for c in calls} == {task_id}
    assert {c.provider for c in calls} == {provider}
    assert all(c.usage.total_tokens > 0 for c in calls)


def test_pull_snippet_runs(tmp_path: Path) -> None:
    """The pull commands, in bash, against a local fake of both APIs (hosts replaced,
    credentials from the variables the snippet reads)."""
    from fakepull import FakePull

    from ctxbudget.store.db import open_store

    lang, code = blocks()["pull"]
    assert lang == "bash"
    home = tmp_path / "home"
    with FakePull() as fake:
        script = (code.replace("https://cloud.langfuse.com", fake.url)
                  .replace("http://litellm-proxy:4000", fake.url))
        assert script != code and "://" not in script.replace(fake.url, "")
        proc = subprocess.run(
            ["bash", "-euc", script], capture_output=True, text=True, timeout=300,
            env={**_child_env(home), "PATH": _shim_path(tmp_path),
                 "LANGFUSE_PUBLIC_KEY": "pk-lf-test", "LANGFUSE_SECRET_KEY": "sk-lf-test",
                 "LITELLM_MASTER_KEY": "sk-litellm-test", "COLUMNS": "200"})
        paths = {p for p, _ in fake.requests}
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert paths == {"/api/public/observations", "/spend/logs/v2"}
    with open_store(home / "usage.duckdb") as st:
        keys = [r[0] for r in st.con.execute("SELECT call_key FROM calls").fetchall()]
    assert len([k for k in keys if k.startswith("langfuse:")]) == 3
    assert len([k for k in keys if k.startswith("litellm:")]) == 3
    # `ctxbudget report --by model` shows the pulled models
    assert "gpt-5.6-sol" in proc.stdout and "claude-sonnet-4-5" in proc.stdout
