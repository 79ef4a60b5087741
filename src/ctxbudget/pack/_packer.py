"""The :class:`Packer`: builds each call's context inside the budget, cache-stable.

One ``Packer`` per session (conversation / agent run): it keeps the session's history
cut point, cleared tool results, summary, tool set and the previous call's fingerprint.
``pack()`` is synchronous; ``apack()`` awaits an async summarizer. Both share one core:
``_plan`` (all budget decisions) then ``_finish`` (blocks, breakpoints, ledger).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate
from typing import Any

from ..errors import SpecError
from ._canon import block_hash, canonical_json
from ._config import BUCKET_COMPONENTS, STABILITY, PackerConfig
from ._counter import Counter, MemoCounter, default_counter
from ._history import choose_cut
from ._ledger import (
    ANTHROPIC_LOOKBACK_BLOCKS,
    Decision,
    Ledger,
    common_prefix,
    expected_cache_read,
    min_cacheable_tokens,
)
from ._model import Chunk, Message, ToolDef, parse_chunks, parse_messages, parse_tools
from ._prepare import HistoryPrep, Prepared
from ._retrieval import SelectedChunk, edge_order, select_chunks
from ._trim import head_tail
from ._types import ContextOverflow, Packed, _Plan, _Session, await_, component_at, framing

__all__ = ["ContextOverflow", "Packed", "Packer"]


class Packer:
    """Packs each API call of one session inside ``config``'s budget.

    ``counter`` is any ``str -> int`` token counter (default: the model's counter from
    ``ctxbudget.tokens``); it is wrapped in a :class:`MemoCounter` so each distinct text
    is counted once per session.
    """

    def __init__(self, config: PackerConfig, *, counter: Counter | None = None,
                 session_id: str | None = None) -> None:
        self.config = config
        fn = counter if counter is not None else default_counter(config.model, config.provider)
        self.count: MemoCounter = fn if isinstance(fn, MemoCounter) else MemoCounter(fn)
        self.session_id = session_id
        self._s = _Session()
        self._mtok: dict[int, tuple[Message, int]] = {}
        self._mhash: dict[int, tuple[Message, str, int]] = {}
        keep_thinking = config.provider == "anthropic"
        self._prep_trunc = HistoryPrep(self._tokens, self._hash, self.count,
                                       config.tool_outputs, config.history.pin_first_user,
                                       truncate=True, keep_thinking=keep_thinking)
        self._prep_plain = HistoryPrep(self._tokens, self._hash, self.count,
                                       config.tool_outputs, config.history.pin_first_user,
                                       truncate=False, keep_thinking=keep_thinking)
        self._parse_memo: dict[int, tuple[Any, list[Message]]] = {}
        self._render_cache: dict[str, Any] = {}
        self._budgets = {b: config.budget(b) for b in BUCKET_COMPONENTS}
        fr = framing(config.provider, config.model or "")
        self._per_msg = fr[0] if config.message_overhead is None else config.message_overhead
        self._per_tool, self._tools_base, self._request_base, self._reply_priming, \
            self._per_name = fr[1:]
        self._tool_tok: dict[ToolDef, int] = {}
        self._bh: dict[tuple[str, str], str] = {}
        self._trim_memo: dict[tuple[str, int], tuple[str, bool]] = {}
        self._min_cache = (config.min_cacheable_tokens if config.min_cacheable_tokens is not None
                           else min_cacheable_tokens(config.model, config.provider))

    @classmethod
    def from_spec(cls, spec: Any, *, counter: Counter | None = None,
                  session_id: str | None = None, **overrides: Any) -> Packer:
        """A packer from a plan ``BudgetSpec`` (or a mapping with the same keys)."""
        from ._spec import config_from_spec

        return cls(config_from_spec(spec, **overrides), counter=counter, session_id=session_id)

    def reset(self) -> None:
        """Forget the session (cut point, summary, tool set, previous fingerprint)."""
        self._s = _Session()
        self._prep_trunc.reset()
        self._prep_plain.reset()

    def _prepare(self, raw: tuple[Message, ...], cleared: int, truncating: bool,
                 new_turn: bool) -> Prepared:
        prep, other = (self._prep_trunc, self._prep_plain) if truncating \
            else (self._prep_plain, self._prep_trunc)
        other.reset()  # only one of them follows the session
        return prep.prepare(raw, cleared, new_turn)

    # ------------------------------------------------------------------ counting
    def _tokens(self, m: Message) -> int:
        """A message's tokens as the rendered body counts them: its texts, its role string,
        (OpenAI) the call ids, plus the per-message framing."""
        hit = self._mtok.get(id(m))
        if hit is not None and hit[0] is m:
            return hit[1]
        c = self.count
        cfg = self.config
        pm = self._per_msg
        role = m.role
        if cfg.provider == "anthropic":
            n = pm + c("user" if role == "tool" else role) + c(m.text)
            for call in m.tool_calls:
                n += c(call.name) + c(call.arguments)
            for t in m.thinking:  # redacted: the encrypted data stands in (an upper bound)
                n += c(t.thinking) if t.data is None else c(t.data)
        elif cfg.openai_api == "chat":
            n = pm + c(role) + c(m.text)
            if role == "tool":
                n += c(m.tool_call_id or "")
            for call in m.tool_calls:
                n += c(call.name) + c(call.arguments)
        elif role == "tool":
            n = pm + c("function_call_output") + c(m.tool_call_id or "") + c(m.text)
        else:
            n = pm + c(role) + c(m.text) if (m.text or not m.tool_calls) else 0
            for call in m.tool_calls:
                n += pm + self._per_name + c("function_call") + c(call.id) + c(call.name) \
                    + c(call.arguments)  # a function_call item has a "name" key
        if len(self._mtok) > 500_000:
            self._mtok.clear()
        self._mtok[id(m)] = (m, n)
        return n

    def _tool_tokens(self, t: ToolDef) -> int:
        """A tool definition as the rendered body counts it, plus the per-tool framing."""
        n = self._tool_tok.get(t)
        if n is None:
            d: dict[str, Any] = {"name": t.name}
            if t.description:
                d["description"] = t.description
            cfg = self.config
            if cfg.provider == "anthropic":
                d["input_schema"] = t.schema
            elif cfg.openai_api == "chat":
                d = {"type": "function", "function": {**d, "parameters": t.schema}}
            else:
                d = {"type": "function", **d, "parameters": t.schema}
            n = self.count(canonical_json(d)) + self._per_tool
            self._tool_tok[t] = n
        return n

    def _sys_overhead(self, has_system: bool) -> int:
        if not has_system or self.config.provider == "anthropic":
            return 0  # Anthropic's system is a top-level field, not a message
        return self._per_msg + self.count("system")

    def _final_overhead(self, has_final: bool) -> int:
        return self._per_msg + self.count("user") if has_final else 0

    def _hash(self, m: Message) -> tuple[str, int]:
        hit = self._mhash.get(id(m))
        if hit is not None and hit[0] is m:
            return hit[1], hit[2]
        parts = [m.role, m.text, m.tool_call_id or "", "1" if m.is_error else ""]
        for call in m.tool_calls:
            parts += [call.id, call.name, call.arguments]
        for t in m.thinking:
            parts += ["thinking", t.thinking, t.signature, t.data or ""]
        h = block_hash("message", *parts)
        api = 1 if m.role != "assistant" else \
            (1 if m.text else 0) + len(m.tool_calls) + len(m.thinking)
        if len(self._mhash) > 500_000:
            self._mhash.clear()
        self._mhash[id(m)] = (m, h, max(api, 1))
        return h, max(api, 1)

    def _block_hash(self, kind: str, text: str) -> str:
        key = (kind, text)
        h = self._bh.get(key)
        if h is None:
            if len(self._bh) > 100_000:
                self._bh.clear()
            h = self._bh[key] = block_hash(kind, text)
        return h

    # ------------------------------------------------------------------ public
    def pack(self, *, system: str = "", tools: Iterable[ToolDef | Mapping[str, Any]] = (),
             history: Iterable[Message | Mapping[str, Any]] = (), user: str | None = None,
             chunks: Iterable[Chunk | Mapping[str, Any] | str] = (),
             docs: Sequence[str] = (), memory: str | None = None,
             volatile: str | None = None, task_type: str | None = None) -> Packed:
        """Pack one call. ``history`` is the whole session so far (append-only across
        calls); ``user`` the new user message (``None`` inside an agent loop, where the
        history ends with tool results); ``volatile`` per-call context such as the date.
        Raises :class:`ContextOverflow` when even the untrimmable parts do not fit."""
        plan = self._plan(system, tools, history, user, chunks, docs, memory, volatile,
                          task_type)
        summary = None
        if plan.pending_summary is not None:
            fn = self.config.history.summarizer
            assert fn is not None
            res = fn(self._s.summary, plan.pending_summary)
            if inspect.isawaitable(res):
                try:
                    asyncio.get_running_loop()
                except RuntimeError:
                    res = asyncio.run(await_(res))
                else:
                    close = getattr(res, "close", None)
                    if callable(close):
                        close()  # never leave an un-awaited coroutine behind
                    raise SpecError("the summarizer is async and an event loop is running: "
                                    "use 'await packer.apack(...)'") from None
            summary = str(res)
        return self._finish(plan, summary)

    async def apack(self, **kwargs: Any) -> Packed:
        """:meth:`pack` for async code: awaits an async summarizer."""
        plan = self._plan(kwargs.get("system", ""), kwargs.get("tools", ()),
                          kwargs.get("history", ()), kwargs.get("user"),
                          kwargs.get("chunks", ()), kwargs.get("docs", ()),
                          kwargs.get("memory"), kwargs.get("volatile"), kwargs.get("task_type"))
        summary = None
        if plan.pending_summary is not None:
            fn = self.config.history.summarizer
            assert fn is not None
            res = fn(self._s.summary, plan.pending_summary)
            summary = str(await res) if inspect.isawaitable(res) else str(res)
        return self._finish(plan, summary)

    # ------------------------------------------------------------------ planning
    def _select_tools(self, catalog: tuple[ToolDef, ...], task_type: str | None,
                      decisions: list[Decision]) -> tuple[tuple[ToolDef, ...],
                                                          frozenset[str] | None]:
        subsets = self.config.tools.subsets
        if not subsets:
            return catalog, None
        names = {t.name for t in catalog}
        prev = self._s.tool_names or frozenset()
        if task_type is None:
            if self._s.tool_names is None:
                return catalog, None
            wanted: frozenset[str] = frozenset()
        else:
            if task_type not in subsets:
                raise SpecError(f"tools.subsets has no task type {task_type!r} "
                                f"(known: {', '.join(sorted(subsets))})")
            wanted = frozenset(subsets[task_type])
            unknown = wanted - names
            if unknown:
                raise SpecError(f"tools.subsets[{task_type!r}] names unknown tool(s): "
                                f"{', '.join(sorted(unknown))}")
        chosen = prev | wanted
        if self._s.tool_names is not None and chosen != prev:
            decisions.append(Decision(component="tools", action="over_budget", item=task_type
                                      or "", reason="task type needs tools the session did not "
                                      f"offer yet ({', '.join(sorted(wanted - prev))}): the "
                                      "tools array grows (static prefix changes once)"))
        kept = tuple(t for t in catalog if t.name in chosen)
        for t in catalog:
            if t.name not in chosen:
                decisions.append(Decision(component="tools", action="dropped", item=t.name,
                                          tokens_before=self.count(t.canonical_text()),
                                          reason=f"not in the subset of task type "
                                                 f"{task_type!r} (session keeps its tool set)"))
        return kept, chosen

    def _plan(self, system: str, tools: Iterable[ToolDef | Mapping[str, Any]],
              history: Iterable[Message | Mapping[str, Any]], user: str | None,
              chunks: Iterable[Chunk | Mapping[str, Any] | str], docs: Sequence[str],
              memory: str | None, volatile: str | None, task_type: str | None) -> _Plan:
        cfg = self.config
        s = self._s
        count = self.count
        decisions: list[Decision] = []
        catalog = parse_tools(tools)
        tool_defs, tool_names = self._select_tools(catalog, task_type, decisions)
        system_parts = tuple(p for p in (system, *docs) if p)  # system first when given
        raw = parse_messages(history, "history", self._parse_memo)
        # history must extend the previous call's history
        first_key = (raw[0].role, raw[0].text) if raw else None
        reset = bool(s.history_len) and (len(raw) < s.history_len or first_key != s.first_key)
        if reset:
            decisions.append(Decision(component="history", action="kept", item="session",
                                      reason="history is not an extension of the previous "
                                             "call's: history cut, cleared results and summary "
                                             "reset"))
        cut_msg = 0 if reset else s.cut
        pol_out = cfg.tool_outputs
        truncating = pol_out.max_tokens is not None and (
            pol_out.truncate == "always" or (s.truncating and not reset))
        new_turn = bool(user)
        prep = self._prepare(raw, 0 if reset else s.cleared, truncating, new_turn)
        # fixed parts: never trimmed
        budgets = dict(self._budgets)
        mem_tok = count(memory) if memory else 0
        summary_prev = None if reset else s.summary
        summ = cfg.history.summarizer is not None
        summary_reserve = cfg.history.summary_max_tokens if summ else (
            count(summary_prev) if summary_prev else 0)
        final_texts = tuple(t for t in (volatile, user) if t)
        tools_tok = sum(self._tool_tokens(t) for t in tool_defs) + \
            (self._tools_base if tool_defs else 0)
        has_sys = bool(system_parts or memory)
        sys_tok = sum(count(p) for p in system_parts) + self._sys_overhead(has_sys)
        fixed = tools_tok + sys_tok + mem_tok + self._request_base + self._reply_priming
        vol_tok = sum(count(t) for t in final_texts)
        final_ov = self._final_overhead(True)
        # the summary: the previous one stays while nothing new is dropped; a new one (when
        # the cut drops messages) gets whatever room is left, at most summary_max_tokens
        summary_ov = 0 if has_sys else self._sys_overhead(True)
        prev_sum = count(summary_prev) + summary_ov if summary_prev else 0
        limit = cfg.limit
        chunk_list = parse_chunks(chunks)
        selected = select_chunks(chunk_list, cfg.retrieval, budgets["retrieved"],
                                 count, self._trim_memo, decisions)

        def room(ch: list[SelectedChunk]) -> int:
            """Tokens left for the conversation under the hard limit."""
            f = vol_tok + sum(x.tokens for x in ch)
            return limit - fixed - f - (final_ov if f else 0) - prev_sum

        conv_nominal = max(budgets["history"] + budgets["tool_outputs"] - mem_tok
                           - summary_reserve, 0)
        table = prep.table
        old_cut = table.unit_at(cut_msg)
        prio = {b: (cfg.budgets[b].priority if b in cfg.budgets else 50)
                for b in ("retrieved", "history")}
        if prio["retrieved"] <= prio["history"]:
            # retrieval gives way first: the conversation gets its own budget before the
            # chunks get the rest of the window
            need = min(conv_nominal, table.kept(old_cut))
            while selected and room(selected) < need:
                worst = max(selected, key=lambda x: x.rank)
                selected = [x for x in selected if x is not worst]
                decisions.append(Decision(
                    component="retrieved", action="dropped", item=worst.chunk.id,
                    tokens_before=worst.tokens,
                    reason=f"the conversation needs its budget under the limit {limit}; "
                           "retrieved has the lowest priority"))
        chunk_tok = sum(x.tokens for x in selected)
        # unused shares of the other buckets flow to the conversation
        flow: dict[str, int] = {}
        if "retrieved" in cfg.budgets:
            flow["retrieved"] = max(budgets["retrieved"] - chunk_tok, 0)
        if "system_tools" in cfg.budgets:
            flow["system_tools"] = max(budgets["system_tools"] - tools_tok - sys_tok, 0)
        if "user_output" in cfg.budgets:
            flow["user_output"] = max(budgets["user_output"] - cfg.output_reserve - vol_tok
                                      - (final_ov if vol_tok or chunk_tok else 0), 0)
        left = room(selected)
        conv_budget = max(min(conv_nominal + sum(flow.values()), left), 0)
        if conv_budget != s.conv_budget or reset:
            parts = ", ".join(f"unused {k} {v}" for k, v in flow.items() if v)
            decisions.append(Decision(
                component="history", action="reallocated", item="conversation budget",
                tokens_before=conv_nominal, tokens_after=conv_budget,
                reason=f"history + tool_outputs budget {conv_nominal}"
                       + (f" + {parts}" if parts else "")
                       + (f"; capped at the {left} tokens the fixed parts leave under the "
                          f"limit {limit}" if left < conv_nominal + sum(flow.values()) else "")
                       + "; the watermarks apply to this budget"))
        high = int(conv_budget * cfg.history.high_watermark)
        started = False
        if not truncating and pol_out.max_tokens is not None and table.kept(old_cut) > high:
            truncating = started = True  # under pressure: from now on, for the session
            prep = self._prepare(raw, 0 if reset else s.cleared, truncating, new_turn)
            table = prep.table
        if prep.cleared > (0 if reset else s.cleared):
            decisions.append(Decision(
                component="tool_outputs", action="cleared",
                item=f"results {0 if reset else s.cleared}..{prep.cleared - 1}",
                reason=f"more than keep_recent={pol_out.keep_recent} + clear_batch="
                       f"{pol_out.clear_batch} uncleared tool results: cleared in one batch"))
        decisions.extend(d for _, d in prep.unit_decisions)
        msgs = prep.msgs
        cut, why = choose_cut(table, old_cut, conv_budget, cfg.history)
        if started and cut == old_cut and prep.n_truncated:
            # truncating rewrites the history prefix: move the cut on the same call (down to
            # the low watermark) rather than rewrite the prefix again soon after
            low = int(conv_budget * cfg.history.low_watermark)
            while cut < len(table) and table.kept(cut) > low:
                cut += 1
            if cut != old_cut:
                why = (f"tool-output truncation started (conversation {table.kept(old_cut)} > "
                       f"{high}); cut moved with it to keep {table.kept(cut)} <= low "
                       f"watermark {low}")
        if why:
            decisions.append(Decision(component="history", action="moved_cut",
                                      item=f"unit {old_cut} -> {cut}",
                                      tokens_before=table.kept(old_cut),
                                      tokens_after=table.kept(cut), reason=why))

        def drops(c: int) -> bool:
            return c > old_cut and (c - old_cut) > sum(1 for e in table.extras(c)
                                                       if e >= old_cut)

        def total(c: int, ch: list[SelectedChunk]) -> int:
            f = vol_tok + sum(x.tokens for x in ch)
            return fixed + table.kept(c) + f + (final_ov if f else 0) \
                + (0 if summ and drops(c) else prev_sum)

        if total(cut, selected) > limit:
            # only what the watermarks cannot see: anchors, a history floor, summaries
            order = sorted(("retrieved", "history"), key=lambda b: prio[b])
            for bucket in order:
                if total(cut, selected) <= limit:
                    break
                if bucket == "retrieved":
                    while selected and total(cut, selected) > limit:
                        worst = max(selected, key=lambda x: x.rank)
                        selected = [x for x in selected if x is not worst]
                        decisions.append(Decision(
                            component="retrieved", action="dropped", item=worst.chunk.id,
                            tokens_before=worst.tokens,
                            reason=f"the request exceeded the limit {limit}; retrieved has "
                                   "the lowest priority"))
                else:
                    start = cut
                    floor = cfg.budgets["history"].min_tokens if "history" in cfg.budgets else 0
                    while cut < len(table) and total(cut, selected) > limit \
                            and table.kept(cut + 1) >= floor:
                        cut += 1
                    if cut != start:
                        decisions.append(Decision(
                            component="history", action="moved_cut",
                            item=f"unit {start} -> {cut}", tokens_before=table.kept(start),
                            tokens_after=table.kept(cut),
                            reason=f"the request exceeded the limit {limit}"))
            need = total(cut, selected)
            if need > limit:
                comp = {"tools+system+docs+memory+summary": fixed, "history": table.kept(cut),
                        "retrieved": sum(x.tokens for x in selected), "volatile+user": vol_tok}
                raise ContextOverflow(need, limit, comp)
        pending = None
        summary_room = 0
        if summ and drops(cut):
            keep = set(table.extras(cut))
            pending = [m for u in range(old_cut, cut) if u not in keep
                       for m in msgs[table.starts[u]:table.ends[u]]]
            summary_room = min(cfg.history.summary_max_tokens,
                               limit - total(cut, selected) - summary_ov)
        return _Plan(tools=tool_defs, system=system_parts, memory=memory, msgs=msgs,
                     table=table, cut_unit=cut, chunks=selected,
                     cut_moved=cut != old_cut or (started and prep.n_truncated > 0),
                     volatile=volatile or None, user=user or None,
                     has_system=bool(system), decisions=decisions,
                     budgets=budgets, pending_summary=pending, new_cleared=prep.cleared,
                     summary_room=summary_room,
                     ptoks=prep.ptoks, prep=prep,
                     history_len=len(raw), first_key=first_key, tool_names=tool_names,
                     truncating=truncating, conv_budget=conv_budget, catalog=catalog,
                     chunk_list=chunk_list, summary_prev=summary_prev,
                     reset=reset)

    # ------------------------------------------------------------------ finishing
    def _finish(self, plan: _Plan, summary_text: str | None) -> Packed:
        cfg = self.config
        s = self._s
        count = self.count
        decisions = plan.decisions
        summary = None if plan.reset else s.summary
        if summary_text is not None:
            room = plan.summary_room
            n = count(summary_text)
            summary = head_tail(summary_text, room, count) if n > room else summary_text
            if not summary.strip():
                summary = None
            dropped = plan.pending_summary or []
            decisions.append(Decision(
                component="summary", action="summarized", item=f"{len(dropped)} message(s)",
                tokens_before=sum(self._tokens(m) for m in dropped),
                tokens_after=count(summary) if summary else 0,
                reason="messages dropped by the cut were folded into the summary"
                       + (f" (cut to the {room} tokens left)" if n > room else "")
                       + ("; no room left for it: not sent" if summary is None else "")))
        epoch = tuple(t for t in (plan.memory, summary) if t)
        table, msgs, ptoks, prep = plan.table, plan.msgs, plan.ptoks, plan.prep
        bh = self._block_hash

        def add_blocks(blocks: list[tuple[str, str]], overhead: int) -> None:
            """One rendered block per (component, text); the group's framing
            overhead is charged to its first block."""
            for comp, text in blocks:
                n = count(text) + overhead
                overhead = 0
                hashes.append(bh(comp, text))
                toks.append(n)
                apis.append(1)
                comps[comp] += n

        cut = plan.cut_unit
        extras = table.extras(cut)
        # kept message indexes: extras, then every unit from the cut (contiguous unless
        # something in between was dropped as invalid)
        idx: list[int] = []
        for e in extras:
            idx.extend(range(table.starts[e], table.ends[e]))
        first = last = 0
        contiguous = False
        if cut < len(table):
            first, last = table.starts[cut], table.ends[-1]
            if table.suffix[cut] == sum(ptoks[first:last]):
                contiguous = True
            else:
                for u in range(cut, len(table)):
                    idx.extend(range(table.starts[u], table.ends[u]))
        spans = [(table.starts[e], table.ends[e]) for e in extras]
        if cut < len(table):
            spans += [(first, last)] if contiguous else [
                (table.starts[u], table.ends[u]) for u in range(cut, len(table))]
        plan.extra["spans"] = tuple(spans)
        # the stable front: the kept messages a later cut move inside the current turn keeps
        # in front (the pinned first user message, the user message that started the turn),
        # when they already lead the kept history; a breakpoint after them lets the call
        # that moves the cut read them (and everything before) from cache. A new `user`
        # message starts a new turn: the next call's anchor is that message, none yet.
        fut = table.extras(len(table)) if not plan.user else []
        plan.extra["front"] = len(fut) if fut and (
            extras + list(range(cut, cut + len(fut) - len(extras))))[:len(fut)] == fut else 0
        hist_dropped = len(table) - len(extras) - (len(table) - cut)
        if hist_dropped:
            first_kept = table.starts[cut] if cut < len(table) else len(msgs)
            note = ""
            if extras:
                a = table.anchor(cut)
                note = "; kept " + ", ".join(
                    f"message {table.starts[e]} ("
                    + ("the user message that started this turn" if e == a
                       else "pinned first user message") + ")" for e in extras)
            decisions.append(Decision(
                component="history", action="dropped",
                item=f"{hist_dropped} unit(s) before message {first_kept}",
                tokens_before=table.suffix[0], tokens_after=table.kept(cut),
                reason="before the session's cut point (sliding window with hysteresis; "
                       "tool rounds kept whole)" + note))
        # blocks in render order, as parallel lists
        hashes: list[str] = []
        toks: list[int] = []
        apis: list[int] = []
        comps = dict.fromkeys(STABILITY, 0)
        for t in plan.tools:
            hashes.append(bh("tool", t.canonical_text()))
            toks.append(self._tool_tokens(t))
            apis.append(1)
        if toks:
            toks[0] += self._tools_base
        comps["tools"] = sum(toks)
        n_tools = len(toks)
        sys_blocks: list[tuple[str, str]] = [
            ("system" if i == 0 and plan.has_system else "docs", p)
            for i, p in enumerate(plan.system)]
        n_sys = len(sys_blocks)
        sys_blocks += [(c, t) for t, c in ((plan.memory, "memory"), (summary, "summary")) if t]
        add_blocks(sys_blocks, self._sys_overhead(bool(sys_blocks)))
        n_epoch = len(sys_blocks) - n_sys
        kept_msgs = [msgs[i] for i in idx]
        hashes += [prep.phash[i] for i in idx]
        apis += [prep.papi[i] for i in idx]
        toks += [ptoks[i] for i in idx]
        tc = prep.tool_cum
        tool_tok = sum(tc[i + 1] - tc[i] for i in idx)
        hist_tok = sum(ptoks[i] for i in idx)
        if contiguous:
            kept_msgs += msgs[first:last]
            hashes += prep.phash[first:last]
            apis += prep.papi[first:last]
            toks += ptoks[first:last]
            tool_tok += tc[last] - tc[first]
            hist_tok += table.suffix[cut]
        n_hist = len(kept_msgs)
        comps["history"] = hist_tok - tool_tok
        comps["tool_outputs"] = tool_tok
        # offered but not sent, per component (framing counted the same way on both sides)
        removed = dict.fromkeys(STABILITY, 0)
        kept_tools = set(plan.tools)
        removed["tools"] = sum(self._tool_tokens(t) for t in plan.catalog
                               if t not in kept_tools)
        if plan.catalog and not plan.tools:
            removed["tools"] += self._tools_base
        removed["history"] = prep.hist_before - (hist_tok - tool_tok)
        removed["tool_outputs"] = prep.tool_before - tool_tok
        kept_chunks = {id(x.chunk): x.tokens for x in plan.chunks}
        tpl = cfg.retrieval.template
        for ch in plan.chunk_list:
            offered = count(tpl.format(id=ch.id, text=ch.text, score=ch.score))
            removed["retrieved"] += max(offered - kept_chunks.get(id(ch), 0), 0)
        if plan.summary_prev and plan.summary_prev != summary:
            removed["summary"] = count(plan.summary_prev)
        first_kept_msg = table.starts[cut] if cut < len(table) else len(msgs)
        for i, n_before, n_after in prep.truncated:
            if i >= first_kept_msg:
                decisions.append(Decision(
                    component="tool_outputs", action="truncated",
                    item=f"tool result {msgs[i].tool_call_id} (message {i})",
                    tokens_before=n_before, tokens_after=n_after,
                    reason=f"longer than max_tokens={cfg.tool_outputs.max_tokens} while the "
                           "conversation is over its budget: kept head and tail around a "
                           "marker" if cfg.tool_outputs.truncate == "under_pressure" else
                           f"longer than max_tokens={cfg.tool_outputs.max_tokens}: kept head "
                           "and tail around a marker"))
        chunk_texts = [x.text for x in (edge_order(plan.chunks) if cfg.retrieval.edges
                                        else sorted(plan.chunks, key=lambda x: x.rank))]
        final: list[tuple[str, str]] = []
        if plan.volatile:
            final.append(("volatile", plan.volatile))
        final += [("retrieved", t) for t in chunk_texts]
        if plan.user:
            final.append(("user", plan.user))
        add_blocks(final, self._final_overhead(bool(final)))
        groups = ("tools",) * n_tools + ("system",) * n_sys + ("epoch",) * n_epoch \
            + ("history",) * n_hist + ("volatile",) * len(final)
        # request-level framing: the request base on the first block, reply priming on the last
        if toks:
            for i, extra in ((0, self._request_base), (len(toks) - 1, self._reply_priming)):
                toks[i] += extra
                comps[component_at(i, n_tools, sys_blocks, kept_msgs, final)] += extra
        n_front = n_tools + len(sys_blocks)
        before = {k: v + max(removed[k], 0) for k, v in comps.items()}
        plan.extra["before"] = before
        return self._ledger_and_commit(plan, hashes, toks, apis, groups, comps, epoch, summary,
                                       tuple(kept_msgs), tuple(t for _, t in final),
                                       n_front, n_hist)

    def _ledger_and_commit(self, plan: _Plan, hashes_l: list[str], toks: list[int],
                           apis: list[int], groups: tuple[str, ...], components: dict[str, int],
                           epoch: tuple[str, ...], summary: str | None,
                           kept_msgs: tuple[Message, ...], final: tuple[str, ...],
                           n_front: int, n_hist: int) -> Packed:
        cfg = self.config
        s = self._s
        cum = list(accumulate(toks))
        api_cum = list(accumulate(apis))
        hashes = tuple(hashes_l)
        last_of: dict[str, int] = {}
        for i in range(n_front):
            last_of[groups[i]] = i
        if n_hist:
            last_of["history"] = n_front + n_hist - 1
        static = [h for h, g in zip(hashes[:n_front], groups, strict=False)
                  if g in ("tools", "system")]
        static_hash = block_hash("static", *static)
        static_changed = s.static_hash is not None and static_hash != s.static_hash
        common = common_prefix(s.prev_hashes, hashes)
        # Anthropic breakpoints: end of each stable group (prefix >= model minimum), the
        # rolling history breakpoint, the previous one when beyond the 20-block lookback,
        # and the end of the history's stable front (read back when the cut moves).
        breakpoints: list[int] = []
        if cfg.provider == "anthropic":
            cand: dict[int, int] = {}  # block index -> priority (lower is dropped first)
            # a separate tools breakpoint only when no system block follows (the system
            # one covers the tools): then at most 4 candidates exist and the static
            # markers never flip from one call to the next
            groups_used = (("system", 3), ("epoch", 2), ("history", 5)) \
                if "system" in last_of else (("tools", 1), ("epoch", 2), ("history", 5))
            for g, prio in groups_used:
                i = last_of.get(g, -1)
                if i >= 0 and cum[i] >= self._min_cache:
                    cand[i] = max(cand.get(i, 0), prio)
            h_end = last_of.get("history", -1)
            front = n_front + plan.extra["front"] - 1
            if n_front <= front < h_end and cum[front] >= self._min_cache:
                cand[front] = 0  # dropped first: it never displaces another breakpoint
            if h_end >= 0 and s.prev_breakpoints:
                prev_h = [p for p in s.prev_breakpoints if p < common and p < h_end]
                if prev_h:
                    p = max(prev_h)
                    if api_cum[h_end] - api_cum[p] > ANTHROPIC_LOOKBACK_BLOCKS \
                            and cum[p] >= self._min_cache:
                        cand[p] = max(cand.get(p, 0), 4)
            breakpoints = sorted(sorted(cand, key=lambda i: -cand[i])[:4])
        read, common = expected_cache_read(
            provider=cfg.provider, prev_hashes=s.prev_hashes,
            prev_breakpoints=s.prev_breakpoints, hashes=hashes, cum_tokens=cum,
            api_blocks_cum=api_cum, breakpoints=breakpoints, min_tokens=self._min_cache,
            common=common)
        total = cum[-1] if cum else 0
        if total > cfg.limit:  # defensive: _plan guarantees this never happens
            raise ContextOverflow(total, cfg.limit, components)
        over: set[str] = set()
        for bucket, comps in BUCKET_COMPONENTS.items():
            used = sum(components[c] for c in comps)
            if bucket in ("system_tools", "user_output") and bucket in cfg.budgets \
                    and used > plan.budgets[bucket]:
                over.add(bucket)
                if bucket not in s.over or plan.reset:  # said once, when it starts
                    plan.decisions.append(Decision(
                        component=bucket, action="over_budget", item=bucket, tokens_after=used,
                        reason=f"uses {used} of its {plan.budgets[bucket]} budget; not "
                               "trimmable, fits the window (said once while it lasts)"))
        table = plan.table
        cut_msg = table.starts[plan.cut_unit] if plan.cut_unit < len(table) \
            else plan.history_len
        # the kept front: extras (anchor, pinned message) and the cut; when the cut sits at
        # the end of the history a new turn can release the old anchor: that moves it too
        kept_key = (*(table.starts[e] for e in table.extras(plan.cut_unit)), cut_msg)
        cut_moved = plan.cut_moved or (s.calls > 0 and not plan.reset
                                       and kept_key != s.kept_key)
        ledger = Ledger(
            components=components, components_before=dict(plan.extra["before"]),
            budgets=plan.budgets,
            total_tokens=total, limit=cfg.limit, window=cfg.window,
            output_reserve=cfg.output_reserve, decisions=tuple(plan.decisions),
            prefix_fingerprint=hashes, block_tokens=tuple(toks), groups=groups,
            breakpoints=tuple(breakpoints), expected_cache_read_tokens=read,
            common_prefix_blocks=common, history_cut=cut_msg, cut_moved=cut_moved,
            call_index=s.calls, static_changed=static_changed,
            extra={"min_cacheable_tokens": self._min_cache, "provider": cfg.provider,
                   "conversation_budget": plan.conv_budget,
                   "truncating_tool_outputs": plan.truncating})
        # commit the session state
        s.cut = cut_msg
        s.cleared = plan.new_cleared
        s.summary = summary
        if plan.tool_names is not None:
            s.tool_names = plan.tool_names
        s.static_hash = static_hash
        s.prev_hashes = hashes
        s.prev_breakpoints = tuple(breakpoints)
        s.calls += 1
        s.history_len = plan.history_len
        s.first_key = plan.first_key
        s.kept_key = kept_key
        s.truncating = plan.truncating
        s.conv_budget = plan.conv_budget
        s.over = frozenset(over)
        return Packed(tools=plan.tools, system=plan.system, epoch=epoch, messages=kept_msgs,
                      final=final, ledger=ledger, config=cfg, session_id=self.session_id,
                      render_cache=self._render_cache, history_spans=plan.extra["spans"])
