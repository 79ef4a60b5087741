"""The day summary (analyze.summary): ``report --by day`` without DuckDB and the daily
re-run over appended lines give exactly what the SQL gives on the same store.

Every case runs two stores over the same Claude Code folder: one through the summary,
one with it turned off (``CTXBUDGET_NO_SUMMARY=1``: the SQL path every time), and
compares the JSON reports (all but ``engine`` and ``source``) after each change, then
the stores' calls and ``imports`` rows once the pending calls are folded in.
"""

from __future__ import annotations

import json
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ctxbudget.cli.main import app
from ctxbudget.store import open_store

MODEL = "claude-sonnet-4-20250514"


def line(sid: str, msg: str, req: str, ts: datetime, *, inp: int = 3, out: int = 10,
         cr: int = 0, w5: int = 0, w1: int = 0, side: bool = False, model: str = MODEL,
         uuid: str | None = None) -> str:
    return json.dumps({
        "sessionId": sid, "isSidechain": side, "type": "assistant",
        "uuid": uuid or f"u-{msg}-{req}-{out}", "requestId": req,
        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
        "message": {"id": msg, "model": model, "role": "assistant", "content": [],
                    "usage": {"input_tokens": inp, "output_tokens": out,
                              "cache_read_input_tokens": cr,
                              "cache_creation_input_tokens": w5 + w1,
                              "cache_creation": {"ephemeral_5m_input_tokens": w5,
                                                 "ephemeral_1h_input_tokens": w1}}}})


def append(path: Path, *lines: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(x + "\n" for x in lines))


