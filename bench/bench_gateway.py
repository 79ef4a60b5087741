"""Benchmark ``ctxbudget gateway`` against direct calls and LiteLLM's proxy, in one run.

All contenders talk to the same local fake upstream (``tests/serve/gateway/fake_upstream.py``,
its own process), with an aiohttp client in this process. For each body size:

* **Added latency at concurrency 1, interleaved.** Each round sends one request to the
  upstream directly and one through each proxy, in an order that rotates every round,
  so all sides see the same machine load (this machine is shared); the added latency
  is the distribution of the differences proxy - direct within a round: p50 and p99.
  Also: each side's latency p50 / p99, streaming time to first byte (p50, and its added
  p50), and each proxy's CPU time per request in this phase (user + system of its
  process tree, from /proc: far less sensitive to other processes' load than
  wall-clock figures). LiteLLM gets its own interleaved phase (direct + LiteLLM, fewer
  rounds): the work it does after each response would slow the others' next request.
* **Throughput** (requests/s) at 1, 16 and 64 concurrent clients, non-streamed and
  streamed; ``--repeat`` rounds over all contenders in turn, best kept.
* **Requests per CPU-second** of each proxy over all of its requests.

``--bare`` adds the floor of this architecture: a pass-through on the same server and
upstream client that does nothing else; what the gateway adds over it is its own work
(counting, budget, recording).

Bodies: a small Messages body, and a Messages body of at least 400 KB (``--big-kb``)
shaped like a long Claude Code session (12 tools, a cached system prompt, a history of
tool_use / tool_result turns, a cache breakpoint on the last message). Every request
body is different: each one adds the next turn of a real Claude Code session (from the
recorded logs in ``../shared/data/claude-code``, every text made new), as a growing
session does, so the gateway counts the new blocks of every request and finds the
rest in its per-block cache.

The gateway runs with recording on (spool) and a budget on (a daily USD budget on the
embedded journaled ledger), ``--server uvicorn`` (default: uvloop + httptools) or
``--server granian``. LiteLLM runs ``litellm --config`` with the fake upstream as
``api_base``, routed through its ``/v1/messages`` endpoint (its proxy extras must be
installed: ``pip install 'litellm[proxy]'``, or its dependencies one by one).

Run: ``python3 bench/bench_gateway.py [--quick] [--bare] [--server uvicorn|granian|both]
[--body small|400k|both] [--no-litellm] [--src OTHER/src ...]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FAKE = ROOT / "tests" / "serve" / "gateway" / "fake_upstream.py"
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT.parent / "shared" / "data" / "tiktoken"))
TICK = os.sysconf("SC_CLK_TCK")
#: The client key every contender gets (LiteLLM's master key; the gateway's budget
#: matches it).
KEY = "sk-bench-" + "5f" * 24
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01",
           "content-type": "application/json", "x-fake-chunks": "20"}
Make = Callable[[int, bool], bytes]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], path: str = "/", timeout: float = 120
              ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
                c.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                          .encode())
                if c.recv(16):
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"port {port} did not open")


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            raw = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        ppid = int(fields[1])
        children.setdefault(ppid, []).append(int(d))
        stats[int(d)] = (int(fields[11]) + int(fields[12])) / TICK
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, 0.0)
        todo += children.get(p, [])
    return total


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * q))]


# --------------------------------------------------------------------------- bodies


def small_body(i: int, stream: bool) -> bytes:
    return json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": stream,
                       "messages": [{"role": "user", "content": f"Say hello #{i}"}]}).encode()


def _real_turns() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(user, assistant) message pairs of the recorded Claude Code sessions in
    ``../shared/data/claude-code`` (tool_result / tool_use / text blocks as sent)."""
    sys.path.insert(0, str(ROOT / "tests" / "serve" / "gateway"))
    from claude_code_body import session_messages

    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for log in sorted((ROOT.parent / "shared" / "data" / "claude-code").rglob("*.jsonl")):
        msgs = session_messages(log)[2]
        pairs += [(msgs[i], msgs[i + 1]) for i in range(len(msgs) - 1)
                  if msgs[i]["role"] == "user" and msgs[i + 1]["role"] == "assistant"]
    if not pairs:
        raise RuntimeError("no Claude Code session logs under ../shared/data/claude-code")
    return pairs


