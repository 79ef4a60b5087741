"""Fuzz every input format and config file through the CLI (issue #18, bad input).

Each target starts from real data (``../shared/data``, ``examples/``,
``tests/sources/data``) and applies one to three mutations: bytes that are not
UTF-8, lone surrogates, deep nesting, huge integers (past 2^63, past Python's
4,300-digit int-from-string limit), NaN / infinite / negative numbers, 1970 and
year-9999 timestamps, a field over the csv module's 128 KiB limit, truncation and
random byte flips. Every mutated file goes through the CLI in-process, and:

* no command ends in a traceback: the exit code is 0, 1 or 2 and no exception
  escapes (an exit 2 says why on stderr);
* nothing NaN, negative or out of range is stored (the store's calls and tasks are
  checked after each import / ingest) or printed as an accepted value (the JSON of
  ``plan``, ``cost``, ``prices``, ``check``);
* every line an import reads is accounted for (accepted, duplicate, skipped or
  rejected) and ``--strict`` exits 2 when a line was rejected.

The example budget is fixed (``CTXBUDGET_FUZZ_EXAMPLES``, default 12 per target,
derandomized): CI runs the same inputs every time; ``CTXBUDGET_FUZZ_RANDOM=1`` draws
new ones (to hunt with a larger budget). The session summary prints the examples run
and the tracebacks seen.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import re
import shutil
import signal
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from ctxbudget.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
EXAMPLES = int(os.environ.get("CTXBUDGET_FUZZ_EXAMPLES", "12"))
#: Seconds one example may take before it counts as a hang (rich's highlighter on a
#: 200 kB cell once took minutes).
HANG_S = 120

pytestmark = [
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning"),
    pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not beside the checkout"),
]


# --------------------------------------------------------------------------- mutations

_NUMBER = re.compile(rb"(?<![\w.\-])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.])")
_STRING = re.compile(rb'"(?:[^"\\\n]|\\.){1,200}"')
_DATE = re.compile(rb"(?:19|20)\d\d-\d\d-\d\d")

_BAD_NUMBERS = (b"NaN", b"Infinity", b"-Infinity", b".nan", b".inf", b"-.inf", b"nan", b"inf",
                b"-1", b"-1e308", b"1e309", b"-0.5", b"1e13")
_BIG_INTS = (str(2**63).encode(), str(2**64 + 7).encode(), b"9" * 5000, b"1" + b"0" * 20)
_BAD_BYTES = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80\x80", b"\xf4\x90\x80\x80")


def _pick(r: random.Random, pattern: re.Pattern[bytes], data: bytes) -> re.Match[bytes] | None:
    found = list(pattern.finditer(data))
    return r.choice(found) if found else None


def _replace(data: bytes, m: re.Match[bytes] | None, new: bytes, r: random.Random) -> bytes:
    if m is None:  # nowhere to put it: at a random place
        at = r.randrange(len(data) + 1)
        return data[:at] + new + data[at:]
    return data[:m.start()] + new + data[m.end():]


def mutate(data: bytes, kind: str, seed: int) -> bytes:
    r = random.Random(seed)
    if not data:
        return data
    if kind == "utf8":
        m = _pick(r, _STRING, data)
        at = (m.start() + 1) if m is not None else r.randrange(len(data))
        return data[:at] + r.choice(_BAD_BYTES) + data[at:]
    if kind == "surrogate":
        m = _pick(r, _STRING, data)
        if m is None or r.random() < 0.3:  # raw (CESU) bytes of a surrogate
            return _replace(data, m, b'"\xed\xb2\x80"', r)
        return data[:m.start() + 1] + b"\\ud800" + data[m.start() + 1:]
    if kind == "nesting":
        n = r.choice((200, 5_000, 200_000))
        return _replace(data, _pick(r, _NUMBER, data), b"[" * n + b"1" + b"]" * n, r)
    if kind == "bigint":
        return _replace(data, _pick(r, _NUMBER, data), r.choice(_BIG_INTS), r)
    if kind == "badnumber":
        return _replace(data, _pick(r, _NUMBER, data), r.choice(_BAD_NUMBERS), r)
    if kind == "epoch":
        m = _pick(r, _DATE, data)
        if m is not None and r.random() < 0.7:
            return _replace(data, m, r.choice((b"1970-01-01", b"9999-12-31", b"0001-01-01")), r)
        return _replace(data, _pick(r, _NUMBER, data),
                        r.choice((b"0", b"253402300800", b"99999999999999999999", b"-1")), r)
    if kind == "longfield":
        m = _pick(r, _STRING, data)
        at = (m.start() + 1) if m is not None else r.randrange(len(data))
        return data[:at] + b"x" * (140 * 1024) + data[at:]
    if kind == "truncate":
        return data[:r.randrange(len(data))]
    if kind == "flip":
        out = bytearray(data)
        for _ in range(r.randint(1, 8)):
            i = r.randrange(len(out))
            out[i] ^= r.randint(1, 255)
        return bytes(out)
    raise AssertionError(kind)


KINDS = ("utf8", "surrogate", "nesting", "bigint", "badnumber", "epoch", "longfield",
         "truncate", "flip")
MUTATIONS = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 2**32 - 1)),
                     min_size=1, max_size=3)


# --------------------------------------------------------------------------- seeds (real data)


def _cassette_bodies(name: str) -> list[dict[str, Any]]:
    doc = yaml.safe_load((DATA / "api-responses" / name).read_text())
    return [i["response"]["parsed_body"] for i in doc["interactions"]
            if isinstance(i["response"].get("parsed_body"), dict)
            and "usage" in i["response"]["parsed_body"]]


def _jsonl(rows: list[Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _claude_lines() -> list[bytes]:
    p = DATA / "claude-code" / "projects" / "sample-project" / \
        "1af7fc5e-8455-4414-9ccd-011d40f70b2a.jsonl"
    return p.read_bytes().splitlines(keepends=True)


def seed_claude_code() -> bytes:
    return b"".join(_claude_lines())


def seed_codex() -> bytes:
    """A Codex rollout around the token counts of a real OpenAI Responses exchange."""
    usages = [b["usage"] for b in _cassette_bodies("test_openai_responses_prompt_cache_e2e.yaml")]
    sid = "0199a1b2-0000-7000-8000-000000000001"
    lines: list[Any] = [
        {"timestamp": "2025-10-02T10:00:00.000Z", "type": "session_meta",
         "payload": {"id": sid, "cwd": "/w", "originator": "codex_cli_rs"}},
        {"timestamp": "2025-10-02T10:00:00.100Z", "type": "turn_context",
         "payload": {"cwd": "/w", "model": "gpt-5-codex"}}]
    total = {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0,
             "reasoning_output_tokens": 0, "total_tokens": 0}
    for i, u in enumerate(usages):
        last = {"input_tokens": u["input_tokens"],
                "cached_input_tokens": u["input_tokens_details"]["cached_tokens"],
                "output_tokens": u["output_tokens"],
                "reasoning_output_tokens": u["output_tokens_details"]["reasoning_tokens"],
                "total_tokens": u["total_tokens"]}
        total = {k: total[k] + last[k] for k in total}
        lines.append({"timestamp": f"2025-10-02T10:00:0{i + 1}.000Z", "type": "event_msg",
                      "payload": {"type": "token_count", "info": {
                          "last_token_usage": last, "total_token_usage": dict(total),
                          "model_context_window": 272000}}})
    return _jsonl(lines)


def seed_openai_batch() -> bytes:
    return (ROOT / "tests" / "sources" / "data" / "batch" / "openai_batch_2024.jsonl").read_bytes()


def seed_anthropic_batch() -> bytes:
    bodies = _cassette_bodies("test_anthropic_cache_real_api.yaml")
    return _jsonl([{"custom_id": f"c{i}", "result": {"type": "succeeded", "message": b}}
                   for i, b in enumerate(bodies)])


def seed_langfuse() -> bytes:
    bodies = _cassette_bodies("test_openai_chat_prompt_cache_e2e.yaml")
    data = [{"id": f"obs-{i}", "traceId": "tr-1", "type": "GENERATION",
             "startTime": f"2025-10-01T08:0{i}:00.000Z",
             "endTime": f"2025-10-01T08:0{i}:02.500Z", "model": b["model"],
             "usageDetails": {"input": b["usage"]["prompt_tokens"]
                              - b["usage"]["prompt_tokens_details"]["cached_tokens"],
                              "input_cached_tokens":
                                  b["usage"]["prompt_tokens_details"]["cached_tokens"],
                              "output": b["usage"]["completion_tokens"],
                              "total": b["usage"]["total_tokens"]}}
            for i, b in enumerate(bodies)]
    return json.dumps({"data": data, "meta": {"page": 1}}, indent=1).encode()


def _litellm_rows() -> list[dict[str, Any]]:
    bodies = _cassette_bodies("test_anthropic_cache_real_api.yaml")
    rows = []
    for i, b in enumerate(bodies):
        u = b["usage"]
        rows.append({"request_id": b["id"], "call_type": "acompletion", "spend": 0.0123,
                     "prompt_tokens": u["input_tokens"] + u["cache_read_input_tokens"]
                     + u["cache_creation_input_tokens"],
                     "completion_tokens": u["output_tokens"],
                     "startTime": f"2025-10-01T12:0{i}:00.000",
                     "endTime": f"2025-10-01T12:0{i}:02.500", "model": b["model"],
                     "custom_llm_provider": "anthropic", "cache_hit": "False",
                     "status": "success", "session_id": "sess-1",
                     "metadata": {"usage_object": {  # LiteLLM counts prompt inclusively
                         "prompt_tokens": u["input_tokens"] + u["cache_read_input_tokens"]
                         + u["cache_creation_input_tokens"], "completion_tokens":
                         u["output_tokens"], "cache_read_input_tokens":
                         u["cache_read_input_tokens"], "cache_creation_input_tokens":
                         u["cache_creation_input_tokens"]}}})
    return rows


def seed_litellm_json() -> bytes:
    return json.dumps(_litellm_rows(), indent=1).encode()


def seed_litellm_csv() -> bytes:
    rows = _litellm_rows()
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    for r in rows:
        w.writerow({k: json.dumps(v) if isinstance(v, dict) else v for k, v in r.items()})
    return buf.getvalue().encode()


def seed_otel() -> bytes:
    def attr(k: str, v: Any) -> dict[str, Any]:
        return {"key": k, "value": {"intValue": str(v)} if isinstance(v, int)
                else {"stringValue": v}}

    spans = []
    for i, b in enumerate(_cassette_bodies("test_anthropic_cache_real_api.yaml")):
        u = b["usage"]
        gen = {"gen_ai.provider.name": "anthropic", "gen_ai.response.model": b["model"],
               "gen_ai.usage.input_tokens": u["input_tokens"] + u["cache_read_input_tokens"]
               + u["cache_creation_input_tokens"],
               "gen_ai.usage.cache_read.input_tokens": u["cache_read_input_tokens"],
               "gen_ai.usage.cache_creation.input_tokens": u["cache_creation_input_tokens"],
               "gen_ai.usage.output_tokens": u["output_tokens"]}
        spans.append({"traceId": "5b8efff798038103d269b633813fc60c", "spanId": f"a{i}",
                      "startTimeUnixNano": str(1759312800000000000 + i * 10**9),
                      "endTimeUnixNano": str(1759312801500000000 + i * 10**9),
                      "attributes": [attr(k, v) for k, v in gen.items()],
                      "status": {"code": 1}})
    doc = {"resourceSpans": [{"resource": {"attributes": [attr("service.name", "app")]},
                              "scopeSpans": [{"scope": {"name": "x"}, "spans": spans}]}]}
    return json.dumps(doc, indent=1).encode()


def _azure_rows(n: int = 40) -> list[dict[str, Any]]:
    """Real requests of the Azure LLM inference trace, as a table of calls."""
    with (DATA / "traces" / "AzureLLMInferenceTrace_code.csv").open(newline="") as fh:
        rows = []
        for i, r in enumerate(csv.DictReader(fh)):
            if i == n:
                break
            rows.append({"ts": r["TIMESTAMP"].replace(" ", "T")[:26] + "Z", "model": "gpt-4o",
                         "input_tokens": int(r["ContextTokens"]),
                         "output_tokens": int(r["GeneratedTokens"]),
                         "latency_ms": 250.0 + i, "request_id": f"az-{i}"})
    return rows


def seed_table_csv() -> bytes:
    rows = _azure_rows()
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def seed_table_jsonl() -> bytes:
    return _jsonl(_azure_rows())


def seed_spool() -> bytes:
    """Spool lines (the tracker's own format) of the calls of a real Claude Code log."""
    from ctxbudget.sources import get_importer
    from ctxbudget.sources._base import jsonl_records
    from ctxbudget.track._spoolfmt import call_to_line, task_to_line
    from ctxbudget.usage import Call, Task

    p = DATA / "claude-code" / "projects" / "sample-project" / \
        "1af7fc5e-8455-4414-9ccd-011d40f70b2a.jsonl"
    imp = get_importer("claude-code")
    calls = [c for rec in jsonl_records(p) if not isinstance(rec.value, Exception)
             for c in imp.convert(rec) if isinstance(c, Call)]
    out = [call_to_line(c.with_(latency_ms=900.0 + i, turn=i, task_type="support"), f"r{i}")
           for i, c in enumerate(calls)]
    out.append(task_to_line(Task(task_id=str(calls[0].task_id), task_type="support",
                                 outcome="success", started_at=calls[0].ts,
                                 ended_at=calls[-1].ts)))
    return "".join(out).encode()


RULES = b"""\
rules:
  - name: p95 cost per task
    metric: p95_cost_per_task
    window: 7d
    threshold: 0.40
    op: ">"
    min_samples: 2
    confidence: 0.95
  - name: cache hit rate
    metric: cache_hit_rate
    op: "<"
    threshold: 0.5
  - name: spend
    metric: total_cost
    scope: {task_type: support}
    threshold: 12.5
"""

GATEWAY = b"""\
upstreams:
  anthropic: {base_url: https://api.anthropic.com}
  openai: {base_url: https://api.openai.com}
  groq: {base_url: https://api.groq.com/openai, prefix: /groq, provider: groq}
store: usage.duckdb
budget_store: memory
max_body_bytes: 1048576
upstream_timeout: 120.5
reservation_ttl: 900
budgets:
  - name: team-daily
    match: {key: "sk-team-*"}
    limit_usd: 1.00
    window: day
    timezone: UTC
  - name: tokens
    limit_tokens: 200000
    window: task
keys:
  - {match: "sk-team-*", user: ann, team: core, task_type: support}
"""


# --------------------------------------------------------------------------- checks

_NUMERIC_KEY = re.compile(r"(usd|mtok|tokens|cost|threshold|value|baseline|rate|price)",
                          re.IGNORECASE)
_NON_NEGATIVE = re.compile(r"(usd|mtok|_tokens$|^tokens$|cost)", re.IGNORECASE)
#: Differences, which may be negative (a cache read dearer than input saves less than 0).
_SIGNED = re.compile(r"(delta|change|saving|diff)", re.IGNORECASE)


def _walk(obj: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, str(k))
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v, key)
    else:
        yield key, obj


