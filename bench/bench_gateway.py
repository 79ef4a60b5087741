"""Benchmark ``ctxbudget gateway`` against direct calls and LiteLLM's proxy, in one run.

All contenders talk to the same local fake upstream (``tests/serve/gateway/fake_upstream.py``,
its own process), with an aiohttp client in this process. For each body size:

* **Added latency at concurrency 1, paired.** Requests to the upstream directly and
  through each proxy are interleaved one by one (``direct, proxy, proxy, direct, ...``),
  so both see the same machine load; the added latency is the distribution of the
  paired differences (proxy - direct of the same pair): p50 and p99. Also reported: the
  latency p50 / p99 of each side, and the proxy's CPU time per request in this phase
  (user + system of its process tree, from /proc: much less sensitive to the load of
  other processes than wall-clock figures).
* **Streaming time to first byte** (p50), paired the same way.
* **Throughput** (requests/s) at 1, 16 and 64 concurrent clients, non-streamed and
  streamed; best of ``--repeat`` runs.
* **Requests per CPU-second** of the proxy over all of its requests (paired phase and
  throughput phases, streamed and not).

Bodies: a small Messages body, and a Messages body of at least 400 KB (``--big-kb``)
shaped like a long Claude Code session (12 tools, a cached system prompt, a history of
tool_use / tool_result turns, a cache breakpoint on the last message). Every request
body is different: each one splices in a new assistant turn and a new ~2 KB
tool_result, as a growing session does, so the gateway counts the new blocks of every
request and finds the rest in its per-block cache.

The gateway runs with recording on (spool) and a budget on (a daily USD budget on the
embedded journaled ledger), ``--server uvicorn`` (default: uvloop + httptools) or
``--server granian``. LiteLLM runs ``litellm --config`` with the fake upstream as
``api_base``, routed through its ``/v1/messages`` endpoint.

Run: ``python3 bench/bench_gateway.py [--quick] [--server uvicorn|granian|both]
[--body small|400k|both] [--no-litellm]``
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


async def paired(direct: str, proxy: str, make: Make, *, n: int, stream: bool,
                 start: int) -> dict[str, Any]:
    """``n`` pairs at concurrency 1, alternating which side goes first."""
    import aiohttp

    d_lat: list[float] = []
    p_lat: list[float] = []
    diff: list[float] = []
    d_ttfb: list[float] = []
    p_ttfb: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        for i in range(10):  # warm both connections
            await _one(s, direct + "/v1/messages", make(start + i, stream))
            await _one(s, proxy + "/v1/messages", make(start + i, stream))
        for i in range(n):
            bd = make(start + 10 + 2 * i, stream)
            bp = make(start + 11 + 2 * i, stream)
            if i % 2:
                p = await _one(s, proxy + "/v1/messages", bp)
                d = await _one(s, direct + "/v1/messages", bd)
            else:
                d = await _one(s, direct + "/v1/messages", bd)
                p = await _one(s, proxy + "/v1/messages", bp)
            errors += (d[2] != 200) + (p[2] != 200)
            d_lat.append(d[0])
            p_lat.append(p[0])
            diff.append(p[0] - d[0])
            d_ttfb.append(d[1])
            p_ttfb.append(p[1])
    ms = 1000.0
    return {"n": n, "errors": errors,
            "d50": statistics.median(d_lat) * ms, "d99": pct(d_lat, 0.99) * ms,
            "p50": statistics.median(p_lat) * ms, "p99": pct(p_lat, 0.99) * ms,
            "add50": statistics.median(diff) * ms, "add99": pct(diff, 0.99) * ms,
            "dttfb": statistics.median(d_ttfb) * ms, "pttfb": statistics.median(p_ttfb) * ms,
            "addttfb": statistics.median([p - d for p, d in zip(p_ttfb, d_ttfb, strict=True)]
                                         ) * ms}


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
        self.i += n + 20
        return self.i - n - 20


def measure(name: str, url: str, direct: str, pid: int, make: Make, args: argparse.Namespace,
            ids: Counter, slow: bool = False) -> dict[str, Any]:
    q = 0.25 if args.quick else 1.0
    scale = 0.25 if args.big else 1.0  # 400 KB bodies: fewer requests
    if slow:  # LiteLLM: ~100x the CPU per request; its per-request CPU is stable anyway
        scale *= args.litellm_scale
    repeat = 1 if slow else args.repeat
    out: dict[str, Any] = {"name": name}
    reqs = 0
    cpu_all = tree_cpu(pid)
    if url != direct:
        npair = max(20, int(args.pairs * q * scale))
        c0 = tree_cpu(pid)
        out["pair"] = asyncio.run(paired(direct, url, make, n=npair, stream=False,
                                         start=ids.take(2 * npair + 20)))
        c1 = tree_cpu(pid)
        out["cpu_ms_c1"] = (c1 - c0) * 1000 / (npair + 10)
        nspair = max(10, int(args.pairs * q * scale / 2))
        out["spair"] = asyncio.run(paired(direct, url, make, n=nspair, stream=True,
                                          start=ids.take(2 * nspair + 20)))
        reqs += npair + nspair + 20
        out["errors"] = out["pair"]["errors"] + out["spair"]["errors"]
    else:
        out["errors"] = 0
    for conc in (1, 16, 64):
        for stream in (False, True):
            if conc == 1 and stream:
                continue
            n = max(conc, int((400 if conc == 1 else 1500 if not stream else 600) * q * scale))
            best = 0.0
            for _ in range(repeat):
                r = asyncio.run(run_load(url, make, n=n, conc=conc, stream=stream,
                                         start=ids.take(n)))
                best = max(best, r["rps"])
                out["errors"] += r["errors"]
                reqs += n
            out[f"{'s' if stream else ''}rps{conc}"] = best
    cpu = tree_cpu(pid) - cpu_all
    out["cpu_s"] = cpu
    out["reqs"] = reqs
    out["req_per_cpu_s"] = reqs / cpu if cpu > 0 else float("inf")
    return out


def report(rows: list[dict[str, Any]]) -> None:
    print("\nAdded latency at concurrency 1 (paired with direct requests; ms):\n")
    print("| contender | direct p50 / p99 | proxy p50 / p99 | added p50 | added p99 | "
          "stream TTFB direct / proxy (added p50) | proxy CPU ms per request |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "pair" not in r:
            continue
        p, s = r["pair"], r["spair"]
        print(f"| {r['name']} | {p['d50']:.2f} / {p['d99']:.2f} | {p['p50']:.2f} / "
              f"{p['p99']:.2f} | {p['add50']:+.2f} | {p['add99']:+.2f} | {s['dttfb']:.2f} / "
              f"{s['pttfb']:.2f} ({s['addttfb']:+.2f}) | {r['cpu_ms_c1']:.3f} |")
    print("\nThroughput (best of repeats) and CPU:\n")
    print("| contender | req/s c=1 | c=16 | c=64 | streams/s c=16 | c=64 | req per CPU-s | "
          "errors |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        what = " (the fake upstream)" if "pair" not in r else ""
        print(f"| {r['name']} | {r['rps1']:.0f} | {r['rps16']:.0f} | {r['rps64']:.0f} | "
              f"{r['srps16']:.0f} | {r['srps64']:.0f} | {r['req_per_cpu_s']:,.0f}{what} | "
              f"{r['errors']} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a quarter of the requests")
    ap.add_argument("--server", choices=("uvicorn", "granian", "both"), default="uvicorn")
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--body", choices=("small", "400k", "both"), default="both")
    ap.add_argument("--big-kb", type=int, default=400, help="size of the big body (KB)")
    ap.add_argument("--pairs", type=int, default=1000,
                    help="direct/proxy pairs at concurrency 1 (small body; a quarter for 400k)")
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
                print(f"\n## {label} Messages body")
            rows = [measure("direct", up, up, fake.pid, make, args, ids)]
            rows += [measure(f"ctxbudget gateway ({server})", gw_url, up, gw.pid, make, args,
                             ids) for server, gw, gw_url in gws]
            if ll is not None and ll_url is not None:
                rows.append(measure("LiteLLM proxy", ll_url, up, ll.pid, make, args, ids,
                                    slow=True))
            report(rows)
            if ll is not None:
                lt = rows[-1]
                for g in rows[1:-1]:
                    print(f"\n{g['name']} / LiteLLM: requests per CPU-second "
                          f"{g['req_per_cpu_s'] / lt['req_per_cpu_s']:.1f}x; throughput c=64 "
                          f"{g['rps64'] / lt['rps64']:.1f}x; streams/s c=64 "
                          f"{g['srps64'] / lt['srps64']:.1f}x")
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
