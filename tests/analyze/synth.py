"""A small seeded agent-workload generator for analyze/report tests.

Each task is a session of ``turns`` calls to claude-sonnet-4-5: a fixed prefix
(system prompt + tools) that is written to the cache on the first call and read
on the next ones, a growing history, and an output. Injections:

- ``prompt_growth=(type, day, factor)``: the system prompt of that type grows by
  ``factor`` from ``day`` (0-based) on;
- ``cache_break=(type, day)``: from ``day`` on the prefix changes on every call, so
  every call writes the cache and none reads it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from ctxbudget.usage import Call, Task, Usage

START = datetime(2026, 3, 2, tzinfo=UTC)


def make_workload(
    *,
    seed: int = 7,
    days: int = 7,
    tasks_per_day: int = 40,
    types: tuple[str, ...] = ("support", "research"),
    prompt_growth: tuple[str, int, float] | None = None,
    cache_break: tuple[str, int] | None = None,
    failure_rate: float = 0.1,
    model: str = "claude-sonnet-4-5",
) -> tuple[list[Call], list[Task]]:
    rng = np.random.default_rng(seed)
    calls: list[Call] = []
    tasks: list[Task] = []
    system = {"support": 12000, "research": 18000, "coding": 20000}
    for day in range(days):
        for i in range(tasks_per_day):
            ttype = types[i % len(types)]
            tid = f"{ttype}-{day}-{i}"
            t0 = START + timedelta(days=day, seconds=int(rng.integers(0, 80000)))
            turns = int(rng.integers(3, 9))
            prefix = system.get(ttype, 3000)
            if prompt_growth and prompt_growth[0] == ttype and day >= prompt_growth[1]:
                prefix = int(prefix * prompt_growth[2])
            broken = bool(cache_break and cache_break[0] == ttype and day >= cache_break[1])
            history = 0
            outcome = "failure" if rng.random() < failure_rate else "success"
            ts = t0
            for turn in range(turns):
                user = int(rng.integers(50, 400))
                out = int(rng.integers(150, 700))
                if turn == 0 or broken:
                    u = Usage(input_tokens=history + user, cache_write_5m_tokens=prefix,
                              output_tokens=out)
                else:
                    u = Usage(input_tokens=history + user, cache_read_tokens=prefix,
                              output_tokens=out)
                calls.append(Call(
                    ts=ts, provider="anthropic", model=model, usage=u, task_id=tid,
                    session_id=tid, task_type=ttype, request_id=f"{tid}-{turn}",
                    latency_ms=float(rng.integers(800, 4000)), source="synth", turn=turn,
                    expected_cache_read_tokens=0 if turn == 0 else prefix,
                ))
                history += user + out
                ts = ts + timedelta(seconds=int(rng.integers(5, 90)))
            tasks.append(Task(task_id=tid, task_type=ttype, outcome=outcome,  # type: ignore[arg-type]
                              started_at=t0, ended_at=ts, session_id=tid))
    return calls, tasks


def write_store(path: object, calls: list[Call], tasks: list[Task]) -> None:
    from ctxbudget.store import open_store

    with open_store(path) as s:  # type: ignore[arg-type]
        s.insert_calls(calls)
        s.upsert_tasks(tasks, source="synth")