def check_printed(out: str) -> None:
    """No NaN / infinite number, no negative money or token count in a JSON output."""
    assert "NaN" not in out and "Infinity" not in out, "NaN or Infinity printed"
    doc = json.loads(out)
    for key, v in _walk(doc):
        if isinstance(v, bool) or v is None:
            continue
        num: Decimal | float | None = None
        if isinstance(v, int | float):
            num = v
        elif isinstance(v, str) and _NUMERIC_KEY.search(key):
            try:
                num = Decimal(v)
            except InvalidOperation:
                continue
        if num is None:
            continue
        finite = num.is_finite() if isinstance(num, Decimal) else math.isfinite(num)
        assert finite, f"{key}: {v!r} printed"
        if _NON_NEGATIVE.search(key) and not _SIGNED.search(key):
            assert num >= 0, f"{key}: {v!r} printed"


def _bad_calls_sql() -> str:
    """Calls holding a value out of range: every integer column (token buckets, their
    modality and tool-request detail, turn) in 0..10^12, reasoning within output, the
    time in 2020..tomorrow, a finite latency in 0..1e9 ms."""
    from ctxbudget.store.schema import CALL_COLUMNS

    ints = [n for n, t in CALL_COLUMNS if t in ("BIGINT", "INTEGER")]
    out_of_range = " OR ".join(f"{n} < 0 OR {n} > 1000000000000" for n in ints)
    return f"""
SELECT call_key, ts, {", ".join(ints)}, latency_ms
FROM calls WHERE {out_of_range}
  OR reasoning_tokens > output_tokens
  OR ts IS NULL OR ts < TIMESTAMPTZ '2020-01-01 00:00:00+00' OR ts > $hi
  OR (latency_ms IS NOT NULL AND (isnan(latency_ms) OR isinf(latency_ms) OR latency_ms < 0
                                  OR latency_ms > 1e9))
LIMIT 3
"""