def _mark(obj: Any, tag: str) -> Any:
    """``obj`` with every text prefixed by ``tag`` (so no text was seen before)."""
    if isinstance(obj, dict):
        out = {k: _mark(v, tag) for k, v in obj.items()}
        for k in ("text", "content"):
            if isinstance(out.get(k), str):
                out[k] = tag + out[k]
        return out
    if isinstance(obj, list):
        return [_mark(v, tag) for v in obj]
    return obj


def big_body_factory(min_kb: int = 400) -> tuple[Make, int]:
    """A Claude Code-shaped body of at least ``min_kb`` KB. Request ``i`` adds the next
    turn of a real Claude Code session (a user message with its tool results and the
    assistant's reply, from the recorded logs, every text made new with a ``[i]`` tag)
    before the last, cached, message: what a growing session sends."""
    sys.path.insert(0, str(ROOT / "tests" / "budgets"))
    from test_estimate import claude_code_body

    turns = 60
    while True:
        base = claude_code_body(turns)
        if len(json.dumps(base)) >= min_kb * 1024:
            break
        turns += 2
    pairs = _real_turns()
    last = base["messages"][-1]
    mark = "\x00SPLICE\x00"
    heads: dict[bool, tuple[bytes, bytes]] = {}
    for stream in (False, True):
        b = dict(base, stream=stream)
        b["messages"] = [*base["messages"][:-1], mark, last]
        head, tail = json.dumps(b).encode().split(json.dumps(mark).encode())
        heads[stream] = (head, tail)
    size = len(json.dumps(base))

    def make(i: int, stream: bool) -> bytes:
        head, tail = heads[stream]
        user, assistant = pairs[i % len(pairs)]
        new = json.dumps(_mark([user, assistant], f"[{i}] ")).encode()[1:-1]
        return head + new + tail

    return make, size


def turn_bytes() -> float:
    """Mean size of the turn each 400 KB request adds (bytes)."""
    pairs = _real_turns()
    return sum(len(json.dumps(list(p))) for p in pairs) / len(pairs)


# --------------------------------------------------------------------------- client


async def _one(s: Any, url: str, body: bytes) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    first = 0.0
    async with s.post(url, data=body, headers=HEADERS) as r:
        async for _ in r.content.iter_any():
            if not first:
                first = time.perf_counter() - t0
        status = r.status
    return time.perf_counter() - t0, first, status


@dataclass
class Contender:
    name: str
    url: str
    pid: int
    every: int = 1
    """Takes part in every ``every``-th round of the interleaved phase."""
    slow: bool = False
    """LiteLLM: ~100x the CPU per request; fewer requests, its own interleaved phase."""
    out: dict[str, Any] = field(default_factory=dict)
    reqs: int = 0
    cpu: float = 0.0


async def interleaved(direct: str, cons: list[Contender], make: Make, *, n: int,
                      stream: bool, ids: Counter) -> dict[str, dict[str, float]]:
    """``n`` rounds at concurrency 1: in each, one request to the upstream directly and
    one through each proxy, in an order that rotates every round, so every side sees the
    same machine load. Added latency = proxy - direct of the same round."""
    import aiohttp

    lat: dict[str, list[float]] = {"direct": []}
    ttfb: dict[str, list[float]] = {"direct": []}
    diff: dict[str, list[float]] = {}
    dttfb: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    for c in cons:
        lat[c.name], ttfb[c.name], diff[c.name], dttfb[c.name] = [], [], [], []
        errors[c.name] = 0
    urls = {"direct": direct, **{c.name: c.url for c in cons}}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        for i in range(-10, n):  # 10 warm-up rounds
            members = ["direct", *(c.name for c in cons if i % c.every == 0)]
            k = i % len(members)
            got = {}
            for name in members[k:] + members[:k]:
                got[name] = await _one(s, urls[name] + "/v1/messages", make(ids.take(1), stream))
            if i < 0:
                continue
            d = got.pop("direct")
            lat["direct"].append(d[0])
            ttfb["direct"].append(d[1])
            for name, r in got.items():
                lat[name].append(r[0])
                ttfb[name].append(r[1])
                diff[name].append(r[0] - d[0])
                dttfb[name].append(r[1] - d[1])
                errors[name] += r[2] != 200
    ms = 1000.0
    out: dict[str, dict[str, float]] = {}
    for c in cons:
        x = lat[c.name]
        out[c.name] = {"n": len(x), "errors": errors[c.name],
                       "p50": statistics.median(x) * ms, "p99": pct(x, 0.99) * ms,
                       "add50": statistics.median(diff[c.name]) * ms,
                       "add99": pct(diff[c.name], 0.99) * ms,
                       "ttfb50": statistics.median(ttfb[c.name]) * ms,
                       "addttfb": statistics.median(dttfb[c.name]) * ms}
    out["direct"] = {"p50": statistics.median(lat["direct"]) * ms,
                     "p99": pct(lat["direct"], 0.99) * ms,
                     "ttfb50": statistics.median(ttfb["direct"]) * ms}
    return out


