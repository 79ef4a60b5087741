"""Rebuild the Messages request Claude Code sends from a recorded session log
(``../shared/data/claude-code``): the conversation of the log, Claude Code's system
blocks and tools with ``cache_control``, ``metadata.user_id`` with the session id,
and its ``anthropic-beta`` headers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BETAS = ("claude-code-20250219,interleaved-thinking-2025-05-14,"
         "fine-grained-tool-streaming-2025-05-14")


def session_messages(path: Path) -> tuple[str, str, list[dict[str, Any]]]:
    """(session id, model, messages) of a Claude Code JSONL log (assistant lines of one
    message id merged, consecutive user lines merged)."""
    msgs: list[dict[str, Any]] = []
    last_id: str | None = None
    session = model = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        m = d.get("message")
        if d.get("isSidechain") or d.get("type") not in ("user", "assistant") or not m:
            continue
        session = d.get("sessionId") or session
        content = m["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        blocks = [{k: v for k, v in b.items() if k != "cache_control"} for b in blocks]
        role = m["role"]
        if role == "assistant":
            model = m.get("model") or model
        same = msgs and msgs[-1]["role"] == role and (role == "user" or m.get("id") == last_id)
        if same:
            msgs[-1]["content"].extend(blocks)
        else:
            msgs.append({"role": role, "content": list(blocks)})
        last_id = m.get("id")
    return session, model, msgs


def claude_code_request(path: Path) -> tuple[bytes, dict[str, str], str]:
    session, model, msgs = session_messages(path)
    msgs[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    tools = [{"name": n, "description": f"{n} tool. " * 30,
              "input_schema": {"type": "object", "$schema": "http://json-schema.org/draft-07/"
                               "schema#", "additionalProperties": False,
                               "properties": {"path": {"type": "string"}}, "required": ["path"]}}
             for n in ("Task", "Bash", "Glob", "Grep", "Read", "Edit", "Write", "TodoWrite")]
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    body = {
        "model": model, "max_tokens": 32000, "stream": True, "temperature": 1,
        "messages": msgs,
        "system": [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI "
                    "for Claude.", "cache_control": {"type": "ephemeral"}},
                   {"type": "text", "text": "You are an interactive CLI tool. " * 200,
                    "cache_control": {"type": "ephemeral"}}],
        "tools": tools,
        "metadata": {"user_id": "user_0f3c9a1b2d_account__session_" + session},
    }
    headers = {"anthropic-beta": BETAS, "anthropic-version": "2023-06-01", "x-app": "cli",
               "user-agent": "claude-cli/1.0.108 (external, cli)",
               "anthropic-dangerous-direct-browser-access": "true",
               "x-stainless-lang": "js", "content-type": "application/json"}
    return json.dumps(body, ensure_ascii=False).encode(), headers, session