_BAD_TASKS = """
SELECT task_id, started_at, ended_at FROM tasks WHERE
  started_at < TIMESTAMPTZ '2020-01-01 00:00:00+00' OR started_at > $hi
  OR ended_at < TIMESTAMPTZ '2020-01-01 00:00:00+00' OR ended_at > $hi
LIMIT 3
"""


def check_store(db: Path) -> int:
    """Nothing out of range stored; returns the number of calls."""
    if not db.exists():
        return 0
    import duckdb

    hi = datetime.now(UTC) + timedelta(days=1)
    con = duckdb.connect(str(db), read_only=True)
    try:
        bad = con.execute(_bad_calls_sql(), {"hi": hi}).fetchall()
        assert not bad, f"out-of-range calls stored: {bad}"
        bad = con.execute(_BAD_TASKS, {"hi": hi}).fetchall()
        assert not bad, f"out-of-range tasks stored: {bad}"
        return int(con.execute("SELECT count(*) FROM calls").fetchall()[0][0])
    finally:
        con.close()


# --------------------------------------------------------------------------- running the CLI


class Traceback(AssertionError):
    """An exception escaped a CLI command (or it hung)."""


@contextmanager
def _alarm(seconds: int) -> Iterator[None]:
    def hang(signum: int, frame: Any) -> None:
        raise TimeoutError(f"the command ran over {seconds} s")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Ctx:
    """One example's working folder and the CLI runs it made."""

    work: Path
    tally: dict[str, Any]
    runs: int = 0

    def cli(self, *args: str, ok: tuple[int, ...] = (0, 1, 2)) -> Result:
        runner = CliRunner()
        with _alarm(HANG_S):
            r = runner.invoke(app, list(args), env={"CTXBUDGET_HOME": str(self.work / "home"),
                                                    "COLUMNS": "120"})
        self.runs += 1
        self.tally["exit"][r.exit_code] += 1
        exc = r.exception
        if exc is not None and not isinstance(exc, SystemExit):
            tb = "".join(traceback.format_exception(exc))
            raise Traceback(f"ctxbudget {' '.join(args)[:300]}\n{tb[-4000:]}")
        assert r.exit_code in ok, (args, r.exit_code, r.output[-2000:])
        assert "Traceback (most recent call last)" not in r.output
        if r.exit_code == 2:
            assert r.stderr.strip(), f"exit 2 without a reason: {args}"
        return r