async def run_load(url: str, make: Make, *, n: int, conc: int, stream: bool,
                   start: int) -> dict[str, Any]:
    import aiohttp

    errors = 0
    counter = iter(range(n))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        # bodies are built before the clock starts (a 400 KB splice costs the client)
        bodies = [make(start + i, stream) for i in range(n)]

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                _, _, status = await _one(s, url + "/v1/messages", bodies[i])
                errors += status != 200

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(conc)])
        wall = time.perf_counter() - t0
    return {"n": n, "errors": errors, "rps": n / wall}


# --------------------------------------------------------------------------- contenders


class BareProxy:
    """The floor of this architecture (``--bare``): the same server (uvicorn, uvloop,
    httptools) and the same upstream client as the gateway, forwarding bytes and
    nothing else: no routing, counting, budget or recording."""

    def __init__(self) -> None:
        from ctxbudget.serve.gateway._client import Origin

        self.origin = Origin.parse(os.environ["BENCH_BARE_UPSTREAM"])
        self.client: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    from ctxbudget.serve.gateway._client import UpstreamClient

                    self.client = UpstreamClient()
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        parts = []
        while True:
            m = await receive()
            parts.append(m.get("body", b""))
            if not m.get("more_body"):
                break
        lines = [k + b": " + v + b"\r\n" for k, v in scope["headers"]
                 if k not in (b"host", b"content-length", b"connection")]
        async with await self.client.request(self.origin, scope["method"], scope["raw_path"],
                                             lines, b"".join(parts)) as r:
            await send({"type": "http.response.start", "status": r.status, "headers": [
                (k.lower(), v) for k, v in r.raw_headers
                if k.lower() not in (b"connection", b"transfer-encoding", b"keep-alive")]})
            while chunk := await r.read_chunk():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})


def start_bare(up: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'bench'}",
           "BENCH_BARE_UPSTREAM": up}
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "bench_gateway:BareProxy",
           "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http",
           "httptools", "--log-level", "warning", "--no-access-log", "--no-server-header",
           "--no-date-header"]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, p, "/healthz")
    return p, f"http://127.0.0.1:{port}"


def start_gateway(up: str, tmp: Path, server: str, src: Path
                  ) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cfg = tmp / "gateway.yaml"
    cfg.write_text(json.dumps({
        "upstreams": {"anthropic": {"base_url": up}, "openai": {"base_url": up}},
        "budget_store": str(tmp / "budget.journal"),
        "budgets": [{"name": "bench-daily", "limit_usd": "1000000", "window": "day",
                     "match": {"key": "sk-bench-*"}}]}))
    env = {**os.environ, "CTXBUDGET_HOME": str(tmp / "home"),
           "PYTHONPATH": str(src), "CTXBUDGET_GATEWAY_CONFIG": str(cfg)}
    if server == "granian":
        cmd = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--loop", "uvloop", "--log-level", "warning", "--no-ws",
               "ctxbudget.serve.gateway._server:app_from_env"]
    else:
        cmd = [sys.executable, "-m", "ctxbudget.cli.main", "gateway", "--config", str(cfg),
               "--port", str(port)]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, p, "/healthz")
    return p, f"http://127.0.0.1:{port}"


def start_litellm(up: str, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("litellm") or str(Path(sys.executable).parent / "litellm")
    if not Path(exe).exists():
        raise RuntimeError("litellm is not installed (pip install 'litellm[proxy]')")
    port = free_port()
    cfg = tmp / "litellm.yaml"
    cfg.write_text(json.dumps({
        "model_list": [{"model_name": "claude-sonnet-4-5", "litellm_params": {
            "model": "anthropic/claude-sonnet-4-5", "api_base": up, "api_key": "sk-fake"}}],
        "litellm_settings": {"telemetry": False, "drop_params": True}}))
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "DISABLE_SCHEMA_UPDATE": "True", "LITELLM_MASTER_KEY": KEY}
    log = open(tmp / "litellm.log", "wb")  # noqa: SIM115
    p = subprocess.Popen([exe, "--config", str(cfg), "--host", "127.0.0.1", "--port",
                          str(port), "--num_workers", "1"], env=env, stdout=log, stderr=log)
    try:
        wait_port(port, p, "/health/liveliness", timeout=240)
    except RuntimeError as exc:
        tail = (tmp / "litellm.log").read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{exc}; its log ends: {' | '.join(tail)}") from None
    return p, f"http://127.0.0.1:{port}"


