"""Every built-in importer on a realistic file: buckets, keys, skips, rejections,
idempotent re-import."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ctxbudget.adapters import from_anthropic, from_openai
from ctxbudget.cli.main import app
from ctxbudget.sources import get_importer, import_paths
from ctxbudget.store import open_store

COLS = ("call_key, provider, model, input_tokens, cache_read_tokens, cache_write_5m_tokens, "
        "cache_write_1h_tokens, output_tokens, reasoning_tokens, service_tier, status, task_id")


def _run(fmt: str, path: Path, db: Path, **opts: Any) -> tuple[Any, list[tuple[Any, ...]]]:
    with open_store(db) as st:
        stats = import_paths(get_importer(fmt, **opts), [path], st)
        rows = st.con.execute(f"SELECT {COLS} FROM calls ORDER BY call_key").fetchall()
    with open_store(db) as st:  # a second import (forced re-read) changes nothing
        again = import_paths(get_importer(fmt, **opts), [path], st, reimport=True)
        assert again.rejected == stats.rejected
        assert st.con.execute(f"SELECT {COLS} FROM calls ORDER BY call_key").fetchall() == rows
    return stats, rows


def _bodies(data_dir: Path, name: str) -> list[dict[str, Any]]:
    doc = yaml.safe_load((data_dir / "api-responses" / name).read_text())
    return [i["response"]["parsed_body"] for i in doc["interactions"]
            if isinstance(i["response"].get("parsed_body"), dict)
            and "usage" in i["response"]["parsed_body"]]


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_openai_batch_real_bodies(data_dir: Path, tmp_path: Path) -> None:
    bodies = _bodies(data_dir, "test_openai_chat_prompt_cache_e2e.yaml")
    lines = [{"id": f"batch_req_{i}", "custom_id": f"item-{i}",
              "response": {"status_code": 200, "request_id": f"req_{i}", "body": b},
              "error": None} for i, b in enumerate(bodies)]
    lines.append({"id": "batch_req_x", "custom_id": "item-x", "response": None,
                  "error": {"code": "server_error", "message": "boom"}})
    lines.append({"id": "batch_req_y", "custom_id": "item-y",
                  "response": {"status_code": 200, "body": {"model": "gpt-4o"}}})
    stats, rows = _run("openai-batch", _jsonl(tmp_path / "out.jsonl", lines), tmp_path / "u.db")
    assert stats.accepted == len(bodies) and stats.rejected == 1
    assert stats.rejections[0].line == len(lines)
    assert stats.skipped == {"failed request (not billed)": 1}
    by_key = {r[0]: r for r in rows}
    for i, b in enumerate(bodies):
        r = by_key[f"openai-batch:{b['id']}"]
        u = from_openai(b).usage
        assert r[3:9] == (u.input_tokens, u.cache_read_tokens, u.cache_write_5m_tokens,
                          u.cache_write_1h_tokens, u.output_tokens, u.reasoning_tokens)
        assert (r[9], r[11]) == ("batch", f"item-{i}")


def test_anthropic_batch_real_bodies(data_dir: Path, tmp_path: Path) -> None:
    bodies = _bodies(data_dir, "test_anthropic_cache_real_api.yaml")
    lines: list[Any] = [{"custom_id": f"c{i}", "result": {"type": "succeeded", "message": b}}
                        for i, b in enumerate(bodies)]
    lines += [{"custom_id": "e", "result": {"type": "errored", "error": {"type": "x"}}},
              {"custom_id": "x", "result": {"type": "expired"}}]
    stats, rows = _run("anthropic-batch", _jsonl(tmp_path / "r.jsonl", lines), tmp_path / "u.db")
    assert stats.accepted == len(bodies) and stats.skipped == {"failed request (not billed)": 2}
    for b in bodies:
        u = from_anthropic(b).usage
        r = next(r for r in rows if r[0] == f"anthropic-batch:{b['id']}")
        assert r[3:8] == (u.input_tokens, u.cache_read_tokens, u.cache_write_5m_tokens,
                          u.cache_write_1h_tokens, u.output_tokens)
        assert r[9] == "batch"


def _token_count(ts: str, last: dict[str, int] | None, total: dict[str, int] | None) -> Any:
    info = None if last is None and total is None else {
        "last_token_usage": last, "total_token_usage": total, "model_context_window": 272000}
    if info and last is None:
        del info["last_token_usage"]
    return {"timestamp": ts, "type": "event_msg",
            "payload": {"type": "token_count", "info": info, "rate_limits": None}}


def _tu(i: int, c: int, o: int, r: int) -> dict[str, int]:
    return {"input_tokens": i, "cached_input_tokens": c, "output_tokens": o,
            "reasoning_output_tokens": r, "total_tokens": i + o}


def test_codex_rollout(tmp_path: Path) -> None:
    day = tmp_path / "sessions" / "2025" / "10" / "02"
    day.mkdir(parents=True)
    sid = "0199a1b2-0000-7000-8000-000000000001"
    t1, t2 = _tu(5000, 4000, 300, 200), _tu(7000, 8000 - 2000, 500, 200)
    lines = [
        {"timestamp": "2025-10-02T10:00:00.000Z", "type": "session_meta",
         "payload": {"id": sid, "cwd": "/w", "originator": "codex_cli_rs",
                     "cli_version": "0.44.0"}},
        {"timestamp": "2025-10-02T10:00:00.100Z", "type": "turn_context",
         "payload": {"cwd": "/w", "model": "gpt-5-codex", "approval_policy": "on-request"}},
        {"timestamp": "2025-10-02T10:00:01.000Z", "type": "response_item",
         "payload": {"type": "message", "role": "user", "content": []}},
        _token_count("2025-10-02T10:00:02.000Z", None, None),
        _token_count("2025-10-02T10:00:05.000Z", t1, t1),
        _token_count("2025-10-02T10:00:05.100Z", t1, t1),  # repeat: same call
        _token_count("2025-10-02T10:00:09.000Z", _tu(2000, 2000, 200, 0),
                     {k: t1[k] + v for k, v in _tu(2000, 2000, 200, 0).items()}),
        _token_count("2025-10-02T10:00:12.000Z", None,   # only the running total
                     {k: t1[k] + v + w for (k, v), w in zip(
                         _tu(2000, 2000, 200, 0).items(),
                         _tu(1000, 500, 100, 50).values(), strict=True)}),
    ]
    del t2
    f = _jsonl(day / f"rollout-2025-10-02T10-00-00-{sid}.jsonl", lines)
    (day / "notes.jsonl").write_text("not a rollout\n")  # not matched by the glob
    stats, rows = _run("codex", tmp_path / "sessions", tmp_path / "u.db")
    assert f.exists() and stats.files == 1
    assert stats.accepted == 3 and stats.duplicates == 1
    assert stats.skipped == {"not an API call": 3, "token_count without usage": 1}
    got = sorted((r[3], r[4], r[7], r[8]) for r in rows)
    assert got == sorted([(1000, 4000, 300, 200), (0, 2000, 200, 0), (500, 500, 100, 50)])
    assert {r[1:3] for r in rows} == {("openai", "gpt-5-codex")}
    assert {r[11] for r in rows} == {sid}


def _span(span_id: str, attrs: dict[str, Any], status: int = 1) -> dict[str, Any]:
    def val(v: Any) -> dict[str, Any]:
        return {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}
    return {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": span_id, "name": "chat",
            "kind": 3, "startTimeUnixNano": "1759312800000000000",
            "endTimeUnixNano": "1759312801500000000",
            "attributes": [{"key": k, "value": val(v)} for k, v in attrs.items()],
            "status": {"code": status}}


def test_otel_spans(tmp_path: Path) -> None:
    gen = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
           "gen_ai.request.model": "claude-sonnet-4-5", "gen_ai.response.model":
           "claude-sonnet-4-5-20250929", "gen_ai.usage.input_tokens": 1532,
           "gen_ai.usage.cache_read.input_tokens": 1111,
           "gen_ai.usage.cache_creation.input_tokens": 418, "gen_ai.usage.output_tokens": 60}
    doc = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "app"}}]},
        "scopeSpans": [{"scope": {"name": "x"}, "spans": [
            _span("a1", gen),
            _span("a2", {**gen, "gen_ai.system": "openai", "gen_ai.provider.name": "openai",
                         "gen_ai.response.model": "gpt-4o-2024-08-06",
                         "gen_ai.usage.input_tokens": 100,
                         "gen_ai.usage.cache_read.input_tokens": 0,
                         "gen_ai.usage.cache_creation.input_tokens": 0}, status=2),
            _span("a3", {"http.method": "POST"}),
            _span("a4", {**gen, "gen_ai.usage.input_tokens": 10}),  # cache > inclusive input
        ]}]}]}
    f = tmp_path / "traces.json"
    f.write_text(json.dumps(doc, indent=2))
    stats, rows = _run("otel", f, tmp_path / "u.db")
    assert stats.accepted == 2 and stats.rejected == 1
    assert "spans[3]" in stats.rejections[0].reason
    assert stats.skipped == {"span without gen_ai usage": 1}
    # the same spans as JSON Lines (the collector's file exporter) on stdin
    lines = "".join(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [sp]}]}]}) + "\n"
                    for sp in doc["resourceSpans"][0]["scopeSpans"][0]["spans"])
    r = CliRunner().invoke(app, ["import", "otel", "-", "--db", str(tmp_path / "s.db"),
                                 "--json"], input=lines)
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert (s["accepted"], s["rejected"], s["rejections"][0]["line"]) == (2, 1, 4)
    a1, a2 = rows
    assert a1[:9] == ("otel:5b8efff798038103d269b633813fc60c:a1", "anthropic",
                      "claude-sonnet-4-5-20250929", 3, 1111, 418, 0, 60, 0)
    assert (a2[1], a2[3], a2[10]) == ("openai", 100, "error")


def test_litellm_csv_and_json(tmp_path: Path) -> None:
    rows_in = [
        {"request_id": "chatcmpl-1", "call_type": "acompletion", "spend": 0.0123,
         "total_tokens": 1600, "prompt_tokens": 1500, "completion_tokens": 100,
         "startTime": "2025-10-01T12:00:00.000", "endTime": "2025-10-01T12:00:02.500",
         "model": "claude-sonnet-4-5-20250929", "custom_llm_provider": "anthropic",
         "cache_hit": "False", "status": "success", "session_id": "sess-1",
         "metadata": {"usage_object": {"prompt_tokens": 1500, "completion_tokens": 100,
                                       "total_tokens": 1600, "cache_read_input_tokens": 1000,
                                       "cache_creation_input_tokens": 400,
                                       "prompt_tokens_details": {"cached_tokens": 1000}}}},
        {"request_id": "chatcmpl-2", "spend": 0.001, "prompt_tokens": 200,
         "completion_tokens": 50, "startTime": "2025-10-01T12:01:00", "model": "gpt-4o",
         "custom_llm_provider": "openai", "cache_hit": "True", "metadata": {}},
        {"request_id": "chatcmpl-3", "prompt_tokens": 200, "completion_tokens": 20,
         "startTime": "2025-10-01T12:02:00", "model": "gpt-4o-mini", "custom_llm_provider":
         "openai", "status": "failure", "metadata": "{}"},
        {"request_id": "chatcmpl-4", "prompt_tokens": "x", "startTime": "2025-10-01T12:03:00",
         "model": "gpt-4o-mini", "metadata": "{}"},
    ]
    j = tmp_path / "spend.json"
    j.write_text(json.dumps(rows_in))
    stats, rows = _run("litellm", j, tmp_path / "j.db")
    assert (stats.accepted, stats.rejected) == (2, 1)
    assert stats.skipped == {"LiteLLM cache hit (no API call)": 1}
    assert rows[0][:8] == ("litellm:chatcmpl-1", "anthropic", "claude-sonnet-4-5-20250929",
                           100, 1000, 400, 0, 100)
    assert rows[1][10] == "error"
    c = tmp_path / "spend.csv"
    with c.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=sorted({k for r in rows_in for k in r}))
        w.writeheader()
        for r in rows_in:
            w.writerow({k: json.dumps(v) if isinstance(v, dict) else v for k, v in r.items()})
    stats_c, rows_c = _run("litellm", c, tmp_path / "c.db")
    assert rows_c == rows
    assert stats_c.rejections[0].line == 5  # header is line 1


def test_langfuse_observations(tmp_path: Path) -> None:
    obs = {"data": [
        {"id": "obs-1", "traceId": "tr-1", "type": "GENERATION", "name": "chat",
         "startTime": "2025-10-01T08:00:00.000Z", "endTime": "2025-10-01T08:00:03.000Z",
         "model": "gpt-4o-2024-08-06",
         "usageDetails": {"input": 800, "input_cached_tokens": 1200, "output": 90,
                          "output_reasoning_tokens": 10, "total": 2100}},
        {"id": "obs-2", "traceId": "tr-1", "type": "GENERATION",
         "startTime": "2025-10-01T08:01:00.000Z", "model": "claude-3-5-haiku-20241022",
         "usageDetails": {"input": 2000, "cache_read_input_tokens": 1500, "output": 40,
                          "total": 2040}},  # total = input + output: input was inclusive
        {"id": "obs-3", "traceId": "tr-1", "type": "SPAN", "startTime": "2025-10-01T08:02:00Z"},
        {"id": "obs-4", "traceId": "tr-1", "type": "GENERATION", "startTime": "2025-10-01",
         "usageDetails": {"input": 1}},  # no model
    ], "meta": {"page": 1}}
    f = tmp_path / "observations.json"
    f.write_text(json.dumps(obs))
    stats, rows = _run("langfuse", f, tmp_path / "u.db")
    assert (stats.accepted, stats.rejected) == (2, 1)
    assert stats.rejections[0].reason.startswith("item 3: model is missing")
    assert stats.skipped == {"observation without usage": 1}
    assert rows[0][:9] == ("langfuse:obs-1", "openai", "gpt-4o-2024-08-06", 800, 1200, 0, 0,
                           100, 10)
    assert rows[1][1:9] == ("anthropic", "claude-3-5-haiku-20241022", 500, 1500, 0, 0, 40, 0)


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_table_with_mapping(tmp_path: Path, kind: str) -> None:
    rows_in = [
        {"timestamp": "2025-10-01T00:00:00Z", "llm": "gpt-4o", "prompt": 1000, "cached": 600,
         "completion": 50, "rid": "r1", "job": "t1"},
        {"timestamp": "2025-10-01T00:01:00Z", "llm": "claude-sonnet-4-5", "prompt": 500,
         "cached": 0, "completion": 5, "rid": "", "job": "t2"},
        {"timestamp": "2025-10-01T00:02:00Z", "llm": "gpt-4o", "prompt": 10, "cached": 60,
         "completion": 5, "rid": "r3", "job": "t3"},
    ]
    path = tmp_path / f"calls.{kind}"
    if kind == "csv":
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows_in[0]))
            w.writeheader()
            w.writerows(rows_in)
    elif kind == "jsonl":
        _jsonl(path, rows_in)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows_in), path)
    mapping = ("ts=timestamp,model=llm,input_tokens=prompt,cache_read_tokens=cached,"
               "output_tokens=completion,request_id=rid,task_id=job")
    stats, rows = _run("table", path, tmp_path / "u.db", mapping=mapping, inclusive=True)
    assert (stats.accepted, stats.rejected) == (2, 1)
    assert stats.rejections[0].line == (4 if kind == "csv" else 3)
    got = {r[11]: r[1:8] for r in rows}
    assert got["t1"] == ("openai", "gpt-4o", 400, 600, 0, 0, 50)
    assert got["t2"] == ("anthropic", "claude-sonnet-4-5", 500, 0, 0, 0, 5)