def run_import(fmt: str, suffix: str, *extra: str) -> Callable[[Ctx, bytes], None]:
    def run(ctx: Ctx, data: bytes) -> None:
        f = ctx.work / f"input{suffix}"
        f.write_bytes(data)
        db = ctx.work / "u.duckdb"
        r = ctx.cli("import", fmt, str(f), "--db", str(db), "--json", *extra, ok=(0, 2))
        calls = check_store(db)
        if r.exit_code != 0:
            return
        s = json.loads(r.stdout)
        # every record read is accounted for: a call (kept or a duplicate), a skip or a
        # rejection -- nothing dropped without a word
        assert s["lines"] <= s["calls"] + sum(s["skipped"].values()) + s["rejected"], s
        assert s["accepted"] == calls, (s, calls)
        if s["rejected"]:  # --strict: exit 2 at the first rejected line
            strict = ctx.cli("import", fmt, str(f), "--db", str(ctx.work / "strict.duckdb"),
                             "--strict", *extra, ok=(2,))
            assert "--strict" in strict.stderr, strict.stderr
            check_store(ctx.work / "strict.duckdb")
        if calls:  # what was accepted is printed without NaN / negative figures
            rep = ctx.cli("report", "--db", str(db), "--json", ok=(0,))
            check_printed(rep.stdout)
    return run


