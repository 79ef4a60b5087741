"""Replay real multi-turn agent sessions through the packer and its peers, in one run.

Sessions (``bench/data/README.md`` names sources and licenses): 200 tau-bench airline
trajectories (gpt-4o, customer service with tool calls), 21 SWE-agent trajectories (coding
agent: thought, command, observation), and the Claude Code sessions of
``../shared/data/claude-code`` (tool use, long tool outputs). Each session is replayed call
by call: before every assistant message, the history so far is packed by each strategy:

* ``packer`` — ``Packer`` defaults (hysteresis 1.0 / 0.6, tool outputs truncated only under
  pressure), rendered with ``render_anthropic``;
* ``packer, no trunc.`` — the same with ``ToolOutputPolicy(max_tokens=None)``;
* ``trim_messages`` — langchain-core's ``trim_messages(strategy="last", start_on="human",
  end_on=("human", "tool"), include_system=True)`` (the settings its docs recommend) with
  the same token counter;
* ``naive window`` — the newest messages that fit, message by message.

All count with tiktoken ``o200k_base`` (Claude has no public tokenizer), the same per-message
framing for every strategy, and one cache model for all: Anthropic-style, a breakpoint after
the system prompt and one on the last message; a call reads from cache the previous call's
whole prompt when it is an unchanged prefix of this one, else the system prompt (prefixes of
1,024+ tokens), and writes the rest. Cost at Claude Sonnet 4.5 rates from
``ctxbudget.prices`` (input 3, cache write 3.75, cache read 0.30, output 15 $/M), outputs
being the recorded assistant messages. Tool definitions are not in the trajectories and
are left out for every strategy.

Columns: tokens sent, token-weighted prefix-cache hit %, session cost, history tokens kept
per call on average, cut moves (calls whose first kept message changed) and the calls over
budget (whole history over the limit), tool pairs split (calls sending a call without its
result or a result without its call), budget violations, p50/p99 CPU time of one call
(pack + render for the packer). Then the goals, and p99 pack + render at 10,000 items
(real messages from these sessions, a growing agent loop, garbage collector on).

Run: ``python3 bench/bench_pack_sessions.py`` (``bench`` extra: langchain-core).
"""

from __future__ import annotations

import gc
import gzip
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

os.environ.setdefault("TIKTOKEN_CACHE_DIR",
                      str(Path(__file__).resolve().parents[2] / "shared" / "data" / "tiktoken"))

import tiktoken

from ctxbudget.pack import (
    MemoCounter,
    Message,
    Packer,
    PackerConfig,
    ToolOutputPolicy,
    parse_messages,
    render_anthropic,
)
from ctxbudget.prices import PriceBook
from ctxbudget.usage import Usage

HERE = Path(__file__).resolve().parent
CLAUDE_DIR = HERE.parents[1] / "shared" / "data" / "claude-code" / "projects"
ENC = tiktoken.get_encoding("o200k_base")
PER_MSG = 3  # ctxbudget.tokens' Anthropic per-message framing
MIN_CACHE = 1024
MODEL = "claude-sonnet-4-5"
BOOK = PriceBook()
_tok_memo: dict[str, int] = {}


def tok(text: str) -> int:
    n = _tok_memo.get(text)
    if n is None:
        n = _tok_memo[text] = len(ENC.encode(text, disallowed_special=()))
    return n


COUNTER = MemoCounter(tok)


@dataclass
class Session:
    source: str
    name: str
    system: str
    messages: list[Message]


# --------------------------------------------------------------------------- sessions

def load_sessions() -> list[Session]:
    out = []
    with gzip.open(HERE / "data" / "agent_sessions.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            out.append(Session(d["source"], d["name"], d["system"],
                               list(parse_messages(d["messages"]))))
    if CLAUDE_DIR.is_dir():
        out += [s for p in sorted(CLAUDE_DIR.rglob("*.jsonl")) if (s := claude_code(p))]
    return out


def _plain_result(block: dict[str, Any]) -> dict[str, Any]:
    c = block.get("content")
    if isinstance(c, list):
        c = "\n".join(b.get("text", "") for b in c if isinstance(b, dict))
    return {**block, "content": c or ""}


