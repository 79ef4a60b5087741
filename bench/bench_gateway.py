"""Benchmark ``ctxbudget gateway`` against direct calls and LiteLLM's proxy, in one run.

All three talk to the same local fake upstream (``tests/serve/gateway/fake_upstream.py``,
its own process). For each contender and body size it measures, with an aiohttp client
in this process:

* non-streaming latency p50 / p99 at concurrency 1 (and the latency added over direct);
* streaming time to first byte (p50) at concurrency 1;
* throughput (requests/s) at concurrency 1, 16 and 64;
* requests per CPU-second of the proxy (user + system CPU of its process tree, read
  from /proc, over the whole run of that contender).

Bodies: a small Messages body, and a 400 KB Messages body shaped like a long Claude Code
session (tools, cached system prompt, tool_use / tool_result history) where each request
appends one new message, as a real session does.

The gateway runs with recording on (spool) and a budget on (a daily USD budget on the
embedded journaled ledger), ``--server uvicorn`` (default: uvloop + httptools) or
``--server granian``. LiteLLM runs ``litellm --config`` (the ``bench`` extra:
``pip install 'litellm[proxy]'``) with the fake upstream as ``api_base``, routed through
its ``/v1/messages`` endpoint.

Run: ``python3 bench/bench_gateway.py [--quick] [--server uvicorn|granian] [--no-litellm]``
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FAKE = ROOT / "tests" / "serve" / "gateway" / "fake_upstream.py"
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT.parent / "shared" / "data" / "tiktoken"))
TICK = os.sysconf("SC_CLK_TCK")
#: The client key every contender gets (LiteLLM's master key; the gateway's budget
#: matches it).
KEY = "sk-bench-" + "5f" * 24


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


# --------------------------------------------------------------------------- bodies


def small_body(i: int, stream: bool) -> bytes:
    return json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": stream,
                       "messages": [{"role": "user", "content": f"Say hello #{i}"}]}).encode()


def big_body_factory() -> Any:
    sys.path.insert(0, str(ROOT / "tests" / "budgets"))
    from test_estimate import claude_code_body

    base = claude_code_body(72)
    size = len(json.dumps(base))

    def make(i: int, stream: bool) -> bytes:
        b = dict(base, stream=stream)
        b["messages"] = [*base["messages"][:-1],
                         {"role": "assistant", "content": f"turn {i}"}, base["messages"][-1]]
        return json.dumps(b).encode()

    return make, size


# --------------------------------------------------------------------------- client


async def run_load(url: str, make: Any, *, n: int, conc: int, stream: bool,
                   headers: dict[str, str]) -> dict[str, Any]:
    import aiohttp

    lat: list[float] = []
    ttfb: list[float] = []
    errors = 0
    counter = iter(range(n))
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:
        bodies = [make(i, stream) for i in range(min(n, 64))]

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                body = bodies[i % len(bodies)]
                t0 = time.perf_counter()
                async with s.post(url, data=body, headers=headers) as r:
                    first = True
                    async for _ in r.content.iter_any():
                        if first:
                            ttfb.append(time.perf_counter() - t0)
                            first = False
                    if r.status != 200:
                        errors += 1
                lat.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(conc)])
        wall = time.perf_counter() - t0
    lat.sort()
    ttfb.sort()
    return {"n": n, "errors": errors, "rps": n / wall,
            "p50": statistics.median(lat) * 1000,
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
            "ttfb50": statistics.median(ttfb) * 1000 if ttfb else None}


# --------------------------------------------------------------------------- contenders


def start_gateway(up: str, tmp: Path, server: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cfg = tmp / "gateway.yaml"
    cfg.write_text(json.dumps({
        "upstreams": {"anthropic": {"base_url": up}, "openai": {"base_url": up}},
        "budget_store": str(tmp / "budget.journal"),
        "budgets": [{"name": "bench-daily", "limit_usd": "1000000", "window": "day",
                     "match": {"key": "sk-bench-*"}}]}))
    env = {**os.environ, "CTXBUDGET_HOME": str(tmp / "home"),
           "PYTHONPATH": str(ROOT / "src"), "CTXBUDGET_GATEWAY_CONFIG": str(cfg)}
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
    wait_port(port, p, "/health/liveliness", timeout=240)
    return p, f"http://127.0.0.1:{port}"


def measure(name: str, url: str, pid: int | None, make: Any, quick: bool) -> dict[str, Any]:
    hdr = {"x-api-key": KEY, "anthropic-version": "2023-06-01",
           "content-type": "application/json", "x-fake-chunks": "20"}
    q = 0.25 if quick else 1.0
    out: dict[str, Any] = {"name": name}
    cpu0 = tree_cpu(pid) if pid else 0.0
    reqs = 0
    asyncio.run(run_load(url + "/v1/messages", make, n=30, conc=4, stream=False, headers=hdr))
    r1 = asyncio.run(run_load(url + "/v1/messages", make, n=int(400 * q), conc=1,
                              stream=False, headers=hdr))
    s1 = asyncio.run(run_load(url + "/v1/messages", make, n=int(200 * q), conc=1,
                              stream=True, headers=hdr))
    reqs += r1["n"] + s1["n"]
    out.update(p50=r1["p50"], p99=r1["p99"], ttfb=s1["ttfb50"], rps1=r1["rps"],
               errors=r1["errors"] + s1["errors"])
    for conc in (16, 64):
        r = asyncio.run(run_load(url + "/v1/messages", make, n=int(1500 * q), conc=conc,
                                 stream=False, headers=hdr))
        s = asyncio.run(run_load(url + "/v1/messages", make, n=int(600 * q), conc=conc,
                                 stream=True, headers=hdr))
        out[f"rps{conc}"] = r["rps"]
        out[f"srps{conc}"] = s["rps"]
        out["errors"] += r["errors"] + s["errors"]
        reqs += r["n"] + s["n"]
    if pid:
        cpu = tree_cpu(pid) - cpu0
        out["cpu_s"] = cpu
        out["req_per_cpu_s"] = reqs / cpu if cpu > 0 else float("inf")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--server", choices=("uvicorn", "granian", "both"), default="uvicorn")
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--body", choices=("small", "400k", "both"), default="both")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    procs: list[subprocess.Popen[bytes]] = []
    up_port = free_port()
    try:
        fake = subprocess.Popen([sys.executable, str(FAKE), str(up_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(fake)
        up = f"http://127.0.0.1:{up_port}"
        wait_port(up_port, fake)
        servers = ("uvicorn", "granian") if args.server == "both" else (args.server,)
        gws = []
        for _i, server in enumerate(servers):
            (tmp / server).mkdir()
            gw, gw_url = start_gateway(up, tmp / server, server)
            procs.append(gw)
            gws.append((server, gw, gw_url))
        ll = ll_url = None
        ll_error = None
        if not args.no_litellm:
            try:
                ll, ll_url = start_litellm(up, tmp)
                procs.append(ll)
            except Exception as exc:
                ll_error = str(exc)
        big, big_size = big_body_factory()
        sizes = {"small": small_body, "400k": big}
        for label, make in sizes.items():
            if args.body not in (label, "both"):
                continue
            print(f"\n## {label} Messages body"
                  f"{f' ({big_size / 1024:.0f} KB)' if label == '400k' else ''}")
            rows = [measure("direct", up, fake.pid, make, args.quick)]
            rows += [measure(f"ctxbudget gateway ({server})", gw_url, gw.pid, make, args.quick)
                     for server, gw, gw_url in gws]
            if ll is not None and ll_url is not None:
                rows.append(measure("LiteLLM proxy", ll_url, ll.pid, make, args.quick))
            base = rows[0]
            print("| contender | p50 ms | p99 ms | +p50 ms | +p99 ms | stream TTFB ms | "
                  "req/s c=1 | c=16 | c=64 | streams/s c=16 | c=64 | req per CPU-s | errors |")
            print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
            for r in rows:
                add50 = r["p50"] - base["p50"]
                add99 = r["p99"] - base["p99"]
                print(f"| {r['name']} | {r['p50']:.2f} | {r['p99']:.2f} | "
                      f"{'' if r is base else f'{add50:+.2f}'} | "
                      f"{'' if r is base else f'{add99:+.2f}'} | {r['ttfb']:.2f} | "
                      f"{r['rps1']:.0f} | {r['rps16']:.0f} | {r['rps64']:.0f} | "
                      f"{r['srps16']:.0f} | {r['srps64']:.0f} | "
                      f"{r.get('req_per_cpu_s', 0):.0f} | {r['errors']} |")
            if ll is not None:
                lt = rows[-1]
                for g in rows[1:-1]:
                    print(f"\n{g['name']} / LiteLLM: requests per CPU-second "
                          f"{g['req_per_cpu_s'] / lt['req_per_cpu_s']:.1f}x; throughput c=64 "
                          f"{g['rps64'] / lt['rps64']:.1f}x; streams/s c=64 "
                          f"{g['srps64'] / lt['srps64']:.1f}x")
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