def run_table_parquet(ctx: Ctx, data: bytes) -> None:
    """The mutated JSON Lines rows, written as Parquet when pyarrow can (else the bytes of
    a Parquet file of the seed rows, mutated)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for line in data.splitlines():
        try:
            v = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(v, dict):
            rows.append(v)
    f = ctx.work / "input.parquet"
    try:
        pq.write_table(pa.Table.from_pylist(rows), f)
    except (pa.ArrowException, ValueError, TypeError, OverflowError, RecursionError):
        # a column pyarrow cannot type: every cell as text, else a damaged file
        try:
            text = [{k: None if v is None else str(v) for k, v in r.items()} for r in rows]
            pq.write_table(pa.Table.from_pylist(text), f)
        except (pa.ArrowException, ValueError, UnicodeEncodeError):
            buf = io.BytesIO()
            pq.write_table(pa.Table.from_pylist(_azure_rows()), buf)
            raw = bytearray(buf.getvalue())
            raw[len(raw) // 2] ^= 0x5A
            f.write_bytes(bytes(raw))
    run_import("table", ".parquet")(ctx, f.read_bytes())


def run_spool(ctx: Ctx, data: bytes) -> None:
    spool = ctx.work / "spool"
    spool.mkdir()
    (spool / "999999999-4242.jsonl").write_bytes(data)  # a writer long gone
    db = ctx.work / "u.duckdb"
    r = ctx.cli("ingest", "--spool", str(spool), "--db", str(db), "--json", ok=(0, 2))
    calls = check_store(db)
    if r.exit_code == 0:
        s = json.loads(r.stdout)
        complete = data[:data.rfind(b"\n") + 1].count(b"\n") if b"\n" in data else 0
        assert s["calls"] + s["tasks"] + s["quarantined"] <= complete, s
        assert s["calls"] == calls
        if calls:
            rep = ctx.cli("report", "--db", str(db), "--json", ok=(0,))
            check_printed(rep.stdout)


def _examples_dir(ctx: Ctx) -> Path:
    ex = ctx.work / "examples"
    shutil.copytree(ROOT / "examples", ex)
    return ex


def run_plan(ctx: Ctx, data: bytes) -> None:
    ex = _examples_dir(ctx)
    spec = ex / "fuzzed-spec.yaml"
    spec.write_bytes(data)
    r = ctx.cli("plan", str(spec), "--json", ok=(0, 2))
    if r.exit_code == 0:
        check_printed(r.stdout)
        ctx.cli("plan", str(spec), ok=(0,))  # the tables too (rich, long cells)


def run_plan_tools(ctx: Ctx, data: bytes) -> None:
    """The tool definitions a spec counts (``tools_file``)."""
    ex = _examples_dir(ctx)
    (ex / "support-agent" / "tools.json").write_bytes(data)
    r = ctx.cli("plan", str(ex / "support-agent.yaml"), "--json", ok=(0, 2))
    if r.exit_code == 0:
        check_printed(r.stdout)


def run_prices(ctx: Ctx, data: bytes) -> None:
    ex = _examples_dir(ctx)
    prices = ex / "prices-2026.yaml"  # the file the example specs name
    prices.write_bytes(data)
    r = ctx.cli("cost", "--model", "claude-sonnet-4-6", "--provider", "anthropic", "--input",
                "1000", "--cache-read", "5000", "--cache-write-5m", "700", "--output", "300",
                "--prices", str(prices), "--json", ok=(0, 2))
    if r.exit_code == 0:
        check_printed(r.stdout)
    r = ctx.cli("prices", "2026", "--prices", str(prices), "--json", ok=(0, 2))
    if r.exit_code == 0:
        check_printed(r.stdout)
    for spec in ("seed-example.yaml", "support-agent.yaml"):
        r = ctx.cli("plan", str(ex / spec), "--json", ok=(0, 2))
        if r.exit_code == 0:
            check_printed(r.stdout)


def run_rules(ctx: Ctx, data: bytes, store: Path) -> None:
    db = ctx.work / "u.duckdb"
    shutil.copy(store, db)
    rules = ctx.work / "rules.yaml"
    rules.write_bytes(data)
    r = ctx.cli("check", "--rules", str(rules), "--db", str(db), "--json", "--min-samples", "2")
    if r.exit_code in (0, 1):
        check_printed(r.stdout)


def run_baseline(ctx: Ctx, data: bytes, store: Path) -> None:
    db = ctx.work / "u.duckdb"
    shutil.copy(store, db)
    base = ctx.work / "baseline.json"
    base.write_bytes(data)
    r = ctx.cli("check", "--baseline", str(base), "--db", str(db), "--json", "--min-samples",
                "2")
    if r.exit_code in (0, 1):
        check_printed(r.stdout)


def run_gateway(ctx: Ctx, data: bytes) -> None:
    cfg = ctx.work / "gateway.yaml"
    cfg.write_bytes(data)
    cwd = Path.cwd()
    os.chdir(ctx.work)  # the config's relative paths (store, journal) land here
    try:
        r = ctx.cli("gateway", "check-config", "--config", str(cfg), "--json", ok=(0, 2))
    finally:
        os.chdir(cwd)
    if r.exit_code == 0:
        doc = json.loads(r.stdout)
        for b in doc["budgets"]:
            limit = Decimal(b["limit"])
            assert limit.is_finite() and limit >= 0, b


# --------------------------------------------------------------------------- targets


@pytest.fixture(scope="module", autouse=True)
def _one_click_command() -> Iterator[None]:
    """typer's CliRunner builds the click command on every invoke (~70 ms of a ~250 ms
    run): build it once for this module's thousand-odd runs."""
    import functools

    import typer.testing

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(typer.testing, "_get_command", functools.cache(typer.testing._get_command))
        yield


