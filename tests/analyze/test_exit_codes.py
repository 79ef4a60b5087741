"""Exit codes of the reading commands and the gate: 0 ok, 1 check failed, 2 user error,
3 a side effect failed (webhook not delivered, summary not written); webhook shapes."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from ctxbudget.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from ctxbudget.plan.simulate import iter_simulate, write_parquet

    d = tmp_path_factory.mktemp("exit")
    out = {}
    for name, inject in (("base", []), ("worse", ["retrieved+200%@day1"])):
        p = d / f"{name}.parquet"
        chunks, tasks_fn = iter_simulate(ROOT / "examples" / "support-agent.yaml", tasks=200,
                                         days=2, seed=1 if name == "base" else 2,
                                         inject=inject)
        write_parquet(chunks, tasks_fn, p)
        out[name] = p
    out["baseline"] = d / "baseline.json"
    r = runner.invoke(app, ["baseline", "save", str(out["baseline"]), "--data", str(out["base"])])
    assert r.exit_code == 0, r.output
    return out


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    statuses: ClassVar[list[int]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append({"type": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(_Hook.statuses.pop(0) if _Hook.statuses else 204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    _Hook.received.clear()
    _Hook.statuses.clear()
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def _check(data: dict[str, Path], which: str, *extra: str, env: dict[str, str] | None = None
           ) -> Any:
    return runner.invoke(app, ["check", "--baseline", str(data["baseline"]),
                               "--data", str(data[which]), *extra], env=env)


def test_0_ok_and_1_check_failed(data: dict[str, Path]) -> None:
    assert _check(data, "base").exit_code == 0
    bad = _check(data, "worse", "--json")
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["verdict"] == "fail"


@pytest.mark.parametrize("args, names", [
    (["report", "--limit", "-1"], "--limit"),
    (["report", "--format", "xml"], "--format"),
    (["report", "--by", "color"], "--by"),
    (["report", "--since", "yesterday"], "--since"),
    (["report", "--tz", "Mars/Olympus"], "--tz"),
    (["signals", "--alpha", "2"], "--alpha"),
    (["signals", "--min-samples", "0"], "--min-samples"),
    (["check"], "--rules"),
    (["check", "--baseline", "BASE", "--confidence", "0.3"], "--confidence"),
    (["check", "--baseline", "BASE", "--tolerance", "lots"], "--tolerance"),
    (["check", "--baseline", "BASE", "--webhook", "ftp://x"], "--webhook"),
    (["check", "--baseline", "BASE", "--webhook-format", "pager"], "--webhook-format"),
    (["check", "--baseline", "missing.json"], "missing.json"),
    (["report", "--db", "DATA"], "Parquet"),
    (["report", "--limit", "many"], "--limit"),  # click's type errors: one line too
    (["report", "--engine", "sparkle"], "--engine"),
    (["report", "--no-such-option"], "--no-such-option"),
    (["signals", "--alpha", "x"], "--alpha"),
    (["check", "--baseline", "BASE", "--min-samples", "-3"], "--min-samples"),
])
def test_2_user_errors_are_one_line(data: dict[str, Path], args: list[str], names: str) -> None:
    args = [str(data["baseline"]) if a == "BASE" else str(data["base"]) if a == "DATA" else a
            for a in args]
    if "--db" not in args:
        args += ["--data", str(data["base"])]
    r = runner.invoke(app, args)
    assert r.exit_code == 2, (args, r.output)
    assert r.stderr.count("\n") == 1 and names in r.stderr, r.stderr
    assert "Traceback" not in r.output


#: Every command with --db given a Parquet file: one line saying so, exit 2.
PARQUET_DB = [
    ["report"], ["signals"], ["check", "--baseline", "BASE"], ["baseline", "save", "OUT"],
    ["import", "table", "DATA"], ["ingest"], ["export", "--out", "OUT"], ["audit"],
    ["whatif", "--ttl", "1h"], ["checklist"],
]


@pytest.mark.parametrize("args", PARQUET_DB, ids=lambda a: " ".join(a[:2]))
def test_2_parquet_file_given_to_db(data: dict[str, Path], tmp_path: Path,
                                    args: list[str]) -> None:
    args = [str(data["baseline"]) if a == "BASE" else str(data["base"]) if a == "DATA"
            else str(tmp_path / "out") if a == "OUT" else a for a in args]
    r = runner.invoke(app, [*args, "--db", str(data["base"])])
    assert r.exit_code == 2, (args, r.output)
    assert r.stderr.count("\n") == 1 and "is a Parquet file" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_2_unknown_command_and_missing_argument_are_one_line() -> None:
    for args in (["no-such-command"], ["import"], ["baseline", "save"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), r.stderr
    ok = runner.invoke(app, ["report", "--help"])
    assert ok.exit_code == 0 and "--since" in ok.stdout


def test_3_webhook_unreachable(data: dict[str, Path]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/hook"
    r = _check(data, "worse", "--webhook", url)
    assert r.exit_code == 3
    assert "BREACH" in r.stdout  # the verdict was still printed
    assert "not delivered after 4 attempt(s)" in r.stderr and "ConnectError" in r.stderr
    # a passing check posts nothing: the side effect does not happen, exit 0
    assert _check(data, "base", "--webhook", url).exit_code == 0


def test_3_webhook_server_error_after_retries(data: dict[str, Path], hook: str) -> None:
    _Hook.statuses[:] = [500, 502, 503, 500]
    r = _check(data, "worse", "--webhook", hook)
    assert r.exit_code == 3 and len(_Hook.received) == 4 and "HTTP 500" in r.stderr
    _Hook.received.clear()
    _Hook.statuses[:] = [404]  # a 4xx is not retried
    assert _check(data, "worse", "--webhook", hook).exit_code == 3
    assert len(_Hook.received) == 1


def test_webhook_retries_then_delivers(data: dict[str, Path], hook: str) -> None:
    _Hook.statuses[:] = [503]
    r = _check(data, "worse", "--webhook", hook)
    assert r.exit_code == 1, r.output  # delivered on the second attempt: the check's code
    assert len(_Hook.received) == 2
    body = _Hook.received[-1]["body"]
    assert _Hook.received[-1]["type"] == "application/json"
    assert body["source"] == "ctxbudget check" and body["ok"] is False
    assert body["breaches"] and body["summary_markdown"].startswith("## ctxbudget check")


def test_slack_and_teams_payloads(data: dict[str, Path], hook: str) -> None:
    assert _check(data, "worse", "--webhook", hook, "--webhook-format", "slack").exit_code == 1
    slack = _Hook.received[-1]["body"]
    assert slack["text"].startswith("ctxbudget check: FAIL")
    assert slack["blocks"][0]["type"] == "section"
    assert slack["blocks"][0]["text"]["type"] == "mrkdwn"
    assert "mean_cost_per_task" in slack["blocks"][0]["text"]["text"]
    assert _check(data, "worse", "--webhook", hook, "--webhook-format", "teams").exit_code == 1
    teams = _Hook.received[-1]["body"]
    assert teams["type"] == "message"
    att = teams["attachments"][0]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = att["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["body"][0] == {"type": "TextBlock", "text": "ctxbudget check: FAIL",
                               "weight": "Bolder", "size": "Medium", "wrap": True}


def test_webhook_format_auto_from_host() -> None:
    from ctxbudget.analyze.notify import resolve_format

    assert resolve_format("https://hooks.slack.com/services/T/B/X", "auto") == "slack"
    assert resolve_format("https://acme.webhook.office.com/webhookb2/x", "auto") == "teams"
    assert resolve_format("https://prod-1.westus.logic.azure.com/workflows/x", "auto") == "teams"
    assert resolve_format("https://example.org/hook", "auto") == "json"
    assert resolve_format("https://hooks.slack.com/x", "json") == "json"


def test_3_step_summary_not_writable(data: dict[str, Path], tmp_path: Path) -> None:
    r = _check(data, "base", env={"GITHUB_STEP_SUMMARY": str(tmp_path)})  # a directory
    assert r.exit_code == 3 and "GITHUB_STEP_SUMMARY" in r.stderr
    ok = tmp_path / "summary.md"
    assert _check(data, "base", "--min-samples", "20",
                  env={"GITHUB_STEP_SUMMARY": str(ok)}).exit_code == 0
    assert ok.read_text().startswith("## ctxbudget check: ✅ pass")