def claude_code(path: Path) -> Session | None:
    """A Claude Code session log as Anthropic messages (main thread, streamed assistant
    lines of one message id joined)."""
    msgs: list[dict[str, Any]] = []
    last_id = None
    for line in path.read_text().splitlines():
        d = json.loads(line)
        if d.get("type") not in ("user", "assistant") or d.get("isSidechain"):
            continue
        m = d["message"]
        content = m["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        content = [_plain_result(b) if b.get("type") == "tool_result" else b
                   for b in content if b.get("type") in (
                       "text", "tool_use", "tool_result", "thinking", "redacted_thinking")]
        if not content:
            continue
        if (m["role"] == "assistant" and msgs and msgs[-1]["role"] == "assistant" \
                and m.get("id") == last_id) or (msgs and msgs[-1]["role"] == m["role"] == "user"):
            msgs[-1]["content"] += content
        else:
            msgs.append({"role": m["role"], "content": list(content)})
        last_id = m.get("id")
    parsed = list(parse_messages(msgs))
    if sum(m.role == "tool" for m in parsed) < 3:
        return None
    return Session("claude-code", path.stem[:8], "", parsed)


# --------------------------------------------------------------------------- strategies

def msg_tokens(m: Message) -> int:
    n = PER_MSG + tok("user" if m.role == "tool" else m.role) + tok(m.text)
    for c in m.tool_calls:
        n += tok(c.name) + tok(c.arguments)
    for t in m.thinking:
        n += tok(t.thinking) if t.data is None else tok(t.data)
    return n


def msg_key(m: Message) -> tuple[Any, ...]:
    return (m.role, m.text, m.tool_call_id, tuple((c.id, c.name, c.arguments)
                                                  for c in m.tool_calls),
            tuple(t.signature for t in m.thinking))


@dataclass
class Call:
    kept: list[Message]
    first: int
    """History index of the first kept message (after any anchor)."""
    seconds: float
    over: bool


@dataclass
class Stats:
    sent: int = 0
    read: int = 0
    cost: Decimal = Decimal(0)
    kept: list[int] = field(default_factory=list)
    moves: int = 0
    moves_over: int = 0
    calls_over: int = 0
    split: int = 0
    violations: int = 0
    times: list[float] = field(default_factory=list)


def split_pairs(kept: list[Message]) -> bool:
    calls = {c.id for m in kept for c in m.tool_calls}
    results = {m.tool_call_id for m in kept if m.role == "tool"}
    return calls != results


class Strategy:
    name = ""

    def start(self, s: Session, limit: int, window: int) -> None:
        raise NotImplementedError

    def call(self, k: int) -> Call:
        raise NotImplementedError


class PackerStrategy(Strategy):
    def __init__(self, name: str, **cfg: Any) -> None:
        self.name = name
        self.cfg = cfg

    def start(self, s: Session, limit: int, window: int) -> None:
        self.s = s
        self.packer = Packer(PackerConfig(window=window, model=MODEL, **self.cfg),
                             counter=COUNTER)

    def call(self, k: int) -> Call:
        hist = self.s.messages[:k]
        t0 = time.thread_time()
        packed = self.packer.pack(system=self.s.system, history=hist)
        render_anthropic(packed)
        dt = time.thread_time() - t0
        return Call(list(packed.messages), packed.ledger.history_cut, dt, False)


