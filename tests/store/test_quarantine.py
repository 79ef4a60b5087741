"""One bad spool record is quarantined with its file and line; every other record lands."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctxbudget.cli.main import app
from ctxbudget.store import open_store
from ctxbudget.store.spool import ingest_spool


def _call(rid: str, **over: object) -> dict[str, object]:
    d: dict[str, object] = {"k": "c", "rid": rid, "ts": "2026-01-02T03:04:05+00:00",
                            "provider": "openai", "model": "gpt-4o", "u": [10, 0, 0, 0, 1, 0],
                            "status": "ok", "source": "track"}
    d.update(over)
    return d


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with open_store(db, read_only=True) as s:
        return [tuple(r) for r in s.con.execute(sql).fetchall()]


#: The poisons of issue #18 (each stopped its whole file before) and a few more.
POISON: list[tuple[str, bytes]] = [
    ("token >= 2^63", json.dumps(_call("p", u=[2**63, 0, 0, 0, 1, 0])).encode()),
    ("turn >= 2^31", json.dumps(_call("p", turn=2**31)).encode()),
    ("ts without zone", json.dumps(_call("p", ts="2026-01-02T03:04:05")).encode()),
    ("ts in 1970", json.dumps(_call("p", ts="1970-01-01T00:00:00+00:00")).encode()),
    ("NaN latency", json.dumps(_call("p", latency_ms=float("nan"))).encode()),
    ("negative latency", json.dumps(_call("p", latency_ms=-5)).encode()),
    ("negative tokens", json.dumps(_call("p", u=[-1, 0, 0, 0, 1, 0])).encode()),
    ("lone surrogate", b'{"k":"c","rid":"p","ts":"2026-01-02T03:04:05+00:00","provider":'
                       b'"openai","model":"gpt-\\ud800","u":[1,0,0,0,1,0]}'),
    ("not an object", b"[1, 2, 3]"),
    ("non-UTF-8", b'{"k":"c","rid":"p","model":"\xff\xfe"}'),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000),
    ("task ts without zone", json.dumps({"k": "t", "task_id": "t1",
                                         "started_at": "2026-01-02T03:04:05"}).encode()),
    ("unknown detail field", json.dumps(_call("p", d={"web_searches": 1})).encode()),
    ("negative tool count", json.dumps(_call("p", d={"web_search_requests": -1})).encode()),
    ("modality over its bucket", json.dumps(_call("p", d={"input_audio_tokens": 11})).encode()),
    ("other counters not counts", json.dumps(_call("p", o={"x": "1"})).encode()),
]


def test_each_poison_is_quarantined_and_the_rest_of_the_file_lands(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    db = tmp_path / "u.duckdb"
    lines = []
    for i, (_, poison) in enumerate(POISON):
        lines.append(json.dumps(_call(f"g{i}a")).encode())
        lines.append(poison)
        lines.append(json.dumps(_call(f"g{i}b")).encode())
    lines.append(json.dumps({"k": "t", "task_id": "ok-task", "outcome": "success",
                             "started_at": "2026-01-02T03:04:05+00:00"}).encode())
    (spool / "999999999-dead.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    rep = ingest_spool(db, spool)
    assert (rep.calls, rep.tasks) == (2 * len(POISON), 1)
    assert rep.rejected == rep.quarantined == rep.quarantine_total == len(POISON)
    assert rep.retired == 1
    q = _rows(db, "SELECT file, line, reason FROM quarantine ORDER BY line")
    assert [r[1] for r in q] == [3 * i + 2 for i in range(len(POISON))]
    assert all(r[0] == "999999999-dead.jsonl" and r[2] for r in q)
    assert _rows(db, "SELECT count(*) FROM calls") == [(2 * len(POISON),)]
    # a second run (e.g. --redo after losing the offsets) adds nothing twice
    with open_store(db) as s:
        s.con.execute("DELETE FROM spool_offsets")
    rep2 = ingest_spool(db, spool, redo=True)
    assert rep2.calls == 2 * len(POISON)
    assert _rows(db, "SELECT count(*) FROM calls") == [(2 * len(POISON),)]
    assert _rows(db, "SELECT count(*) FROM quarantine") == [(len(POISON),)]


def test_ingest_and_report_tell_about_the_quarantine(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    spool = home / "spool"
    spool.mkdir(parents=True)
    (spool / "999999999-x.jsonl").write_bytes(
        json.dumps(_call("a")).encode() + b"\n" + POISON[0][1] + b"\n")
    monkeypatch.setenv("CTXBUDGET_HOME", str(home))
    r = CliRunner().invoke(app, ["ingest"])
    assert r.exit_code == 0, r.output
    assert "quarantined 1" in r.output and "999999999-x.jsonl:2:" in r.output
    r = CliRunner().invoke(app, ["ingest", "--quarantine", "--json"])
    assert r.exit_code == 0, r.output
    listed = json.loads(r.output)
    assert [(x["file"], x["line"]) for x in listed] == [("999999999-x.jsonl", 2)]
    r = CliRunner().invoke(app, ["report", "--json"])
    assert r.exit_code == 0, r.output


def test_read_commands_warn_about_quarantined_records(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    from ctxbudget.analyze.source import open_source

    spool = tmp_path / "spool"
    spool.mkdir()
    db = tmp_path / "u.duckdb"
    (spool / "999999999-x.jsonl").write_bytes(POISON[1][1] + b"\n")
    ingest_spool(db, spool)
    with caplog.at_level(logging.WARNING), open_source(db=db):
        pass
    assert "1 record(s) quarantined" in caplog.text


def test_usage_detail_lines_land_in_their_columns(tmp_path: Path) -> None:
    """``"d"`` (Usage detail) and ``"o"`` (other billed counters) of a call line are stored
    in the detail columns, by the fast reader and by the line-by-line one (a file with a
    bad line) alike."""
    spool = tmp_path / "spool"
    spool.mkdir()
    for name, tag, extra in (("999999998-fast.jsonl", "f", b""),
                             ("999999997-slow.jsonl", "s", POISON[0][1] + b"\n")):
        good = [_call(f"{tag}1", d={"web_search_requests": 2, "input_audio_tokens": 4}),
                _call(f"{tag}2", o={"image_generation_call": 1}), _call(f"{tag}3")]
        (spool / name).write_bytes(b"".join(json.dumps(c).encode() + b"\n" for c in good)
                                   + extra)
    db = tmp_path / "u.duckdb"
    rep = ingest_spool(db, spool)
    assert rep.calls == 6 and rep.quarantined == 1
    rows = _rows(db, "SELECT call_key, web_search_requests, input_audio_tokens, "
                     "output_audio_tokens, other_tool_requests FROM calls ORDER BY call_key")
    assert rows == [(f"track:{t}{n}", *v) for t in "fs" for n, v in (
        (1, (2, 4, None, None)), (2, (None, None, None, '{"image_generation_call":1}')),
        (3, (None, None, None, None)))]
