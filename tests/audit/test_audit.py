"""Cache audit: sequences that break the cache on purpose, built from recorded requests."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctxbudget.analyze.audit import (
    AuditReport,
    Request,
    audit_requests,
    byte_diff,
    load_requests,
)
from ctxbudget.analyze.requests import build_request

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)

TOOL_A = {"name": "get_weather", "description": "Current weather for a city.",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}
TOOL_B = {"name": "search_docs", "description": "Search the product documentation.",
          "input_schema": {"type": "object", "properties": {"query": {"type": "string"},
                                                             "k": {"type": "integer"}}}}


@pytest.fixture(scope="module")
def anthropic_bodies(data_dir: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load((data_dir / "api-responses" / "test_anthropic_cache_real_api.yaml")
                         .read_text())
    return [it["request"]["parsed_body"] for it in doc["interactions"]]


@pytest.fixture(scope="module")
def convo(anthropic_bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """The recorded 3-message conversation, with two tools added."""
    body = copy.deepcopy(anthropic_bodies[1])
    body["tools"] = [copy.deepcopy(TOOL_A), copy.deepcopy(TOOL_B)]
    return body


def turn(base: Mapping[str, Any], n_messages: int, **changes: Any) -> dict[str, Any]:
    """``base`` with its conversation grown/cut to ``n_messages`` (alternating turns)."""
    body = copy.deepcopy(dict(base))
    msgs = body["messages"]
    while len(msgs) < n_messages:
        role = "assistant" if len(msgs) % 2 else "user"
        msgs.append({"role": role, "content": [
            {"type": "text", "text": f"{role} turn {len(msgs)}: " + "details " * 40}]})
    body["messages"] = msgs[:n_messages]
    body.update(changes)
    return body


def run(bodies: list[dict[str, Any]], gaps_s: list[float] | None = None) -> tuple[
        AuditReport, list[Request]]:
    ts = T0
    reqs = []
    for i, b in enumerate(bodies):
        if i:
            ts += timedelta(seconds=(gaps_s or [30.0] * len(bodies))[i - 1])
        reqs.append(build_request(b, index=i, where=f"seq#{i}", ts=ts, uri="https://api.anthropic.com/v1/messages"))
    return audit_requests(reqs), reqs


def tokens_of(req: Request, pred: Callable[[Any], bool]) -> int:
    return sum(b.tokens for b in req.blocks if pred(b))


def test_stable_sequence_reports_nothing(convo: dict[str, Any]) -> None:
    seq = [turn(convo, 1), turn(convo, 3), turn(convo, 5), turn(convo, 7)]
    rep, reqs = run(seq)
    assert rep.findings == ()
    assert all(r.breakpoints for r in reqs)


def test_recorded_cassettes_report_nothing(data_dir: Path) -> None:
    for f in sorted((data_dir / "api-responses").glob("*.yaml")):
        reqs, notes = load_requests(f)
        rep = audit_requests(reqs, notes=notes)
        assert rep.findings == (), f.name


def test_timestamp_in_system_prompt(convo: dict[str, Any]) -> None:
    sys0 = convo["system"]
    seq = [turn(convo, 1, system=f"{sys0} Current time: 2026-11-28T09:00:00Z."),
           turn(convo, 3, system=f"{sys0} Current time: 2026-11-28T09:00:30Z.")]
    rep, reqs = run(seq)
    (f,) = rep.findings
    assert f.cause == "system_changed"
    assert f.block == "system[0]" and f.component == "system"
    assert "timestamp" in f.flags
    # the changed system block plus the first user message (cached by call 0) were lost
    expected = tokens_of(reqs[1], lambda b: b.label in ("system[0]", "messages[0].content[0]"))
    assert f.lost_tokens == expected > 1000
    assert f.diff is not None and f.diff["redacted"] and "2026" not in f.diff["this"]
    assert f.lost_usd is not None and f.lost_usd > 0


def test_tools_reordered(convo: dict[str, Any]) -> None:
    seq = [turn(convo, 1), turn(convo, 3, tools=[TOOL_B, TOOL_A])]
    rep, reqs = run(seq)
    (f,) = rep.findings
    assert f.cause == "tools_reordered" and f.block == "tools[0]"
    expected = tokens_of(reqs[1], lambda b: b.component in ("tools", "system")
                         or b.label == "messages[0].content[0]")
    assert f.lost_tokens == expected


def test_tool_schema_reserialized(convo: dict[str, Any]) -> None:
    reordered = {"input_schema": TOOL_A["input_schema"], "name": TOOL_A["name"],
                 "description": TOOL_A["description"]}
    assert json.dumps(reordered, sort_keys=True) == json.dumps(TOOL_A, sort_keys=True)
    seq = [turn(convo, 1), turn(convo, 3, tools=[reordered, TOOL_B])]
    rep, reqs = run(seq)
    (f,) = rep.findings
    assert f.cause == "tools_reserialized" and f.block == "tools[0]"
    assert "get_weather" in f.detail
    assert f.diff is not None and f.diff["offset"] == 2  # '{"' then the first key differs
    expected = tokens_of(reqs[1], lambda b: b.component in ("tools", "system")
                         or b.label == "messages[0].content[0]")
    assert f.lost_tokens == expected


def test_front_trimmed_history(convo: dict[str, Any]) -> None:
    full = turn(convo, 5)
    trimmed = turn(convo, 7)
    trimmed["messages"] = trimmed["messages"][2:]  # drop the first exchange
    rep, reqs = run([full, trimmed])
    (f,) = rep.findings
    assert f.cause == "history_truncated" and f.component == "messages"
    assert "2 blocks dropped" in f.detail
    # the three messages both calls share (old messages 2..4) were re-sent uncached
    expected = tokens_of(reqs[1], lambda b: b.label in (
        "messages[0].content[0]", "messages[1].content[0]", "messages[2].content[0]"))
    assert f.lost_tokens == expected


def test_six_minute_gap(convo: dict[str, Any]) -> None:
    rep, reqs = run([turn(convo, 1), turn(convo, 3)], gaps_s=[360])
    (f,) = rep.findings
    assert f.cause == "ttl_expired"
    assert "360 s" in f.detail and "TTL 300 s" in f.detail
    assert f.lost_tokens == reqs[0].prompt_tokens  # everything call 0 had written
    # 4 minutes is within the 5-minute TTL; a 1h TTL survives 6 minutes
    assert run([turn(convo, 1), turn(convo, 3)], gaps_s=[240])[0].findings == ()
    one_h = {"type": "ephemeral", "ttl": "1h"}
    rep_1h, _ = run([turn(convo, 1, cache_control=one_h), turn(convo, 3, cache_control=one_h)],
                    gaps_s=[360])
    assert rep_1h.findings == ()


def test_ttl_is_refreshed_on_hit(convo: dict[str, Any]) -> None:
    # 4 + 4 minutes: each call refreshes the prefix, so nothing expires
    rep, _ = run([turn(convo, 1), turn(convo, 3), turn(convo, 5)], gaps_s=[240, 240])
    assert rep.findings == ()


def test_model_changed(convo: dict[str, Any]) -> None:
    rep, reqs = run([turn(convo, 1), turn(convo, 3, model="claude-haiku-4-5")])
    (f,) = rep.findings
    assert f.cause == "model_changed" and "claude-haiku-4-5" in f.detail
    expected = tokens_of(reqs[1], lambda b: b.component in ("tools", "system")
                         or b.label == "messages[0].content[0]")
    assert f.lost_tokens == expected


def test_below_minimum_cacheable(convo: dict[str, Any]) -> None:
    short = dict(convo, messages=[{"role": "user", "content": "Hi!"}])
    rep, reqs = run([turn(short, 1), turn(short, 3)])
    (f,) = rep.findings
    assert f.cause == "below_min_cacheable" and "1024" in f.detail
    assert f.lost_tokens == reqs[0].prompt_tokens < 1024


def test_breakpoint_beyond_lookback(convo: dict[str, Any]) -> None:
    # an agent loop appends 24 blocks between two calls; the only breakpoint is the last block
    rep, reqs = run([turn(convo, 1), turn(convo, 25)])
    (f,) = rep.findings
    assert f.cause == "beyond_lookback"
    assert f.lost_tokens == reqs[0].prompt_tokens
    assert run([turn(convo, 1), turn(convo, 19)])[0].findings == ()


def test_no_cache_control(convo: dict[str, Any]) -> None:
    plain = {k: v for k, v in convo.items() if k != "cache_control"}
    rep, reqs = run([turn(plain, 1), turn(plain, 3)])
    (f,) = rep.findings
    assert f.cause == "no_cache_breakpoint"
    assert f.lost_tokens == reqs[0].prompt_tokens


def test_provider_diagnostic_wins(convo: dict[str, Any]) -> None:
    a = build_request(turn(convo, 1), index=0, where="a", ts=T0)
    b = build_request(turn(convo, 3, system="You are a terse assistant."), index=1, where="b",
                      ts=T0 + timedelta(seconds=5),
                      response={"diagnostics": {"cache_miss_reason": {
                          "type": "tools_changed", "cache_missed_input_tokens": 1200}}})
    (f,) = audit_requests([a, b]).findings
    assert f.cause == "tools_changed" and f.provider_reason == "tools_changed"


def test_openai_chat_tools_reordered(data_dir: Path) -> None:
    doc = yaml.safe_load((data_dir / "api-responses" / "test_openai_chat_prompt_cache_e2e.yaml")
                         .read_text())
    body = doc["interactions"][0]["request"]["parsed_body"]
    fa = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    fb = {"type": "function", "function": {"name": "shelve", "parameters": {"type": "object"}}}
    b1 = dict(copy.deepcopy(body), tools=[fa, fb])
    b2 = dict(copy.deepcopy(body), tools=[fb, fa])
    uri = "https://api.openai.com/v1/chat/completions"
    reqs = [build_request(b, index=i, where=str(i), ts=T0 + timedelta(seconds=i), uri=uri)
            for i, b in enumerate([b1, b2])]
    (f,) = audit_requests(reqs).findings
    assert f.cause == "tools_reordered"
    assert f.group == "key:pydantic-ai-prompt-cache-e2e-chat"
    # explicit mode: the earlier call cached up to its breakpoint (not the trailing
    # "Reply with exactly: OK" part), so that is what the reorder lost
    assert reqs[0].breakpoints == (3,)
    assert f.lost_tokens == sum(b.tokens for b in reqs[1].blocks[:-1]) > 1024


def test_byte_diff_show_bytes_and_flags() -> None:
    a = "Today is 2026-11-28, session 1b4e28ba-2fa1-11d2-883f-0016d3cca427."
    b = "Today is 2026-11-29, session 6fa459ea-ee8a-3ca4-894e-db77e160355e."
    d = byte_diff(a, b, show_bytes=True)
    assert d["offset"] == a.index("28,") + 1
    assert "2026-11-29" in d["this"] and set(d["flags"]) >= {"date", "uuid"}
    assert "2026" not in byte_diff(a, b)["this"]


def test_jsonl_input_and_errors(tmp_path: Path, convo: dict[str, Any]) -> None:
    p = tmp_path / "calls.jsonl"
    lines = [{"timestamp": (T0 + timedelta(seconds=s)).isoformat(), "request": b,
              "session_id": "s1"}
             for s, b in ((0, turn(convo, 1)), (400, turn(convo, 3)))]
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    reqs, _ = load_requests(p)
    (f,) = audit_requests(reqs).findings
    assert f.cause == "ttl_expired" and f.where.endswith("calls.jsonl:2")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(lines[0]) + "\n{oops\n")
    from ctxbudget.errors import InputFormatError

    with pytest.raises(InputFormatError, match=r"bad.jsonl:2"):
        load_requests(bad)


def test_audit_store_fingerprints_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ctxbudget.cli.main import app
    from ctxbudget.store import open_store
    from ctxbudget.usage import Call, Usage

    rows = [(0, ("a", "b", "c"), Usage(input_tokens=100, cache_write_5m_tokens=2900)),
            (60, ("a", "b", "c", "d"), Usage(input_tokens=100, cache_read_tokens=2900,
                                            cache_write_5m_tokens=1000)),
            (500, ("a", "b", "c", "d", "e"), Usage(input_tokens=100,
                                                   cache_write_5m_tokens=4900)),
            (530, ("a", "x", "c", "d", "e", "f"), Usage(input_tokens=6000))]
    calls = [Call(ts=T0 + timedelta(seconds=s), provider="anthropic", model="claude-sonnet-4-5",
                  usage=u, prefix_fingerprint=fp, session_id="s1", request_id=f"r{i}")
             for i, (s, fp, u) in enumerate(rows)]
    db = tmp_path / "u.duckdb"
    with open_store(db) as st:
        st.insert_calls(calls)
    r = CliRunner().invoke(app, ["audit", "--db", str(db), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    causes = [(f["index"], f["cause"]) for f in d["findings"]]
    assert causes == [(2, "ttl_expired"), (3, "prefix_changed")]
    ttl = d["findings"][0]
    # call 1 wrote its 4 blocks (4000 tokens, 1000 each); 440 s later they had expired
    assert ttl["lost_tokens"] == 4000 and "440 s" in ttl["detail"]
    # call 3 re-sent blocks c, d, e that call 2 had cached, after block 1 changed
    assert d["findings"][1]["lost_tokens"] == 3000 and d["findings"][1]["block"] == "block[1]"


def test_audit_cli_text_and_show_bytes(tmp_path: Path, convo: dict[str, Any]) -> None:
    from typer.testing import CliRunner

    from ctxbudget.cli.main import app

    sys0 = convo["system"]
    p = tmp_path / "calls.jsonl"
    p.write_text("\n".join(json.dumps({
        "timestamp": (T0 + timedelta(seconds=30 * i)).isoformat(),
        "request": turn(convo, 1 + 2 * i, system=f"{sys0} Now: 2026-11-28T09:00:{30 * i:02d}Z"),
    }) for i in range(2)) + "\n")
    r = CliRunner().invoke(app, ["audit", str(p)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "system_changed" in r.output and "2026-11-28T09:00:30Z" not in r.output
    r = CliRunner().invoke(app, ["audit", str(p), "--show-bytes", "--json"])
    (f,) = json.loads(r.output)["findings"]
    assert "2026-11-28T09:00:30Z" in f["diff"]["this"]
    assert CliRunner().invoke(app, ["audit", str(p), "--check"]).exit_code == 1
    assert CliRunner().invoke(app, ["audit"]).exit_code == 2


def test_lost_dollars_are_write_minus_read_rate(convo: dict[str, Any]) -> None:
    from decimal import Decimal

    from ctxbudget.prices import PriceBook

    rep, _ = run([turn(convo, 1), turn(convo, 3, tools=[TOOL_B, TOOL_A])])
    (f,) = rep.findings
    price = PriceBook().resolve("claude-sonnet-4-5", "anthropic", T0)
    r = price.rates_for(0)
    assert f.lost_usd == Decimal(f.lost_tokens) * (r.cache_write_5m_mtok - r.cache_read_mtok) \
        / Decimal(1_000_000)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.integers(1, 9), st.floats(0, 299)), min_size=1, max_size=6),
       break_at=st.one_of(st.none(), st.integers(0, 5)))
def test_growing_sessions_are_stable_until_broken(
        convo: dict[str, Any], steps: list[tuple[int, float]], break_at: int | None) -> None:
    n = 1
    bodies = [turn(convo, 1)]
    gaps = []
    for k, (grow, gap) in enumerate(steps):
        n += 2 * ((grow + 1) // 2)  # whole exchanges, so every call ends on a user turn
        body = turn(convo, n)
        if break_at == k:
            body["tools"] = [TOOL_B, TOOL_A]
        bodies.append(body)
        gaps.append(gap)
    rep, reqs = run(bodies, gaps_s=gaps)
    assert all(f.lost_tokens <= reqs[f.index].prompt_tokens for f in rep.findings)
    if break_at is None or break_at >= len(steps):
        assert rep.findings == ()
    else:
        first = rep.findings[0]
        assert (first.index, first.cause) == (break_at + 1, "tools_reordered")
        # the call after the break may go back to the original order: it then reads what
        # the call before the break wrote, unless that is more than 5 minutes or 20 blocks
        # away
        assert {f.cause for f in rep.findings[1:]} <= {"tools_reordered", "ttl_expired",
                                                       "beyond_lookback"}


def test_change_after_the_ttl_costs_nothing(convo: dict[str, Any]) -> None:
    # tools reordered, but 10 minutes later: the old prefix had expired anyway
    rep, _ = run([turn(convo, 1), turn(convo, 3, tools=[TOOL_B, TOOL_A])], gaps_s=[600])
    assert rep.findings == ()