class TrimMessages(Strategy):
    """``start_on="human"`` is what LangChain's and LangGraph's docs show; ``start_on=None``
    keeps the newest messages whatever their type (it may start on a tool result)."""

    def __init__(self, name: str, start_on: str | None) -> None:
        self.name = name
        self.start_on = start_on

    def start(self, s: Session, limit: int, window: int) -> None:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

        self.s = s
        self.limit = limit
        lc: list[Any] = [SystemMessage(s.system or " ")]
        self.tok_of: dict[int, int] = {id(lc[0]): PER_MSG + tok(s.system or " ")}
        self.index: dict[int, int] = {}
        for i, m in enumerate(s.messages):
            if m.role == "user":
                x: Any = HumanMessage(m.text)
            elif m.role == "tool":
                x = ToolMessage(m.text, tool_call_id=m.tool_call_id or "")
            else:
                x = AIMessage(m.text, tool_calls=[
                    {"id": c.id, "name": c.name, "args": _args(c.arguments)}
                    for c in m.tool_calls])
            lc.append(x)
            self.tok_of[id(x)] = msg_tokens(m)
            self.index[id(x)] = i
        self.lc = lc

    def counter(self, msgs: list[Any]) -> int:
        return sum(self.tok_of[id(m)] for m in msgs)

    def call(self, k: int) -> Call:
        from langchain_core.messages import trim_messages

        t0 = time.thread_time()
        out = trim_messages(self.lc[:k + 1], max_tokens=self.limit, token_counter=self.counter,
                            strategy="last", start_on=self.start_on,
                            end_on=("human", "tool"),
                            include_system=True, allow_partial=False)
        dt = time.thread_time() - t0
        idx = [self.index[id(m)] for m in out if id(m) in self.index]
        return Call([self.s.messages[i] for i in idx], idx[0] if idx else k, dt, False)


def _args(text: str) -> Any:
    try:
        v = json.loads(text)
    except json.JSONDecodeError:
        return {"arguments": text}
    return v if isinstance(v, dict) else {"value": v}


class NaiveWindow(Strategy):
    name = "naive window"

    def start(self, s: Session, limit: int, window: int) -> None:
        self.s = s
        self.room = limit - (tok(s.system) if s.system else 0)
        self.toks = [msg_tokens(m) for m in s.messages]

    def call(self, k: int) -> Call:
        t0 = time.thread_time()
        used = 0
        i = k
        while i > 0 and used + self.toks[i - 1] <= self.room:
            i -= 1
            used += self.toks[i]
        dt = time.thread_time() - t0
        return Call(self.s.messages[i:k], i, dt, False)


# --------------------------------------------------------------------------- replay

def replay(strategy: Strategy, sessions: list[Session], window: int) -> Stats:
    limit = window - 4096
    st = Stats()
    total_cost = Decimal(0)
    for s in sessions:
        sys_tok = tok(s.system) if s.system else 0
        strategy.start(s, limit, window)
        prev_keys: list[Any] = []
        prev_tok = 0
        prev_first = 0
        calls = [k for k, m in enumerate(s.messages) if m.role == "assistant" and k > 0]
        hist_tok = 0
        upto = 0
        for n, k in enumerate(calls):
            while upto < k:
                hist_tok += msg_tokens(s.messages[upto])
                upto += 1
            c = strategy.call(k)
            toks = [msg_tokens(m) for m in c.kept]
            total = sys_tok + sum(toks)
            keys = [msg_key(m) for m in c.kept]
            over = sys_tok + hist_tok > limit
            # cache: the previous prompt if it is an unchanged prefix, else the system prompt
            if prev_keys and keys[:len(prev_keys)] == prev_keys and len(keys) - len(
                    prev_keys) <= 20 and sys_tok + prev_tok >= MIN_CACHE:
                read = sys_tok + prev_tok
            elif n and sys_tok >= MIN_CACHE:
                read = sys_tok
            else:
                read = 0
            out_tok = msg_tokens(s.messages[k])
            total_cost += BOOK.total_usd(Usage(cache_read_tokens=read,
                                               cache_write_5m_tokens=total - read,
                                               output_tokens=out_tok), MODEL, "anthropic")
            moved = n > 0 and c.first != prev_first
            st.sent += total
            st.read += read
            st.kept.append(sum(toks))
            st.moves += moved
            st.calls_over += over
            st.moves_over += moved and over
            st.split += split_pairs(c.kept)
            st.violations += total > limit
            st.times.append(c.seconds)
            prev_keys, prev_tok, prev_first = keys, sum(toks), c.first
    st.cost = total_cost
    return st


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else 0.0


