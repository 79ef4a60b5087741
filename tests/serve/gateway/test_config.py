"""gateway.yaml validation, routing, and ``ctxbudget gateway check-config``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctxbudget.errors import SpecError
from ctxbudget.serve.gateway import GatewayConfig, load_config

ROOT = Path(__file__).resolve().parents[3]


def test_routes_by_family_and_prefix() -> None:
    cfg = GatewayConfig.from_dict({"upstreams": {
        "anthropic": {"base_url": "https://api.anthropic.com"},
        "openai": {"base_url": "https://api.openai.com/"},
        "groq": {"base_url": "https://api.groq.com/openai", "prefix": "/groq"}}})
    up, path, api = cfg.route("/v1/messages")  # type: ignore[misc]
    assert (up.name, path, api) == ("anthropic", "/v1/messages", "anthropic")
    up, path, api = cfg.route("/v1/messages/count_tokens")  # type: ignore[misc]
    assert (up.name, api) == ("anthropic", None)
    up, path, api = cfg.route("/v1/responses")  # type: ignore[misc]
    assert (up.name, up.base_url, api) == ("openai", "https://api.openai.com",
                                           "openai-responses")
    up, path, api = cfg.route("/groq/v1/chat/completions")  # type: ignore[misc]
    assert (up.name, up.provider, path, api) == ("groq", "groq", "/v1/chat/completions",
                                                 "openai-chat")
    assert cfg.route("/admin") is None and cfg.route("/groq/admin") is None
    only_openai = GatewayConfig.from_dict({"upstreams": {"openai": {"base_url":
                                                                    "http://x"}}})
    assert only_openai.route("/v1/messages") is None  # never sent to a wrong upstream


@pytest.mark.parametrize("data,match", [
    ({"upstreams": {}}, "at least one upstream"),
    ({"upstreams": {"a": {"base_url": "ftp://x"}}}, r"upstreams\.a\.base_url"),
    ({"upstreams": {"openai": {"base_url": "http://x"}}, "budgets": [{"name": "b"}]},
     r"budgets\[0\]: set exactly one of limit_usd"),
    ({"upstreams": {"openai": {"base_url": "http://x"}},
      "budgets": [{"name": "b", "limit_usd": 1, "window": "fortnight"}]},
     r"budgets\[0\]\.window"),
    ({"upstreams": {"openai": {"base_url": "http://x"}},
      "budgets": [{"name": "b", "limit_usd": 1, "timezone": "Mars/Base"}]},
     r"budgets\[0\]\.timezone"),
    ({"upstreams": {"openai": {"base_url": "http://x"}},
      "budgets": [{"name": "b", "limit_usd": 1, "match": {"upstream": "nope"}}]},
     r"match\.upstream"),
    ({"upstreams": {"openai": {"base_url": "http://x"}}, "surprise": 1}, "surprise"),
])
def test_config_errors_name_the_field(data: dict[str, object], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        GatewayConfig.from_dict(data, "gw.yaml")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ctxbudget.cli.main", "gateway", *args],
                          capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})


def test_check_config_cli(tmp_path: Path, redis_url: str) -> None:
    good = tmp_path / "gateway.yaml"
    good.write_text("upstreams:\n  anthropic: {base_url: https://api.anthropic.com}\n"
                    f"budget_store: {redis_url}\n"
                    "budgets:\n  - {name: team-daily, match: {key: 'sk-team-*'}, "
                    "limit_usd: 1.00, window: day, timezone: Europe/Paris}\n")
    r = _cli("check-config", "--config", str(good), "--workers", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "budget team-daily: 1.0 usd per day (Europe/Paris)" in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("upstreams:\n  anthropic: {base_url: https://api.anthropic.com}\n"
                   "budget_store: budget.journal\n"
                   "budgets:\n  - {name: b, limit_usd: 1}\n")
    r = _cli("check-config", "--config", str(bad), "--workers", "2", cwd=tmp_path)
    assert r.returncode == 2 and "need budget_store: redis" in r.stderr
    r = _cli("check-config", "--config", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    (tmp_path / "broken.yaml").write_text("upstreams: [\n")
    r = _cli("check-config", "--config", str(tmp_path / "broken.yaml"), cwd=tmp_path)
    assert r.returncode == 2 and "broken.yaml:" in r.stderr and "Traceback" not in r.stderr
    down = tmp_path / "down.yaml"
    down.write_text("upstreams:\n  anthropic: {base_url: https://api.anthropic.com}\n"
                    "budget_store: redis://127.0.0.1:9/0\n"
                    "budgets:\n  - {name: b, limit_usd: 1}\n")
    r = _cli("check-config", "--config", str(down), cwd=tmp_path)
    assert r.returncode == 2 and "budget store redis://127.0.0.1:9/0" in r.stderr
    assert load_config(good).budgets[0].budget.window.timezone == "Europe/Paris"
