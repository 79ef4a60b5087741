"""The framework hooks with the real packages (pydantic-ai, OpenAI Agents SDK, LangGraph /
langchain-openai) against a scripted model server on 127.0.0.1 (``agent_server`` in
conftest.py): every request the framework sends fits the budget as
``ctxbudget.tokens.count_tokens`` counts the body, no tool call is separated from its
result, the system prompt / instructions and the task message stay, and the cut moves
rarely (hysteresis)."""

from __future__ import annotations

import asyncio
import warnings
from itertools import pairwise
from typing import Any

import pytest

from ctxbudget.pack import PackerConfig
from ctxbudget.tokens import count_tokens

ROUNDS = 24
SYSTEM = "You are a log analyst. Read the log parts one by one and report the error. " * 20
TASK = "Find the first error in the deploy log of build 4412."


def log_part(part: int) -> str:
    return "\n".join(f"2026-11-0{part % 9 + 1} 12:{k:02d} INFO step {part}.{k} ok, "
                     f"worker {k % 7} latency {17 * k % 300} ms" for k in range(15))


def config() -> PackerConfig:
    # tool definitions are not visible to a history hook: a safety margin covers them
    return PackerConfig(window=8_000, output_reserve=1_000, safety_margin=150,
                        model="gpt-4.1", provider="openai")


def check_requests(server: Any, limit: int, *, chat: bool) -> list[int]:
    """Every body fits, pairs are intact, the task stays; returns the input tokens."""
    sizes = []
    for _path, body, errs in server.requests:
        assert not errs, errs
        n = count_tokens(body, "gpt-4.1").tokens
        assert n <= limit, n
        sizes.append(n)
        text = str(body.get("messages") if chat else body.get("input"))
        assert TASK in text
    return sizes


def test_pydantic_ai_history_processor(agent_server: Any) -> None:
    pytest.importorskip("pydantic_ai")
    from openai import AsyncOpenAI
    from pydantic_ai import Agent
    from pydantic_ai.capabilities import ProcessHistory
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    from ctxbudget.pack.integrations.pydantic_ai import PackHistory

    server = agent_server(ROUNDS)
    client = AsyncOpenAI(base_url=server.url, api_key="test", max_retries=0)
    model = OpenAIChatModel("gpt-4.1", provider=OpenAIProvider(openai_client=client))
    pack = PackHistory(config())
    agent = Agent(model, system_prompt=SYSTEM, capabilities=[ProcessHistory(pack)])

    @agent.tool_plain
    def read_log(part: int) -> str:
        """Read one part of the deploy log."""
        return log_part(part)

    async def run() -> Any:
        async with client:  # asyncio.run closes its loop: nothing left for the GC
            return await agent.run(TASK)

    result = asyncio.run(run())
    assert result.output == "done"
    assert len(server.requests) == ROUNDS + 1
    sizes = check_requests(server, 8_000 - 1_000, chat=True)
    for _p, body, _e in server.requests:
        assert body["messages"][0]["role"] == "system"
        assert SYSTEM.strip() in str(body["messages"][0]["content"])
    # the history outgrew the budget and was cut, rarely (pydantic-ai keeps what the
    # processor returns, so each cut starts a new packer session at the low watermark)
    drops = sum(1 for a, b in pairwise(sizes) if b < a)
    assert 1 <= drops <= (ROUNDS + 1) / 5, sizes
    assert max(sizes) > 0.8 * (8_000 - 1_000 - 150 - 400)


def test_openai_agents_call_model_input_filter(agent_server: Any) -> None:
    pytest.importorskip("agents")
    from agents import (
        Agent,
        OpenAIResponsesModel,
        RunConfig,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI

    from ctxbudget.pack.integrations.openai_agents import PackInput

    set_tracing_disabled(True)
    server = agent_server(ROUNDS)
    client = AsyncOpenAI(base_url=server.url, api_key="test", max_retries=0)

    @function_tool
    def read_log(part: int) -> str:
        """Read one part of the deploy log."""
        return log_part(part)

    cfg = PackerConfig(window=8_000, output_reserve=1_000, safety_margin=150,
                       model="gpt-4.1", provider="openai", openai_api="responses")
    pack = PackInput(cfg)
    agent = Agent(name="analyst", instructions=SYSTEM, tools=[read_log],
                  model=OpenAIResponsesModel("gpt-4.1", openai_client=client))
    async def run() -> Any:
        async with client:
            return await Runner.run(agent, TASK, max_turns=ROUNDS + 5,
                                    run_config=RunConfig(call_model_input_filter=pack))

    result = asyncio.run(run())
    assert result.final_output == "done"
    assert len(server.requests) == ROUNDS + 1
    sizes = check_requests(server, 8_000 - 1_000, chat=False)
    assert all(b["instructions"] == SYSTEM for _p, b, _e in server.requests)
    led = pack.cut_moves
    moves = sum(led)
    over = len(led) - led.index(True)
    assert 1 <= moves <= over / 5 + 1, led
    assert max(sizes) > 0.8 * (8_000 - 1_000 - 150 - 400)


def test_langgraph_pre_model_hook_and_trimmer(agent_server: Any) -> None:
    pytest.importorskip("langgraph")
    pytest.importorskip("langchain_openai")
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    from ctxbudget.pack.integrations.langchain import PackMessages

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # moved to langchain.agents
        from langgraph.prebuilt import create_react_agent

    server = agent_server(ROUNDS)

    @tool
    def read_log(part: int) -> str:
        """Read one part of the deploy log."""
        return log_part(part)

    pack = PackMessages(config())
    model = ChatOpenAI(model="gpt-4.1", base_url=server.url, api_key="test",  # type: ignore[arg-type]
                       max_retries=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        graph = create_react_agent(model, [read_log], prompt=SYSTEM,
                                   pre_model_hook=pack.pre_model_hook)
    out = graph.invoke({"messages": [("user", TASK)]},
                       {"recursion_limit": 4 * ROUNDS})
    assert out["messages"][-1].content == "done"
    # the graph's state keeps the whole history; only the model input was packed
    assert len(out["messages"]) == 1 + 2 * ROUNDS + 1
    assert len(server.requests) == ROUNDS + 1
    sizes = check_requests(server, 8_000 - 1_000, chat=True)
    assert all(b["messages"][0]["role"] == "system" for _p, b, _e in server.requests)
    moves = pack.cut_moves
    over = len(moves) - moves.index(True)
    assert 1 <= sum(moves) <= over / 5 + 1, moves
    assert max(sizes) > 0.8 * (8_000 - 1_000 - 150 - 400)
    # the plain trimmer: same objects back, truncated tool results as copies
    kept = PackMessages(config())(out["messages"])
    assert kept[0].content == TASK and len(kept) < len(out["messages"])
    assert all(m in out["messages"] for m in kept if m.type != "tool")


def test_docs_pydantic_ai_snippet_runs(agent_server: Any) -> None:
    """The pydantic-ai example of docs/pack.md runs as written (fresh interpreter), the
    SDK's standard environment variables pointing at the local server."""
    pytest.importorskip("pydantic_ai")
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "pack.md").read_text()
    (code,) = re.findall(r"<!-- snippet: pack-pydantic-ai -->\s*```python\n(.*?)```", doc,
                         re.S)
    server = agent_server(0)
    env = {**os.environ, "OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "test",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    output, total = run.stdout.split()
    assert output == "done" and int(total) > 0
    ((_path, body, errs),) = server.requests
    assert not errs and body["messages"][0]["content"] == "You are a log analyst."