class Pair:
    """The same folder reported into two stores: through the summary and without it."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.fast = tmp / "fast.duckdb"
        self.full = tmp / "full.duckdb"
        self.runner = CliRunner()

    def report(self, db: Path, *, summary: bool, from_logs: bool = True) -> dict[str, Any]:
        args = ["report", "--by", "day", "--db", str(db), "--json"]
        if from_logs:
            args[1:1] = [str(self.root), "--from", "claude-code"]
        env = {"TZ": "UTC", "CTXBUDGET_NO_SUMMARY": "0" if summary else "1"}
        r = self.runner.invoke(app, args, env=env)
        assert r.exit_code == 0, r.output
        out: dict[str, Any] = json.loads(r.stdout)
        return out

    def check(self, *, engine: str | None = "summary", from_logs: bool = True) -> dict[str, Any]:
        got = self.report(self.fast, summary=True, from_logs=from_logs)
        want = self.report(self.full, summary=False, from_logs=from_logs)
        if engine is not None:
            assert got["engine"] == engine
        assert want["engine"] == "duckdb"
        for d in (got, want):
            del d["engine"], d["source"]
        assert got == want
        return got

    def check_stores(self) -> None:
        q = "SELECT * FROM calls ORDER BY call_key"
        qi = ("SELECT path, size_bytes, mtime, lines, accepted, rejected, tail_hash FROM imports "
              "ORDER BY path")
        with open_store(self.fast) as a, open_store(self.full) as b:
            assert not (self.fast.parent / "fast.duckdb.pending").exists()
            assert a.con.execute(q).fetchall() == b.con.execute(q).fetchall()
            assert a.con.execute(qi).fetchall() == b.con.execute(qi).fetchall()


@pytest.fixture
def pair(data_dir: Path, tmp_path: Path) -> Pair:
    root = tmp_path / "claude"
    shutil.copytree(data_dir / "claude-code" / "projects", root / "projects")
    return Pair(root, tmp_path)


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.jsonl"))


def _calls(path: Path) -> list[dict[str, Any]]:
    out = []
    for raw in path.read_text().splitlines():
        d = json.loads(raw)
        if isinstance(d.get("message"), dict) and d["message"].get("usage"):
            out.append(d)
    return out


def _ts(d: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(d["timestamp"])


def test_appends_equal_the_sql(pair: Pair) -> None:
    first = pair.check(engine="duckdb")  # no summary yet: the SQL answers and writes one
    assert (pair.fast.parent / "fast.duckdb.summary").exists()
    assert pair.check() == first  # unchanged logs: from the summary

    a, b, c = _files(pair.root)
    ca, cb = _calls(a), _calls(b)
    sid_a, sid_b = ca[0]["sessionId"], cb[0]["sessionId"]
    t0 = _ts(ca[-1])
    # new calls of a session on its days, one on a day before any price row was resolved
    append(a, line(sid_a, "msg_new1", "req_new1", t0 + timedelta(seconds=30), cr=900, w5=40),
           line(sid_a, "msg_new2", "req_new2", t0 - timedelta(days=40), out=77))
    pair.check()
    # a copy of a stored call in another file: more tokens replaces it (and moves it to
    # that session), an equal one and a lesser one do not
    m0 = ca[0]["message"]
    big = line(sid_b, m0["id"], ca[0]["requestId"], _ts(ca[0]) + timedelta(seconds=5),
               out=5000, cr=m0["usage"].get("cache_read_input_tokens", 0))
    append(b, big)
    pair.check()
    m1 = ca[1]["message"]
    u1 = m1["usage"]
    append(c, line(sid_b, m1["id"], ca[1]["requestId"], _ts(ca[1]),
                   inp=u1["input_tokens"], out=1, cr=u1.get("cache_read_input_tokens", 0)))
    append(c, json.dumps(ca[2]))  # the same line again
    pair.check()
    # a read two minutes after the session's last write: that write is no longer wasted
    writes = [d for d in cb if d["message"]["usage"].get("cache_creation_input_tokens")]
    tw = _ts(writes[-1])
    append(b, line(sid_b, "msg_read", "req_read", tw + timedelta(minutes=2), cr=5000))
    before = pair.report(pair.full, summary=False)["total"]["wasted_write_tokens"]
    got = pair.check()
    assert got["total"]["wasted_write_tokens"] <= before
    # a new session in a new project; a sub-agent copy of a main-chain call (loses)
    append(pair.root / "projects" / "other" / "s9.jsonl",
           line("s9", "msg_s9a", "req_s9a", t0 + timedelta(hours=2), w1=300),
           line("s9", "msg_s9b", "req_s9b", t0 + timedelta(hours=2, minutes=50), cr=300),
           line("s9", "msg_new1", "req_new1", t0 + timedelta(seconds=30), cr=900, w5=40,
                side=True, out=99999))
    pair.check()
    # a streamed copy spanning the append: the file's last call grows
    last = _calls(c)[-1]
    u = last["message"]["usage"]
    append(c, line(last["sessionId"], last["message"]["id"], last["requestId"],
                   _ts(last) + timedelta(seconds=1), inp=u["input_tokens"],
                   out=u["output_tokens"] + 50, cr=u.get("cache_read_input_tokens", 0),
                   w5=u.get("cache_creation", {}).get("ephemeral_5m_input_tokens", 0)))
    pair.check()
    # report --by day without --from reads the summary and its pending calls
    pair.check(from_logs=False)
    pair.check_stores()
    # the fold made the summary stale: the SQL answers (and writes a new summary)
    pair.check(engine="duckdb")
    pair.check()


def test_random_histories_equal_the_sql(pair: Pair) -> None:
    """Many sessions, ties in time, copies across files and rounds, sub-agents."""
    rnd = random.Random(14)
    pair.check(engine="duckdb")
    base = datetime(2025, 9, 3, 12, 0, tzinfo=UTC)
    sessions = [f"sess-{i}" for i in range(4)]
    files = {s: pair.root / "projects" / f"p{i % 2}" / f"{s}.jsonl"
             for i, s in enumerate(sessions)}
    made: list[tuple[str, str, datetime, int]] = []
    for _round in range(5):
        for _ in range(rnd.randint(5, 25)):
            sid = rnd.choice(sessions)
            if made and rnd.random() < 0.3:  # a copy of an earlier call
                msg, req, ts, out = rnd.choice(made)
                ts = ts + timedelta(milliseconds=rnd.choice([0, 0, 500]))
                out = out + rnd.choice([-1, 0, 0, 7])
            else:
                n = len(made)
                msg, req = f"msg_r{n}", f"req_r{n}"
                ts = base + timedelta(minutes=rnd.choice([0, 1, 3, 4, 6, 30, 59, 61, 200]),
                                      days=rnd.choice([0, 0, 1]))
                out = rnd.randint(1, 50)
                made.append((msg, req, ts, out))
            append(files[sid], line(sid, msg, req, ts, out=max(out, 0),
                                    cr=rnd.choice([0, 0, 100]), w5=rnd.choice([0, 50]),
                                    w1=rnd.choice([0, 0, 20]), side=rnd.random() < 0.1))
        pair.check()
    pair.check_stores()


def test_a_rewritten_log_goes_to_the_sql(pair: Pair) -> None:
    pair.check(engine="duckdb")
    a = _files(pair.root)[0]
    text = a.read_text().splitlines()
    a.write_text("\n".join(text[:-3]) + "\n")  # truncated: not an append
    pair.check(engine="duckdb")
    pair.check()


def test_a_damaged_pending_file_is_read_again(pair: Pair, caplog: pytest.LogCaptureFixture) -> None:
    pair.check(engine="duckdb")
    a = _files(pair.root)[0]
    sid = _calls(a)[0]["sessionId"]
    append(a, line(sid, "msg_x", "req_x", datetime(2025, 9, 3, 1, tzinfo=UTC), out=321))
    pair.check()
    pending = pair.fast.with_name("fast.duckdb.pending")
    pending.write_bytes(pending.read_bytes()[:40])  # cut: a crash of the disk, say
    with caplog.at_level("WARNING"):
        # dropped: the summary as it was, and the offsets it keeps, read the lines again
        pair.check()
    assert any("unreadable" in r.getMessage() for r in caplog.records)
    pair.check_stores()


def test_another_write_makes_the_summary_stale(pair: Pair, tmp_path: Path) -> None:
    pair.check(engine="duckdb")
    a = _files(pair.root)[0]
    append(a, line(_calls(a)[0]["sessionId"], "msg_y", "req_y",
                   datetime(2025, 9, 3, 2, tzinfo=UTC), out=5))
    pair.check()
    other = tmp_path / "other" / "x.jsonl"
    append(other, line("sx", "msg_z", "req_z", datetime(2025, 9, 3, 3, tzinfo=UTC)))
    for db in (pair.fast, pair.full):  # an import: folds the pending calls, then writes
        r = pair.runner.invoke(app, ["import", "claude-code", str(other), "--db", str(db)])
        assert r.exit_code == 0, r.output
    pair.check(engine="duckdb")
    pair.check()
    pair.check_stores()


@pytest.fixture
def bare(tmp_path: Path) -> Pair:
    root = tmp_path / "claude"
    (root / "projects").mkdir(parents=True)
    return Pair(root, tmp_path)


def test_wasted_writes_at_the_ttl_boundaries(bare: Pair) -> None:
    f = bare.root / "projects" / "p" / "s1.jsonl"
    t0 = datetime(2025, 9, 3, 10, 0, tzinfo=UTC)
    append(f, line("s1", "m0", "r0", t0, w5=100),
           line("s1", "m1", "r1", t0 + timedelta(minutes=10), w5=200),
           line("s1", "m2", "r2", t0 + timedelta(hours=2), w1=400),
           line("s1", "m3", "r3", t0 + timedelta(hours=5), w5=800))
    assert bare.check(engine="duckdb")["total"]["wasted_write_tokens"] == 1500
    append(f, line("s1", "m4", "r4", t0 + timedelta(minutes=5), cr=10),  # at the TTL
           line("s1", "m5", "r5", t0 + timedelta(minutes=15, milliseconds=1), cr=10),  # past
           line("s1", "m6", "r6", t0 + timedelta(hours=2, minutes=59), cr=10),
           # another model reads: not the same cache
           line("s1", "m7", "r7", t0 + timedelta(hours=5, seconds=1), cr=10,
                model="claude-opus-4-1-20250805"))
    assert bare.check()["total"]["wasted_write_tokens"] == 200 + 800
    # a write at the same instant as a read: only a read after it (by call key) counts
    append(f, line("s1", "m9", "r9", t0 + timedelta(hours=5), cr=10))
    assert bare.check()["total"]["wasted_write_tokens"] == 200


def test_an_equal_copy_leaves_the_stored_call(bare: Pair) -> None:
    a = bare.root / "projects" / "p" / "a.jsonl"
    b = bare.root / "projects" / "p" / "b.jsonl"
    t = datetime(2025, 9, 3, 10, 0, tzinfo=UTC)
    append(a, line("sa", "mx", "rx", t, out=40))
    append(b, line("sb", "my", "ry", t, out=40))
    assert bare.check(engine="duckdb")["total"]["tasks"] == 2
    append(b, line("sb", "mx", "rx", t, out=40))  # same rank, another session
    assert bare.check()["total"]["tasks"] == 2
    append(b, line("sb", "mx", "rx", t, out=41))  # more tokens: moves to session sb
    assert bare.check()["total"]["tasks"] == 1
    bare.check_stores()


def test_tracked_tasks_and_outcomes_beside_claude_code(bare: Pair) -> None:
    """A store that also holds tracked calls and tasks (outcomes, a failed call, a task a
    cap blocked before its first call, one blocked after): the summary keeps their
    figures as the SQL gives them while Claude Code calls come in."""
    from ctxbudget import Call, Task, Usage

    t = datetime(2025, 9, 3, 9, 0, tzinfo=UTC)
    calls = [
        Call(ts=t, provider="anthropic", model=MODEL, usage=Usage(input_tokens=10,
             output_tokens=5, cache_write_5m_tokens=100), task_id="t1", session_id="s-app",
             request_id="a1", source="track", task_type="triage"),
        Call(ts=t + timedelta(minutes=2), provider="anthropic", model=MODEL,
             usage=Usage(input_tokens=10, output_tokens=5, cache_read_tokens=100),
             task_id="t2", session_id="s-app", request_id="a2", source="track",
             task_type="triage", status="error"),
        Call(ts=t + timedelta(days=1), provider="openai", model="gpt-4o",
             usage=Usage(input_tokens=1000, output_tokens=50), task_id="t3",
             request_id="a3", source="track", task_type="answer"),
        Call(ts=t, provider="acme", model="no-such-model", usage=Usage(input_tokens=7),
             task_id="t4", request_id="a4", source="track"),
        # outside any task: the "(no task)" group, not a task
        Call(ts=t + timedelta(hours=1), provider="anthropic", model=MODEL,
             usage=Usage(input_tokens=20, output_tokens=5), request_id="a5", source="track"),
        Call(ts=t + timedelta(days=1), provider="anthropic", model=MODEL,
             usage=Usage(input_tokens=30, output_tokens=5), request_id="a6", source="track"),
    ]
    tasks = [Task(task_id="t1", task_type="triage", outcome="success"),
             Task(task_id="t2", task_type="triage", outcome="failure"),
             Task(task_id="t3", task_type="answer", outcome="blocked",
                  blocked_by={"cap": "max_calls", "limit": "1", "task_id": "t3",
                              "phase": "pre"}),
             Task(task_id="t5", task_type="answer", outcome="blocked", started_at=t)]
    for db in (bare.fast, bare.full):
        with open_store(db) as st:
            st.insert_calls(calls)
            st.upsert_tasks(tasks)
    f = bare.root / "projects" / "p" / "s1.jsonl"
    append(f, line("s1", "m0", "r0", t, w5=100))
    got = bare.check(engine="duckdb")
    assert got["total"]["blocked_tasks"] == 1 and got["unpriced_models"]
    assert {x["task_type"]: x["blocked"] for x in got["types"]} == {
        "(none)": 0, "(no task)": 0, "answer": 2, "triage": 0}
    assert {x["task_type"]: (x["tasks"], x["calls"]) for x in got["types"]}["(no task)"] == (
        0, 2)
    append(f, line("s1", "m1", "r1", t + timedelta(minutes=1), cr=100),
           line("s1", "m2", "r2", t + timedelta(days=1), out=3))
    bare.check()
    bare.check(from_logs=False)
    bare.check_stores()


def test_server_tool_requests_go_to_the_sql(pair: Pair) -> None:
    """A web search line appended to a summarized folder declines to the SQL path (which
    prices the search); a store holding any tool request writes no summary, so the next
    reports stay on the SQL path too. Both stores agree throughout."""
    pair.check(engine="duckdb")
    assert pair.check()["total"]["tool_fees_usd"] == "0"
    a = _files(pair.root)[0]
    d = _calls(a)[-1]
    d["message"] = {**d["message"], "id": "msg_search", "usage": {
        **d["message"]["usage"], "server_tool_use": {"web_search_requests": 2}}}
    d["requestId"], d["uuid"] = "req_search", "u-search"
    append(a, json.dumps(d))
    got = pair.check(engine="duckdb")
    assert got["total"]["tool_fees_usd"] == "0.020000000"
    assert pair.check(engine="duckdb") == got
    pair.check_stores()
