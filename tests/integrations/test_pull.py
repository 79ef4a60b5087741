"""``ctxbudget import langfuse --host ...`` and ``ctxbudget import litellm --url ...``: paged,
incremental pulls from local fakes of the documented APIs (see data/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakepull import FakePull
from typer.testing import CliRunner

from ctxbudget.store.db import open_store


@pytest.fixture
def fake() -> Any:
    with FakePull() as f:
        yield f


def _cli(*args: str) -> tuple[int, str]:
    from ctxbudget.cli.main import app

    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


def _rows(db: Path) -> list[tuple[Any, ...]]:
    with open_store(db) as s:
        return list(s.con.execute(
            "SELECT call_key, provider, model, input_tokens, cache_read_tokens, "
            "cache_write_5m_tokens, output_tokens, task_id FROM calls ORDER BY ts").fetchall())


def test_langfuse_pull_paged_and_incremental(fake: FakePull, tmp_path: Path) -> None:
    db = tmp_path / "u.duckdb"
    args = ["import", "langfuse", "--host", fake.url, "--public-key", "pk-lf-test",
            "--secret-key", "sk-lf-test", "--db", str(db), "--json"]
    # page size 100 would fit all rows: force paging with the library call
    from ctxbudget.sources.pull import pull_langfuse

    with open_store(db) as store:
        stats = pull_langfuse(store, host=fake.url, public_key="pk-lf-test",
                              secret_key="sk-lf-test", limit=2)
    assert stats.lines == 3 and stats.accepted == 3 and stats.rejected == 0
    pages = [q for p, q in fake.requests if p == "/api/public/observations"]
    assert [q["page"] for q in pages] == ["1", "2"]
    assert all(q["type"] == "GENERATION" and "fromStartTime" not in q for q in pages)
    rows = _rows(db)
    assert rows == [
        ("langfuse:obs-anthropic-1", "anthropic", "claude-sonnet-4-5-20250929", 3, 1111, 0, 406,
         "trace-support-1"),
        ("langfuse:obs-anthropic-2", "anthropic", "claude-sonnet-4-5-20250929", 3, 1111, 418,
         33, "trace-support-1"),
        ("langfuse:obs-openai-1", "openai", "gpt-5.6-sol", 8, 4012, 0, 4, "trace-support-2"),
    ]

    # a new generation arrives; the next pull asks only from the last start time on
    fake.observations.append({**fake.observations[-1], "id": "obs-openai-2",
                              "startTime": "2026-11-30T12:00:00.000Z",
                              "endTime": "2026-11-30T12:00:01.000Z"})
    fake.requests.clear()
    code, out = _cli(*args)
    assert code == 0, out
    summary = json.loads(out)
    assert summary["accepted"] == 2  # the last one again (same key: replaced) + the new one
    (q,) = [q for p, q in fake.requests if p == "/api/public/observations"]
    assert q["fromStartTime"] == "2026-11-30T11:00:00Z"
    assert len(_rows(db)) == 4
    fake.requests.clear()
    code, out = _cli(*args)  # nothing new: the store does not change
    assert code == 0 and len(_rows(db)) == 4
    assert fake.requests[0][1]["fromStartTime"] == "2026-11-30T12:00:00Z"


def test_litellm_pull_paged_and_incremental(fake: FakePull, tmp_path: Path) -> None:
    db = tmp_path / "u.duckdb"
    from ctxbudget.sources.pull import pull_litellm

    with open_store(db) as store:
        stats = pull_litellm(store, url=fake.url, key="sk-litellm-test", page_size=3)
    assert stats.lines == 4 and stats.accepted == 3
    assert stats.skipped  # the LiteLLM response-cache hit made no API call
    pages = [q for p, q in fake.requests if p == "/spend/logs/v2"]
    assert [q["page"] for q in pages] == ["1", "2"]
    assert pages[0]["sort_order"] == "asc" and pages[0]["start_date"] == "2000-01-01 00:00:00"
    rows = _rows(db)
    assert [r[:7] for r in rows] == [
        ("litellm:chatcmpl-E1mBLGr3Ql1FsH8cdc76XdGw3PleH", "openai", "gpt-5.6-sol", 8, 0, 4012,
         4),
        ("litellm:chatcmpl-E1mBQt42vYTsKNd5wnyJlT0db7v9S", "openai", "gpt-5.6-sol", 8, 4012, 0,
         4),
        ("litellm:msg_01KPaKTJSqAKoZri7Ujrny58", "anthropic", "claude-sonnet-4-5-20250929", 3,
         1111, 418, 33),
    ]
    fake.requests.clear()
    code, out = _cli("import", "litellm", "--url", fake.url, "--key", "sk-litellm-test",
                     "--db", str(db), "--json")
    assert code == 0, out
    (q,) = [q for p, q in fake.requests if p == "/spend/logs/v2"]
    assert q["start_date"] == "2026-11-30 12:01:00"  # from the last start time seen
    assert len(_rows(db)) == 3


def test_bad_credentials_and_server_errors_are_one_line(fake: FakePull, tmp_path: Path) -> None:
    db = str(tmp_path / "u.duckdb")
    code, out = _cli("import", "langfuse", "--host", fake.url, "--public-key", "pk",
                     "--secret-key", "wrong", "--db", db)
    assert code == 2
    assert "HTTP 401" in out and "/api/public/observations" in out and "Traceback" not in out
    fake.fail_next = 500
    code, out = _cli("import", "litellm", "--url", fake.url, "--key", "sk-litellm-test",
                     "--db", db)
    assert code == 2 and "HTTP 500" in out
    code, out = _cli("import", "litellm", "--url", "http://127.0.0.1:1", "--key", "k",
                     "--db", db)
    assert code == 2 and "127.0.0.1:1" in out
    code, out = _cli("import", "langfuse", "--url", fake.url, "--key", "k", "--db", db)
    assert code == 2 and "format litellm" in out
