"""Build ``agent_sessions.jsonl.gz`` (the sessions ``bench_pack_sessions.py`` replays) from
public agent trajectories. See ``README.md`` beside this file for sources and licenses.

    git clone https://github.com/sierra-research/tau-bench /tmp/tau-bench
    git clone https://github.com/SWE-agent/SWE-agent /tmp/swe-agent
    git clone https://github.com/SWE-agent/mini-swe-agent /tmp/mini && git -C /tmp/mini \
        checkout ec0e8e849fea5b1619deb1753007201000904672   # see README.md
    python3 bench/data/make_agent_sessions.py /tmp/tau-bench /tmp/swe-agent \
        /tmp/mini/output/deepseek_chat_test_1-100

One JSON object per line: ``source``, ``name``, ``system`` (the system prompt) and
``messages`` (OpenAI Chat Completions messages: user, assistant with ``tool_calls``, tool).
tau-bench trajectories are already in that shape; SWE-agent ``.traj`` steps (thought,
action, observation) become an assistant message (the thought) calling a tool named after
the action's command with ``{"command": action}``, answered by the observation.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any


def tau_bench(root: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted((root / "historical_trajectories").glob("*.json")):
        for run in json.loads(path.read_text()):
            traj = run["traj"]
            system = "\n\n".join(m["content"] for m in traj if m["role"] == "system")
            msgs = []
            for m in traj:
                if m["role"] == "system":
                    continue
                d: dict[str, Any] = {"role": m["role"], "content": m.get("content")}
                if m.get("tool_calls"):
                    d["tool_calls"] = [{"id": c["id"], "type": "function",
                                        "function": c["function"]} for c in m["tool_calls"]]
                if m["role"] == "tool":
                    d["tool_call_id"] = m["tool_call_id"]
                msgs.append(d)
            out.append({"source": f"tau-bench/{path.stem}", "name": f"task-{run['task_id']}",
                        "system": system, "messages": msgs})
    return out


def swe_agent(root: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(root.rglob("*.traj")):
        d = json.loads(path.read_text())
        hist = d.get("history") or []
        system = next((m["content"] for m in hist if m.get("role") == "system"), "")
        task = next((m["content"] for m in hist if m.get("role") == "user"), None)
        if not task or not d.get("trajectory"):
            continue
        text = task if isinstance(task, str) else "\n".join(
            b.get("text", "") for b in task if isinstance(b, dict))
        msgs: list[dict[str, Any]] = [{"role": "user", "content": text}]
        for k, step in enumerate(d["trajectory"]):
            action = (step.get("action") or "").strip()
            if not action:
                continue
            cid = f"call_{k}"
            name = action.split()[0] if action.split() else "bash"
            msgs.append({"role": "assistant", "content": step.get("thought") or None,
                         "tool_calls": [{"id": cid, "type": "function", "function": {
                             "name": name, "arguments": json.dumps({"command": action})}}]})
            msgs.append({"role": "tool", "tool_call_id": cid,
                         "content": step.get("observation") or ""})
        rel = path.relative_to(root)
        out.append({"source": "SWE-agent", "name": str(rel.parent.name + "/" + rel.stem)[-80:],
                    "system": system, "messages": msgs})
    return out


MINI_LIMIT = 30
"""The first 30 trajectories by file name (keeps the file near 1 MB)."""


def mini_swe_agent(root: Path) -> list[dict[str, Any]]:
    """mini-swe-agent ``.traj.json`` files (tool-calling format: ``tool_calls`` stored as
    the repr of a list)."""
    import ast

    out = []
    for path in sorted(root.rglob("*.traj.json"))[:MINI_LIMIT]:
        d = json.loads(path.read_text())
        system = ""
        msgs: list[dict[str, Any]] = []
        for m in d.get("messages") or []:
            role = m.get("role")
            if role == "system":
                system = m["content"]
            elif role == "user":
                msgs.append({"role": "user", "content": m["content"]})
            elif role == "assistant":
                raw = m.get("tool_calls")
                calls = ast.literal_eval(raw) if isinstance(raw, str) and raw != "None" \
                    else (raw or [])
                a: dict[str, Any] = {"role": "assistant", "content": m.get("content") or None}
                if calls:
                    a["tool_calls"] = [{"id": c["id"], "type": "function",
                                        "function": {"name": c["function"]["name"],
                                                     "arguments": c["function"]["arguments"]}}
                                       for c in calls]
                msgs.append(a)
            elif role == "tool":
                msgs.append({"role": "tool", "tool_call_id": m["tool_call_id"],
                             "content": m.get("content") or ""})
        if msgs and msgs[-1]["role"] == "assistant" and msgs[-1].get("tool_calls"):
            msgs.pop()  # the run ended before the last call's result
        out.append({"source": "mini-swe-agent", "name": path.stem.removesuffix(".traj"),
                    "system": system, "messages": msgs})
    return out


def main() -> None:
    tau, swe = Path(sys.argv[1]), Path(sys.argv[2])
    sessions = tau_bench(tau) + swe_agent(swe)
    if len(sys.argv) > 3:
        sessions += mini_swe_agent(Path(sys.argv[3]))
    dest = Path(__file__).with_name("agent_sessions.jsonl.gz")
    with gzip.open(dest, "wt", encoding="utf-8", compresslevel=9) as f:
        for s in sessions:
            f.write(json.dumps(s, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"{len(sessions)} sessions -> {dest} ({dest.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
