"""``ctxbudget pack``: pack one request from a JSON input and print the body and ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ._common import EXIT_CHECK_FAILED, console, fail, handles_errors, print_json

_INPUT_KEYS = {"system", "docs", "memory", "tools", "messages", "history", "chunks", "user",
               "volatile", "task_type"}


def _read_input(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{path}: file not found")
    except OSError as exc:
        fail(f"{path}: cannot read ({exc.strerror})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})")
    if not isinstance(data, dict):
        fail(f"{path}: expected a JSON object with messages, tools, system, chunks, user...")
        return {}
    unknown = sorted(set(data) - _INPUT_KEYS)
    if unknown:
        fail(f"{path}: unknown key(s) {', '.join(unknown)} "
             f"(known: {', '.join(sorted(_INPUT_KEYS))})")
    return data


def pack(
    input_file: Path = typer.Argument(..., metavar="INPUT.json",
                                      help="messages, tools, system, docs, chunks, user..."),
    spec: Path | None = typer.Option(None, "--spec", help="Budget spec YAML (window, "
                                     "output reserve, allocation)."),
    window: int | None = typer.Option(None, "--window", min=1, help="Context window tokens."),
    output_reserve: int | None = typer.Option(None, "--output-reserve", min=0,
                                              help="Tokens kept for the output."),
    safety_margin: int | None = typer.Option(None, "--safety-margin", min=0,
                                             help="Tokens kept free for counting error."),
    preset: str | None = typer.Option(None, "--preset", help="Allocation preset (seed-32k...)."),
    provider: str = typer.Option("anthropic", "--provider", "-p", help="anthropic or openai."),
    api: str = typer.Option("chat", "--api", help="OpenAI API: chat or responses."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model (counter, cache minimum)."),
    as_json: bool = typer.Option(False, "--json", help="Print {body, ledger} as JSON."),
) -> None:
    """Pack one request inside the budget; print the request body and the ledger."""
    if provider not in ("anthropic", "openai"):
        fail(f"--provider: {provider!r} is not anthropic or openai")
    if api not in ("chat", "responses"):
        fail(f"--api: {api!r} is not chat or responses")
    if spec is None and window is None:
        fail("give --spec SPEC.yaml or --window N")
    data = _read_input(input_file)
    from ..pack import (
        ContextOverflow,
        Packer,
        PackerConfig,
        parse_chunks,
        parse_messages,
        parse_tools,
        render_anthropic,
        render_openai_chat,
        render_openai_responses,
    )
    from ..pack._spec import config_from_spec

    overrides: dict[str, Any] = {"window": window, "output_reserve": output_reserve,
                                 "safety_margin": safety_margin, "provider": provider,
                                 "model": model,
                                 "openai_api": api if provider == "openai" else None}
    if preset is not None:
        overrides["budgets"] = PackerConfig.preset(preset)
    if spec is not None:
        from ..plan.spec import load_spec

        cfg = config_from_spec(load_spec(spec).spec, **overrides)
    else:
        cfg = PackerConfig(**{k: v for k, v in overrides.items() if v is not None})
    key = "messages" if "messages" in data else "history"
    history = parse_messages(data.get(key) or [], f"{input_file}: {key}")
    tools = parse_tools(data.get("tools") or [], f"{input_file}: tools")
    chunks = parse_chunks(data.get("chunks") or [], f"{input_file}: chunks")
    packer = Packer(cfg)
    try:
        packed = packer.pack(
            system=str(data.get("system") or ""), docs=list(data.get("docs") or []),
            memory=data.get("memory"), tools=tools, history=history,
            chunks=chunks, user=data.get("user"),
            volatile=data.get("volatile"), task_type=data.get("task_type"))
    except ContextOverflow as exc:
        fail(f"{input_file}: {exc}", EXIT_CHECK_FAILED)
        return
    if provider == "anthropic":
        body = render_anthropic(packed)
    elif api == "responses":
        body = render_openai_responses(packed)
    else:
        body = render_openai_chat(packed)
    ledger = packed.ledger.as_dict()
    if as_json:
        print_json({"body": body, "ledger": ledger})
        return
    _render(body, packed.ledger)


def _render(body: dict[str, Any], led: Any) -> None:
    from rich.table import Table

    con = console()
    t = Table(title=f"Packed call: {led.total_tokens:,} of {led.limit:,} tokens "
                    f"(window {led.window:,} - output reserve {led.output_reserve:,})")
    for c in ("component", "before", "sent"):
        t.add_column(c, justify="left" if c == "component" else "right")
    for name, sent in led.components.items():
        before = led.components_before.get(name, sent)
        if before or sent:
            t.add_row(name, f"{before:,}", f"{sent:,}")
    con.print(t)
    if led.decisions:
        d = Table(title="Decisions")
        for c in ("component", "action", "item", "tokens", "why"):
            d.add_column(c)
        for x in led.decisions:
            d.add_row(x.component, x.action, x.item,
                      f"{x.tokens_before:,} -> {x.tokens_after:,}", x.reason)
        con.print(d)
    con.print(f"breakpoints at blocks {list(led.breakpoints)} of {len(led.prefix_fingerprint)}; "
              f"expected cache read {led.expected_cache_read_tokens:,} tokens")
    con.print_json(json.dumps(body, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    app.command("pack")(handles_errors(pack))