class Counter:
    """Unique request numbers across the run (every body is new to the gateway)."""

    def __init__(self) -> None:
        self.i = 0

    def take(self, n: int) -> int:
        self.i += n
        return self.i - n


def measure(direct: Contender, cons: list[Contender], make: Make, args: argparse.Namespace,
            ids: Counter) -> None:
    """Fill each contender's ``out``: the interleaved latency phase, then throughput
    (``--repeat`` rounds over all contenders in turn, best kept), CPU from /proc."""
    q = 0.25 if args.quick else 1.0
    scale = 0.25 if args.big else 1.0  # 400 KB bodies: fewer requests
    everyone = [direct, *cons]
    # the slow contender (LiteLLM) gets its own interleaved phase: its background work
    # after each response would otherwise slow the others' next requests
    for group in ([c for c in cons if not c.slow], [c for c in cons if c.slow]):
        if not group:
            continue
        for stream in (False, True):
            n = max(20, int(args.pairs * q * scale / (2 if stream else 1)))
            if group[0].slow:
                n = max(20, int(n * args.litellm_scale))
            before = {c.name: tree_cpu(c.pid) for c in group}
            res = asyncio.run(interleaved(direct.url, group, make, n=n, stream=stream,
                                          ids=ids))
            if not group[0].slow:
                direct.out["s" if stream else "l"] = res["direct"]
            for c in group:
                cpu = tree_cpu(c.pid) - before[c.name]
                nreq = n + 10
                c.reqs += nreq
                c.cpu += cpu
                c.out["s" if stream else "l"] = res[c.name]
                c.out["direct" + ("s" if stream else "l")] = res["direct"]
                c.out["errors"] = c.out.get("errors", 0) + res[c.name]["errors"]
                if not stream:
                    c.out["cpu_ms_c1"] = cpu * 1000 / nreq
    for rep in range(args.repeat):
        for c in everyone:
            if c.slow and rep:
                continue
            sc = scale * (args.litellm_scale if c.slow else 1.0)
            c0 = tree_cpu(c.pid)
            for conc in (1, 16, 64):
                for stream in (False, True):
                    if conc == 1 and stream:
                        continue
                    n = max(conc, int((400 if conc == 1 else 1500 if not stream else 600)
                                      * q * sc))
                    r = asyncio.run(run_load(c.url, make, n=n, conc=conc, stream=stream,
                                             start=ids.take(n)))
                    key = f"{'s' if stream else ''}rps{conc}"
                    c.out[key] = max(c.out.get(key, 0.0), r["rps"])
                    c.out["errors"] = c.out.get("errors", 0) + r["errors"]
                    c.reqs += n
            c.cpu += tree_cpu(c.pid) - c0
    for c in everyone:
        c.out["req_per_cpu_s"] = c.reqs / c.cpu if c.cpu > 0 else float("inf")


