"""The dashboard app without a browser: access token, bad parameters, read-only access,
a writer never kept out, a busy store served from the previous snapshot."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from ctxbudget.serve.dashboard import Dataset, TaskQuery, create_app
from ctxbudget.store import open_store

from .conftest import cli, fingerprint_calls, free_port


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    db = tmp_path / "s.duckdb"
    with open_store(db) as st:
        st.insert_calls(fingerprint_calls())
        st.insert_calls(fingerprint_calls(session="sess-2", task="task-2"))
    return db


def _client(ds: Dataset, **kw: Any) -> TestClient:
    return TestClient(create_app(ds, **kw), base_url="http://127.0.0.1")


def test_every_page_and_the_store_is_never_written(store: Path) -> None:
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    ds = Dataset(db=store)
    c = _client(ds)
    for path in ("/", "/day/2026-11-20", "/tasks", "/tasks?type=support&sort=calls&order=asc",
                 "/task/task-fp", "/call/track%3Areq_task-fp_3",
                 "/call/track%3Areq_task-fp_3?task=task-fp",
                 "/whatif", "/whatif?type=support&ttl=1h&run=1", "/api/overview",
                 "/api/tasks?sort=cost", "/api/version", "/static/app.js", "/healthz"):
        r = c.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        if r.headers["content-type"].startswith("text/html"):
            assert "default-src 'self'" in r.headers["content-security-policy"]
    ds.close()
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before


def test_api_numbers_equal_the_report(store: Path) -> None:
    import json

    ds = Dataset(db=store)
    got = _client(ds).get("/api/overview").json()
    ds.close()
    res = cli("report", "--by", "day", "--db", str(store), "--json")
    want = json.loads(res.stdout)
    assert got["by_day"]["rows"] == want["rows"]
    assert got["by_day"]["total"] == want["total"]


@pytest.mark.parametrize(("path", "status", "text"), [
    ("/tasks?day=2026-13-01", 400, "not a date"),
    ("/tasks?day=yesterday", 400, "YYYY-MM-DD"),
    ("/tasks?sort=price", 400, "sort"),
    ("/tasks?order=up", 400, "order"),
    ("/tasks?limit=-1", 400, "limit"),
    ("/tasks?offset=x", 400, "not an integer"),
    ("/whatif?run=1&ttl=2h", 400, "ttl"),
    ("/whatif?run=1&history_window=lots", 400, "history_window"),
    ("/whatif?run=1", 200, "nothing to change"),
    ("/whatif?run=1&model=gpt-9-foo", 200, "gpt-9-foo"),
    ("/task/no-such-task", 404, "no task"),
    ("/call/no-such-call", 404, "no call"),
    ("/static/../../etc/passwd", 404, ""),
])
def test_bad_parameters_get_a_reason(store: Path, path: str, status: int, text: str) -> None:
    ds = Dataset(db=store)
    r = _client(ds).get(path)
    ds.close()
    assert r.status_code == status, r.text[:500]
    assert text in r.text


def test_access_token(store: Path) -> None:
    ds = Dataset(db=store)
    c = _client(ds, token="s3cret")
    assert c.get("/").status_code == 401
    assert c.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/healthz").status_code == 200
    assert c.get("/", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    r = c.get("/tasks?token=s3cret&sort=calls", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/tasks?sort=calls"
    assert "ctxbudget_token" in r.headers["set-cookie"]
    assert c.get("/tasks?sort=calls").status_code == 200  # the cookie now
    ds.close()


def test_a_writer_is_never_kept_out(store: Path) -> None:
    """Between page loads the store is not open: another process can write it."""
    ds = Dataset(db=store)
    c = _client(ds)
    assert c.get("/task/task-fp").status_code == 200
    res = cli("import", "claude-code", str(Path(__file__).parent), "--db", str(store))
    assert res.returncode == 0, res.stderr  # took the write lock (nothing to import here)
    ds.close()


def test_a_locked_store_serves_the_previous_snapshot(store: Path) -> None:
    ds = Dataset(db=store, refresh_s=0.0, wait_s=0.3)
    first = ds.snapshot()
    assert first is not None
    held = threading.Event()
    release = threading.Event()

    def writer() -> None:  # another process's lock, as `ingest` would hold it
        import subprocess
        import sys

        code = ("import duckdb,sys; c=duckdb.connect(sys.argv[1]); "
                "c.execute(\"INSERT INTO imports (path) VALUES ('x')\"); "
                "print('held', flush=True); sys.stdin.readline()")
        p = subprocess.Popen([sys.executable, "-c", code, str(store)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout is not None and p.stdin is not None
        p.stdout.readline()
        held.set()
        release.wait(30)
        p.stdin.write("\n")
        p.stdin.close()
        p.wait(30)
        p.stdout.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert held.wait(30)
        snap = ds.snapshot()
        assert snap is first  # served from memory
        html = _client(ds).get("/").text
        assert "Showing the previous data" in html and "lock" in html.lower()
    finally:
        release.set()
        t.join(30)
    later = ds.snapshot()
    assert later is not first and ds.stale_reason is None
    rows, n = ds.tasks(TaskQuery())
    assert n == 2 and {r["task_key"] for r in rows} == {"task-fp", "task-2"}
    ds.close()


def test_serve_command_errors(tmp_path: Path) -> None:
    res = cli("serve", "--db", str(tmp_path / "missing.duckdb"))
    assert res.returncode == 2 and "no usage store here" in res.stderr
    assert "Traceback" not in res.stderr
    res = cli("serve", "--db", "a", "--data", "b")
    assert res.returncode == 2 and "not both" in res.stderr


def test_budgets_from_a_running_gateways_metrics(store: Path) -> None:
    """The overview shows what the gateway's /metrics says is left of each budget (the
    exposition rendered by the gateway's own Metrics class), and names a gateway that
    cannot be read."""
    import http.server
    from decimal import Decimal

    from ctxbudget.budgets import BudgetState
    from ctxbudget.serve.gateway._metrics import Metrics

    m = Metrics()
    m.states[("team-daily", "key:3f9a", "usd")] = BudgetState(
        name="team-daily", scope="key:3f9a", metric="usd", limit=Decimal("1.0000000"),
        spent=Decimal("0.5000000"), held=Decimal("0.2500000"), resets_at=None)
    m.states[("calls-hourly", 'user:a"b', "calls")] = BudgetState(
        name="calls-hourly", scope='user:a"b', metric="calls", limit=Decimal(10),
        spent=Decimal(3), held=Decimal(0), resets_at=None)
    m.blocked["team-daily"] = 3
    body = m.render().encode()

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/metrics" else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    ok = f"http://127.0.0.1:{srv.server_address[1]}"
    dead = f"http://127.0.0.1:{free_port()}"
    ds = Dataset(db=store)
    try:
        c = _client(ds, gateways=(ok, dead))
        html = c.get("/").text
        data = c.get("/api/overview").json()["budgets"]
    finally:
        srv.shutdown()
        srv.server_close()
        ds.close()
    assert {(b["budget"], b["scope"], b["remaining"], b["blocked"]) for b in data} == {
        ("team-daily", "key:3f9a", "0.2500000", 3), ("calls-hourly", 'user:a"b', "7", 0)}
    assert 'data-key="team-daily|key:3f9a"' in html
    assert f"gateway not readable: {dead}/metrics" in html