@pytest.fixture(scope="module")
def claude_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A store of the real Claude Code sample (3 sessions), and a baseline saved from it."""
    d = tmp_path_factory.mktemp("fuzz-store")
    db = d / "claude.duckdb"
    runner = CliRunner()
    env = {"CTXBUDGET_HOME": str(d / "home")}
    r = runner.invoke(app, ["import", "claude-code", str(DATA / "claude-code" / "projects"),
                            "--db", str(db)], env=env)
    assert r.exit_code == 0, r.output
    base = d / "baseline.json"
    r = runner.invoke(app, ["baseline", "save", str(base), "--db", str(db)], env=env)
    assert r.exit_code == 0, r.output
    return db, json.dumps(json.loads(base.read_text()), indent=1).encode()


FILE_TARGETS: dict[str, tuple[Callable[[], bytes], Callable[[Ctx, bytes], None]]] = {
    "claude-code": (seed_claude_code, run_import("claude-code", ".jsonl")),
    "codex": (seed_codex, run_import("codex", ".jsonl")),
    "openai-batch": (seed_openai_batch, run_import("openai-batch", ".jsonl")),
    "anthropic-batch": (seed_anthropic_batch, run_import("anthropic-batch", ".jsonl")),
    "langfuse": (seed_langfuse, run_import("langfuse", ".json")),
    "litellm-json": (seed_litellm_json, run_import("litellm", ".json")),
    "litellm-csv": (seed_litellm_csv, run_import("litellm", ".csv")),
    "otel": (seed_otel, run_import("otel", ".json")),
    "table-csv": (seed_table_csv, run_import("table", ".csv")),
    "table-jsonl": (seed_table_jsonl, run_import("table", ".jsonl")),
    "table-parquet": (seed_table_jsonl, run_table_parquet),
    "spool": (seed_spool, run_spool),
    "plan-spec": (lambda: (ROOT / "examples" / "support-agent.yaml").read_bytes(), run_plan),
    "plan-tools": (lambda: (ROOT / "examples" / "support-agent" / "tools.json").read_bytes(),
                   run_plan_tools),
    "prices": (lambda: (ROOT / "examples" / "prices-2026.yaml").read_bytes(), run_prices),
    "gateway": (lambda: GATEWAY, run_gateway),
}


#: ``CTXBUDGET_FUZZ_RANDOM=1``: new random examples each run (to hunt; CI is derandomized).
_SETTINGS = settings(max_examples=EXAMPLES,
                     derandomize=os.environ.get("CTXBUDGET_FUZZ_RANDOM") != "1",
                     deadline=None, database=None, suppress_health_check=list(HealthCheck),
                     print_blob=True)


def _example(name: str, tally: dict[str, Any], tmp: Path, seed: bytes,
             muts: list[tuple[str, int]], run: Callable[[Ctx, bytes], None]) -> None:
    data = seed
    for kind, s in muts:
        data = mutate(data, kind, s)
    work = tmp / f"ex{sum(tally['examples'].values())}"
    work.mkdir()
    tally["examples"][name] += 1
    try:
        run(Ctx(work=work, tally=tally), data)
    except Traceback:
        tally["tracebacks"][name] += 1
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("name", list(FILE_TARGETS))
def test_fuzz_file_format(name: str, tmp_path: Path, fuzz_tally: dict[str, Any]) -> None:
    make_seed, run = FILE_TARGETS[name]
    seed = make_seed()
    _run_unmutated(name, seed, run, tmp_path)

    @_SETTINGS
    @given(muts=MUTATIONS)
    def fuzz(muts: list[tuple[str, int]]) -> None:
        _example(name, fuzz_tally, tmp_path, seed, muts, run)

    fuzz()


@pytest.mark.parametrize("name", ["rules", "baseline"])
def test_fuzz_store_checks(name: str, tmp_path: Path, claude_store: tuple[Path, bytes],
                           fuzz_tally: dict[str, Any]) -> None:
    db, baseline = claude_store
    seed = RULES if name == "rules" else baseline
    fn = run_rules if name == "rules" else run_baseline

    def run(ctx: Ctx, data: bytes) -> None:
        fn(ctx, data, db)

    _run_unmutated(name, seed, run, tmp_path)

    @_SETTINGS
    @given(muts=MUTATIONS)
    def fuzz(muts: list[tuple[str, int]]) -> None:
        _example(name, fuzz_tally, tmp_path, seed, muts, run)

    fuzz()


def _run_unmutated(name: str, seed: bytes, run: Callable[[Ctx, bytes], None],
                   tmp: Path) -> None:
    """The seed itself is valid: the harness would not notice a target that rejects all."""
    work = tmp / "seed"
    work.mkdir()
    tally: dict[str, Any] = {"exit": Counter()}
    run(Ctx(work=work, tally=tally), seed)
    assert 2 not in tally["exit"], (name, tally["exit"])
    shutil.rmtree(work)


def test_mutations_do_what_they_say() -> None:
    seed = b'{"ts": "2025-01-02T00:00:00Z", "n": 12, "m": "gpt"}\n'
    assert b"\\ud800" in mutate(seed, "surrogate", 1) or b"\xed\xb2\x80" in mutate(
        seed, "surrogate", 1)
    assert mutate(seed, "epoch", 3) != seed
    assert len(mutate(seed, "longfield", 0)) > 128 * 1024
    assert b"[" * 200 in mutate(seed, "nesting", 0)
    with pytest.raises(UnicodeDecodeError):
        mutate(seed, "utf8", 5).decode()
    assert len(mutate(seed, "truncate", 0)) < len(seed)