def report(direct: Contender, cons: list[Contender]) -> None:
    d = direct.out
    print("\nAdded latency at concurrency 1 (interleaved with direct requests, round by "
          "round; ms):\n")
    print("| contender | p50 | p99 | added p50 | added p99 | stream TTFB p50 (added) | "
          "CPU ms per request |")
    print("|---|---|---|---|---|---|---|")
    print(f"| direct | {d['l']['p50']:.2f} | {d['l']['p99']:.2f} | | | "
          f"{d['s']['ttfb50']:.2f} | |")
    for c in cons:
        la, st = c.out["l"], c.out["s"]
        if c.slow:
            print(f"| direct (during {c.name}'s own phase) | {c.out['directl']['p50']:.2f} | "
                  f"{c.out['directl']['p99']:.2f} | | | {c.out['directs']['ttfb50']:.2f} | |")
        print(f"| {c.name} | {la['p50']:.2f} | {la['p99']:.2f} | {la['add50']:+.2f} | "
              f"{la['add99']:+.2f} | {st['ttfb50']:.2f} ({st['addttfb']:+.2f}) | "
              f"{c.out['cpu_ms_c1']:.3f} |")
    print("\nThroughput (best of repeats) and CPU over all requests:\n")
    print("| contender | req/s c=1 | c=16 | c=64 | streams/s c=16 | c=64 | requests | "
          "req per CPU-s | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c in (direct, *cons):
        r = c.out
        what = " (the fake upstream, its own requests)" if c is direct else ""
        print(f"| {c.name} | {r['rps1']:.0f} | {r['rps16']:.0f} | {r['rps64']:.0f} | "
              f"{r['srps16']:.0f} | {r['srps64']:.0f} | {c.reqs:,} | "
              f"{r['req_per_cpu_s']:,.0f}{what} | {r.get('errors', 0)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a quarter of the requests")
    ap.add_argument("--server", choices=("uvicorn", "granian", "both"), default="uvicorn")
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--bare", action="store_true",
                    help="also run a bare pass-through on the same server and client (the "
                         "floor: what the gateway adds over it is its own work)")
    ap.add_argument("--body", choices=("small", "400k", "both"), default="both")
    ap.add_argument("--big-kb", type=int, default=400, help="size of the big body (KB)")
    ap.add_argument("--pairs", type=int, default=1000,
                    help="interleaved rounds at concurrency 1 (small body; a quarter for "
                         "400k; half of that streamed)")
    ap.add_argument("--repeat", type=int, default=2, help="throughput runs (best is kept)")
    ap.add_argument("--src", type=Path, action="append",
                    help="run the gateway from this source tree (repeat to compare "
                         "versions side by side; default: this checkout's src)")
    ap.add_argument("--litellm-scale", type=float, default=0.2,
                    help="fraction of the requests sent to LiteLLM (it is ~100x slower)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    procs: list[subprocess.Popen[bytes]] = []
    up_port = free_port()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} CPUs)")
    try:
        fake = subprocess.Popen([sys.executable, str(FAKE), str(up_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(fake)
        up = f"http://127.0.0.1:{up_port}"
        wait_port(up_port, fake)
        servers = ("uvicorn", "granian") if args.server == "both" else (args.server,)
        gws = []
        if args.bare:
            bp, bp_url = start_bare(up)
            procs.append(bp)
            gws.append(("bare pass-through", bp, bp_url))
        srcs = args.src or [ROOT / "src"]
        for k, src in enumerate(srcs):
            for server in servers:
                label = server if len(srcs) == 1 else f"{server}, {src}"
                (tmp / f"{server}{k}").mkdir()
                gw, gw_url = start_gateway(up, tmp / f"{server}{k}", server, src)
                procs.append(gw)
                gws.append((label, gw, gw_url))
        ll = ll_url = None
        ll_error = None
        if not args.no_litellm:
            try:
                ll, ll_url = start_litellm(up, tmp)
                procs.append(ll)
            except Exception as exc:
                ll_error = str(exc)
        ids = Counter()
        for label in ("small", "400k"):
            if args.body not in (label, "both"):
                continue
            args.big = label == "400k"
            if args.big:
                make, size = big_body_factory(args.big_kb)
                print(f"\n## {label} Messages body ({size / 1024:.0f} KB, {size:,} bytes; "
                      f"each request adds a new turn of a real Claude Code session, "
                      f"{turn_bytes() / 1024:.1f} KB on average)")
            else:
                make = small_body
                print("\n## small Messages body")
            direct = Contender("direct", up, fake.pid)
            cons = [Contender(name if name.startswith("bare") else f"ctxbudget gateway ({name})",
                              url, proc.pid) for name, proc, url in gws]
            if ll is not None and ll_url is not None:
                cons.append(Contender("LiteLLM proxy", ll_url, ll.pid, slow=True))
            measure(direct, cons, make, args, ids)
            report(direct, cons)
            lt = cons[-1] if ll is not None else None
            if lt is not None:
                for g in cons[:-1]:
                    print(f"\n{g.name} / LiteLLM: requests per CPU-second "
                          f"{g.out['req_per_cpu_s'] / lt.out['req_per_cpu_s']:.1f}x; CPU per "
                          f"request at c=1 {lt.out['cpu_ms_c1'] / g.out['cpu_ms_c1']:.1f}x less; "
                          f"throughput c=64 {g.out['rps64'] / lt.out['rps64']:.1f}x; streams/s "
                          f"c=64 {g.out['srps64'] / lt.out['srps64']:.1f}x")
            print(f"\nload average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if ll_error:
            print(f"\nLiteLLM proxy not measured: {ll_error}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