def big_loop_p99(sessions: list[Session]) -> tuple[float, float, int]:
    """p50 / p99 CPU ms of pack + render_anthropic over the last 300 calls of a 10,000-item
    agent loop (real messages, each call adds one round), garbage collector on."""
    pool = [m for s in sessions if s.source != "claude-code" for m in s.messages]
    msgs: list[Message] = []
    n = 0
    while len(msgs) < 10_000:
        for m in pool:
            if m.role == "tool":
                m = Message(role="tool", text=m.text, tool_call_id=f"{m.tool_call_id}-{n}")
            elif m.tool_calls:
                n += 1
                m = Message(role="assistant", text=m.text, tool_calls=tuple(
                    type(c)(id=f"{c.id}-{n}", name=c.name, arguments=c.arguments)
                    for c in m.tool_calls))
            msgs.append(m)
    msgs = msgs[:10_000]
    ends = [k for k in range(9_000, 10_001) if k == 10_000 or msgs[k].role == "assistant"]
    packer = Packer(PackerConfig(window=200_000, model=MODEL), counter=COUNTER)
    system = sessions[0].system
    for k in ends[:20]:
        render_anthropic(packer.pack(system=system, history=msgs[:k]))
    times = []
    gc.collect()
    for k in ends[20:320]:
        hist = msgs[:k]
        t0 = time.thread_time()
        render_anthropic(packer.pack(system=system, history=hist))
        times.append(time.thread_time() - t0)
    return statistics.median(times) * 1e3, pct(times, 0.99) * 1e3, len(times)


def main() -> int:
    sessions = load_sessions()
    n_calls = sum(1 for s in sessions for k, m in enumerate(s.messages)
                  if m.role == "assistant" and k > 0)
    by_src: dict[str, int] = {}
    for s in sessions:
        by_src[s.source] = by_src.get(s.source, 0) + 1
    print(f"{len(sessions)} sessions ({', '.join(f'{k} {v}' for k, v in by_src.items())}), "
          f"{n_calls:,} calls; machine load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    strategies: list[Strategy] = [
        PackerStrategy("packer"),
        PackerStrategy("packer, no trunc.", tool_outputs=ToolOutputPolicy(max_tokens=None)),
        TrimMessages("trim_messages", "human"),
        TrimMessages("trim_messages, any", None), NaiveWindow()]
    ok = True
    for window in (16_000, 32_000):
        print(f"\nwindow {window:,} (limit {window - 4096:,} = window - 4,096 output reserve)")
        print(f"{'strategy':18} {'tokens sent':>12} {'cache hit':>9} {'cost $':>9} "
              f"{'hist kept':>9} {'cut moves':>12} {'split':>6} {'viol.':>6} "
              f"{'p50 ms':>7} {'p99 ms':>7}")
        res = {}
        for strat in strategies:
            st = replay(strat, sessions, window)
            res[strat.name] = st
            print(f"{strat.name:18} {st.sent:12,} {100 * st.read / max(st.sent, 1):8.1f}% "
                  f"{st.cost:9.2f} {statistics.mean(st.kept):9,.0f} "
                  f"{f'{st.moves_over}/{st.calls_over}':>12} {st.split:6} {st.violations:6} "
                  f"{statistics.median(st.times) * 1e3:7.3f} {pct(st.times, 0.99) * 1e3:7.3f}")
        p = res["packer"]
        goals = []
        for tname in ("trim_messages", "trim_messages, any"):
            t = res[tname]
            goals += [
                (f"history kept >= {tname}'s", statistics.mean(p.kept) >= statistics.mean(t.kept),
                 f"{statistics.mean(p.kept):,.0f} vs {statistics.mean(t.kept):,.0f}"),
                (f"cost <= 0.6x {tname}'s", p.cost <= Decimal("0.6") * t.cost,
                 f"{p.cost / t.cost:.2f}x"),
            ]
        goals += [
            ("cut moves <= 1 per 5 calls over budget", p.moves_over * 5 <= p.calls_over,
             f"{p.moves_over} in {p.calls_over}"),
            ("no pair split, no violation", p.split == 0 and p.violations == 0,
             f"{p.split} split, {p.violations} violations"),
        ]
        for label, good, fig in goals:
            ok &= good
            print(f"   goal {label}: {'ok' if good else 'MISSED'} ({fig})")
    p50, p99, n = big_loop_p99(sessions)
    good = p99 < 5.0
    ok &= good
    print(f"\npack + render_anthropic, 10,000-item agent loop ({n} calls, GC on): "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms CPU -> goal p99 < 5 ms: "
          f"{'ok' if good else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
