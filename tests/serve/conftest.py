"""Fixtures for the dashboard: real stores (the shared Claude Code logs imported, a simulated
store, tracked calls with prefix fingerprints) and the real server (``ctxbudget serve`` on
uvicorn, 127.0.0.1) started per test module."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "serve"


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600
        ) -> subprocess.CompletedProcess[str]:
    """Run the real ``ctxbudget`` command in a subprocess."""
    cmd = [sys.executable, "-c", "from ctxbudget.cli.main import main; main()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, check=False)


def cli_json(*args: str) -> Any:
    res = cli(*args, "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``ctxbudget serve`` in a subprocess, on a free 127.0.0.1 port."""

    def __init__(self, *args: str, token: str | None = None, timeout: float = 600) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        extra = ["--token", token] if token else []
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from ctxbudget.cli.main import main; main()", "serve",
             *args, "--port", str(self.port), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited {self.proc.returncode}: "
                                   f"{self.proc.stderr.read()[-3000:]}")  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("serve did not start")
            time.sleep(0.2)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


@pytest.fixture(scope="session")
def cc_store(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared real Claude Code logs imported into a store."""
    db = tmp_path_factory.mktemp("serve-cc") / "cc.duckdb"
    res = cli("import", "claude-code", str(data_dir / "claude-code"), "--db", str(db))
    assert res.returncode == 0, res.stderr[-3000:]
    return db


@pytest.fixture(scope="session")
def sim_store_factory(root_dir: Path, tmp_path_factory: pytest.TempPathFactory
                      ) -> Callable[[int], Path]:
    made: dict[int, Path] = {}

    def make(tasks: int) -> Path:
        if tasks not in made:
            db = tmp_path_factory.mktemp(f"serve-sim{tasks}") / "sim.duckdb"
            res = cli("simulate", str(root_dir / "examples" / "support-agent.yaml"),
                      "--tasks", str(tasks), "--days", "7", "--seed", "11",
                      "--failure-rate", "0.1", "--inject", "history+40%@day5",
                      "--db", str(db))
            assert res.returncode == 0, res.stderr[-3000:]
            made[tasks] = db
        return made[tasks]

    return make


def fingerprint_calls(*, session: str = "sess-fp", task: str = "task-fp") -> list[Any]:
    """Five tracked Anthropic calls of one task with prefix fingerprints; the fourth one's
    system block changed (a timestamp in the prompt), so its prefix was written again."""
    from ctxbudget.usage import Call, Usage

    t0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    tools, system, h1, h2, h3 = "fp-tools", "fp-system-v1", "fp-h1", "fp-h2", "fp-h3"
    prefixes = [
        [tools, system, h1],
        [tools, system, h1, h2],
        [tools, system, h1, h2, h3],
        [tools, "fp-system-v2", h1, h2, h3],
        [tools, "fp-system-v2", h1, h2, h3, "fp-h4"],
    ]
    usages = [
        Usage(input_tokens=10, cache_write_5m_tokens=3000, output_tokens=200),
        Usage(input_tokens=10, cache_read_tokens=3000, cache_write_5m_tokens=800,
              output_tokens=150),
        Usage(input_tokens=10, cache_read_tokens=3800, cache_write_5m_tokens=700,
              output_tokens=120),
        Usage(input_tokens=10, cache_read_tokens=1000, cache_write_5m_tokens=3500,
              output_tokens=100),
        Usage(input_tokens=10, cache_read_tokens=4500, cache_write_5m_tokens=600,
              output_tokens=90),
    ]
    out = []
    for i, (fp, u) in enumerate(zip(prefixes, usages, strict=True)):
        out.append(Call(
            ts=t0 + timedelta(seconds=40 * i), provider="anthropic", model="claude-sonnet-4-5",
            usage=u, task_id=task, session_id=session, task_type="support",
            request_id=f"req_{task}_{i}", latency_ms=1200.0 + i, source="track", turn=i + 1,
            prefix_fingerprint=tuple(fp)))
    return out


@pytest.fixture()
def fp_store(tmp_path: Path) -> Path:
    from ctxbudget.store import open_store

    db = tmp_path / "fp.duckdb"
    with open_store(db) as st:
        st.insert_calls(fingerprint_calls())
    return db


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium under Playwright's sync API, for one test module: the sync API runs an
    event loop in this thread while open (a later ``asyncio.run`` would fail)."""
    import shutil

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it")
    pw_mod = pytest.importorskip("playwright.sync_api")
    with pw_mod.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        yield b
        b.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    """A page that records every request; a request to any host but 127.0.0.1 fails."""
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    seen: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        seen.append(url)
        if url.startswith(("http://127.0.0.1:", "data:")):
            route.continue_()
        else:
            route.abort()

    ctx.route("**/*", guard)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.seen = seen  # type: ignore[attr-defined]
    pg.js_errors = errors  # type: ignore[attr-defined]
    yield pg
    ctx.close()
    outside = [u for u in seen if not u.startswith(("http://127.0.0.1:", "data:"))]
    assert outside == [], f"requests left 127.0.0.1: {outside}"
    assert errors == [], errors


def shot(pg: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    p = ARTIFACTS / f"{name}.png"
    pg.screenshot(path=str(p), full_page=True)
    return p
