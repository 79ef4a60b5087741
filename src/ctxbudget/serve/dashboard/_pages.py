"""Server-rendered pages: plain HTML, inline SVG charts, one bundled stylesheet and script.

Every number cell carries its exact value in ``data-v`` (money as the exact decimal
string the JSON report prints) and a rounded one as text; the browser tests compare
``data-v`` with ``ctxbudget report --json``. Page state (filters, sort, page) lives in
the URL, so a link can be shared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from ._data import CallRow, Snapshot, TaskQuery

__all__ = ["call_page", "day_page", "error_page", "overview_page", "task_page",
           "tasks_page", "whatif_page"]


# ------------------------------------------------------------------ formatting


def _usd(v: Decimal | None, digits: int = 4) -> str:
    if v is None:
        return "unpriced"
    q = Decimal(1).scaleb(-digits)
    return f"${v.quantize(q):,}"


def _int(v: int | None) -> str:
    return "" if v is None else f"{int(v):,}"


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f}%"


def _num(v: Any, text: str, cls: str = "num") -> str:
    dv = "" if v is None else str(v)
    return f'<td class="{cls}" data-v="{escape(dv)}">{escape(text)}</td>'


def _money(v: Decimal | None) -> str:
    return _num(v, _usd(v), "num money" + (" unpriced" if v is None else ""))


def _a(href: str, text: str, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<a href="{escape(href)}"{c}>{escape(text)}</a>'


def _ts(v: datetime | None) -> str:
    return "" if v is None else v.strftime("%Y-%m-%d %H:%M:%S")


def tasks_url(**params: Any) -> str:
    q = {k: v for k, v in params.items() if v not in (None, "")}
    return "/tasks" + ("?" + urlencode(q) if q else "")


def task_url(key: str) -> str:
    return "/task/" + quote(key, safe="")


def call_url(key: str, task: str | None = None) -> str:
    return "/call/" + quote(key, safe="") + ("?" + urlencode({"task": task}) if task else "")


# ------------------------------------------------------------------ layout


def layout(title: str, body: str, *, snap: Snapshot | None, crumbs: Sequence[tuple[str, str]]
           = (), stale: str | None = None, token_q: str = "") -> str:
    nav = " / ".join([_a("/", "overview")] + [
        _a(h, t) if h else f"<span>{escape(t)}</span>" for h, t in crumbs])
    meta = ""
    if snap is not None:
        meta = (f'<span id="asof" data-version="{escape(snap.version)}">data as of '
                f'{escape(snap.built_at.strftime("%Y-%m-%d %H:%M:%S"))} UTC '
                f'({snap.build_s:.2f} s to compute) - {escape(snap.source)}</span>')
    warn = f'<p class="stale">Showing the previous data: {escape(stale)}</p>' if stale else ""
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in (snap.notes if snap else ()))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} - ctxbudget</title>
<link rel="stylesheet" href="/static/app.css">
</head><body>
<header><a class="brand" href="/">ctxbudget</a> <nav>{nav}</nav>
<a href="/whatif">what if</a> <span id="live" title="refreshes when new calls arrive"></span>
</header>
<main><h1>{escape(title)}</h1>{meta}{warn}{notes}
{body}
</main>
<script src="/static/app.js"></script>
</body></html>"""


def _table(headers: Sequence[str], rows: Iterable[str], *, cls: str = "", tid: str = "",
           sort_links: Mapping[str, str] | None = None) -> str:
    ths = []
    for h in headers:
        link = (sort_links or {}).get(h)
        ths.append(f"<th>{_a(link, h) if link else escape(h)}</th>")
    idattr = f' id="{tid}"' if tid else ""
    return (f'<table class="{cls}"{idattr}><thead><tr>{"".join(ths)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _bars(points: Sequence[tuple[str, float, str]], *, height: int = 120, fmt: str = "usd",
          cls: str = "bars") -> str:
    """A bar chart as inline SVG: (label, value, link) per bar; shares are drawn on 0-100%."""
    if not points:
        return '<p class="empty">no data</p>'
    top = 1.0 if fmt == "pct" else (max(v for _, v, _ in points) or 1.0)
    w = 20
    width = w * len(points)
    parts = []
    for i, (label, v, href) in enumerate(points):
        h = max(1.0, v / top * height) if v > 0 else 0.0
        text = f"{label}: ${v:,.4f}" if fmt == "usd" else f"{label}: {v:.1%}"
        parts.append(
            f'<a href="{escape(href)}"><rect x="{i * w + 1}" y="{height - h:.2f}" '
            f'width="{w - 2}" height="{h:.2f}"><title>{escape(text)}</title></rect></a>')
    scale = f"${top:,.2f}" if fmt == "usd" else "100%"
    return (f'<div class="chart"><span class="top">{escape(scale)}</span>'
            f'<svg class="{cls}" viewBox="0 0 {width} {height}" width="100%" '
            f'height="{height}" preserveAspectRatio="none" role="img">{"".join(parts)}</svg>'
            f'<div class="axis"><span>{escape(points[0][0])}</span>'
            f'<span>{escape(points[-1][0])}</span></div></div>')


# ------------------------------------------------------------------ pages


def _budgets_section(budgets: tuple[list[Any], list[str]] | None) -> str:
    if budgets is None:
        return ""
    rows, errors = budgets
    trs = [f'<tr data-key="{escape(b.budget)}|{escape(b.scope)}"><td>{escape(b.budget)}</td>'
           f'<td>{escape(b.scope)}</td><td>{escape(b.unit)}</td>'
           f'{_num(b.remaining, "" if b.remaining is None else f"{b.remaining:,}")}'
           f'{_num(b.blocked, _int(b.blocked))}<td>{escape(b.gateway)}</td></tr>' for b in rows]
    errs = "".join(f'<p class="stale">gateway not readable: {escape(e)}</p>' for e in errors)
    table = _table(("budget", "scope", "unit", "remaining", "blocked requests", "gateway"), trs,
                   tid="budgets") if trs else '<p class="empty">No budget decision yet.</p>'
    return f"<section><h2>Budgets (from the gateway)</h2>{errs}{table}</section>"


def overview_page(snap: Snapshot, stale: str | None = None,
                  budgets: tuple[list[Any], list[str]] | None = None) -> str:
    tot = snap.by_day.total
    sig_types: dict[str, list[Any]] = {}
    for s in snap.signals:
        sig_types.setdefault(s.task_type, []).append(s)
    cards = []
    if tot is not None:
        for label, val, text in (
                ("spend", tot.cost_usd, _usd(tot.cost_usd, 2)),
                ("calls", tot.calls, _int(tot.calls)),
                ("tasks", tot.tasks, _int(tot.tasks)),
                ("cost per task", tot.cost_per_task_usd, _usd(tot.cost_per_task_usd)),
                ("cache hit rate", tot.cache_hit_rate, _pct(tot.cache_hit_rate)),
                ("wasted cache writes", tot.wasted_write_tokens,
                 f"{_int(tot.wasted_write_tokens)} tok"),
                ("unpriced calls", tot.unpriced_calls, _int(tot.unpriced_calls))):
            dv = "" if val is None else str(val)
            cards.append(f'<div class="card" data-k="{escape(label)}" data-v="{escape(dv)}">'
                         f'<b>{escape(text)}</b><span>{escape(label)}</span></div>')
    days = snap.by_day.rows
    spend = _bars([(r.key, float(r.cost_usd or 0), f"/day/{r.key}") for r in days])
    hit = _bars([(r.key, r.cache_hit_rate or 0.0, f"/day/{r.key}") for r in days], fmt="pct",
                cls="bars hit")
    waste = _bars([(r.key, r.wasted_write_share or 0.0, f"/day/{r.key}") for r in days],
                  fmt="pct", cls="bars waste")
    started: dict[str, list[Any]] = {}
    for s in snap.signals:
        if s.started is not None:
            started.setdefault(str(s.started), []).append(s)

    def day_badges(day: str) -> str:
        return "".join(f' <span class="sig" title="{escape(s.title)}">{escape(s.kind)}: '
                       f'{escape(s.task_type)}</span>' for s in started.get(day, []))

    day_rows = [
        f'<tr data-key="{escape(r.key)}" class="{"signal" if r.key in started else ""}">'
        f'<td>{_a(f"/day/{r.key}", r.key)}{day_badges(r.key)}</td>'
        f'{_num(r.calls, _int(r.calls))}{_num(r.tasks, _int(r.tasks))}{_money(r.cost_usd)}'
        f'{_num(r.cache_hit_rate, _pct(r.cache_hit_rate))}'
        f'{_num(r.wasted_write_tokens, _int(r.wasted_write_tokens))}'
        f'{_num(r.unpriced_calls, _int(r.unpriced_calls))}</tr>' for r in days]
    stats = {t.task_type: t for t in snap.by_type.types}
    type_rows = []
    for r in snap.by_type.rows:
        st = stats.get(r.key)
        flagged = sig_types.get(r.key, [])
        badge = "".join(f' <span class="sig" title="{escape(s.title)}">{escape(s.kind)}</span>'
                        for s in flagged)
        type_rows.append(
            f'<tr data-key="{escape(r.key)}" class="{"signal" if flagged else ""}">'
            f'<td>{_a(tasks_url(type=r.key), r.key)}{badge}</td>'
            f'{_num(r.tasks, _int(r.tasks))}{_num(r.calls, _int(r.calls))}{_money(r.cost_usd)}'
            f'{_money(r.cost_per_task_usd)}'
            f'{_money(st.p50_cost_usd if st else None)}{_money(st.p95_cost_usd if st else None)}'
            f'{_num(r.cache_hit_rate, _pct(r.cache_hit_rate))}'
            f'{_num(r.success_tasks, _int(r.success_tasks))}'
            f'{_num(r.failure_tasks, _int(r.failure_tasks))}</tr>')
    model_rows = [
        f'<tr data-key="{escape(r.key)}"><td>{_a(tasks_url(model=r.key), r.key)}</td>'
        f'{_num(r.calls, _int(r.calls))}{_money(r.cost_usd)}'
        f'{_num(r.cache_hit_rate, _pct(r.cache_hit_rate))}'
        f'{_num(r.unpriced_calls, _int(r.unpriced_calls))}</tr>' for r in snap.by_model.rows]
    sig_items = "".join(
        f'<li class="signal"><b>{escape(s.kind)}</b> {_a(tasks_url(type=s.task_type), s.task_type)}'
        f': {escape(s.title)}<br><small>fix: {escape(s.fix)}</small></li>' for s in snap.signals)
    signals = (f'<ul class="signals">{sig_items}</ul>' if sig_items
               else '<p class="ok">None of the four warning signals fired.</p>')
    unpriced = "".join(
        f'<li>{escape(str(u.get("provider")))}/{escape(str(u.get("model")))}: '
        f'{_int(u.get("calls"))} calls ({escape(str(u.get("reason", "")))})</li>'
        for u in snap.by_day.unpriced_models)
    body = f"""
<section class="cards">{"".join(cards)}</section>
<section><h2>Warning signals</h2>{signals}</section>
{_budgets_section(budgets)}
<section class="charts"><div><h3>Spend per day</h3>{spend}</div>
<div><h3>Cache hit rate per day</h3>{hit}</div>
<div><h3>Wasted cache writes (share of writes) per day</h3>{waste}</div></section>
<section><h2>Per day</h2>{_table(("day", "calls", "tasks", "cost", "cache hit", "wasted writes",
                                   "unpriced"), day_rows, tid="days")}</section>
<section><h2>Per task type</h2>{_table(("task type", "tasks", "calls", "cost", "$/task",
                                         "p50 $/task", "p95 $/task", "cache hit", "success",
                                         "failure"), type_rows, tid="types")}</section>
<section><h2>Per model</h2>{_table(("model", "calls", "cost", "cache hit", "unpriced"),
                                    model_rows, tid="models")}</section>
{f'<section><h2>Unpriced models</h2><ul>{unpriced}</ul></section>' if unpriced else ''}
"""
    return layout("Where the money went", body, snap=snap, stale=stale)


def day_page(snap: Snapshot, day: str, stale: str | None = None) -> str:
    rows = [r for r in snap.day_type if r["day"] == day]
    trs = [
        f'<tr data-key="{escape(r["task_type"])}">'
        f'<td>{_a(tasks_url(day=day, type=r["task_type"]), r["task_type"])}</td>'
        f'{_num(r["tasks"], _int(r["tasks"]))}{_num(r["calls"], _int(r["calls"]))}'
        f'{_money(r["cost_usd"])}'
        f'{_num(r["cache_read_tokens"], _int(r["cache_read_tokens"]))}'
        f'{_num(r["wasted_write_tokens"], _int(r["wasted_write_tokens"]))}</tr>'
        for r in sorted(rows, key=lambda r: -(r["cost_usd"] or 0))]
    day_row = next((r for r in snap.by_day.rows if r.key == day), None)
    head = ""
    if day_row is not None:
        head = (f'<p class="cards"><span class="card" data-k="spend" '
                f'data-v="{escape(str(day_row.cost_usd))}"><b>{_usd(day_row.cost_usd, 2)}</b>'
                f'<span>spend</span></span> <span class="card"><b>{_int(day_row.calls)}</b>'
                f'<span>calls</span></span> {_a(tasks_url(day=day), "all tasks of the day")}</p>')
    body = head + _table(("task type", "tasks", "calls", "cost", "cache read", "wasted writes"),
                         trs, tid="day-types") + (
        "" if rows else '<p class="empty">No calls on this day.</p>')
    return layout(f"Day {day}", body, snap=snap, crumbs=[("", day)], stale=stale)


def tasks_page(snap: Snapshot, q: TaskQuery, rows: list[dict[str, Any]], n: int,
               stale: str | None = None) -> str:
    base = {"day": q.day, "type": q.task_type, "model": q.model, "outcome": q.outcome,
            "session": q.session, "user": q.user}
    links = {}
    for label, key in (("cost", "cost"), ("calls", "calls"), ("tokens", "tokens"),
                       ("first call", "first"), ("outcome", "outcome"),
                       ("wasted writes", "wasted"), ("task type", "type")):
        desc = not (q.sort == key and q.desc)
        links[label] = tasks_url(**base, sort=key, order="desc" if desc else "asc")
    trs = [
        f'<tr data-key="{escape(r["task_key"])}"><td>{_a(task_url(r["task_key"]), r["task_key"])}'
        f'</td><td>{escape(r["task_type"] or "")}</td><td>{escape(r["outcome"] or "")}</td>'
        f'{_num(r["calls"], _int(r["calls"]))}{_num(r["tokens"], _int(r["tokens"]))}'
        f'{_money(r["cost_usd"])}'
        f'{_num(r["wasted_write_tokens"], _int(r["wasted_write_tokens"]))}'
        f'<td>{escape(_ts(r["first_ts"]))}</td>'
        f'<td>{escape(", ".join(r["models"] or []))}</td></tr>' for r in rows]

    def select(name: str, values: Sequence[str], cur: str | None) -> str:
        opts = ['<option value="">(any)</option>'] + [
            f'<option{" selected" if v == cur else ""}>{escape(v)}</option>' for v in values]
        return f'<label>{name} <select name="{name}">{"".join(opts)}</select></label>'

    types = [r.key for r in snap.by_type.rows]
    form = f"""<form class="filters" method="get" action="/tasks">
<label>day <input name="day" value="{escape(q.day or '')}" placeholder="YYYY-MM-DD" size="10">
</label>{select("type", types, q.task_type)}{select("model", list(snap.models), q.model)}
{select("outcome", list(snap.outcomes), q.outcome)}
<label>session <input name="session" value="{escape(q.session or '')}" size="12"></label>
<label>user <input name="user" value="{escape(q.user or '')}" size="10"></label>
<input type="hidden" name="sort" value="{escape(q.sort)}">
<input type="hidden" name="order" value="{'desc' if q.desc else 'asc'}">
<button>filter</button></form>"""
    pager = []
    if q.offset > 0:
        pager.append(_a(tasks_url(**base, sort=q.sort, order="desc" if q.desc else "asc",
                                  offset=max(0, q.offset - q.limit)), "previous"))
    if q.offset + q.limit < n:
        pager.append(_a(tasks_url(**base, sort=q.sort, order="desc" if q.desc else "asc",
                                  offset=q.offset + q.limit), "next"))
    shown = f"{q.offset + 1:,}-{q.offset + len(rows):,} of {n:,}" if rows else "none"
    body = (form + f'<p id="count" data-v="{n}">{n:,} task(s) match; showing {shown}</p>'
            + _table(("task", "task type", "outcome", "calls", "tokens", "cost",
                      "wasted writes", "first call", "models"), trs, tid="tasks",
                     sort_links=links)
            + f'<p class="pager">{" ".join(pager)}</p>')
    crumbs: list[tuple[str, str]] = []
    if q.day:
        crumbs.append((f"/day/{q.day}", q.day))
    crumbs.append(("", q.task_type or "tasks"))
    return layout("Tasks", body, snap=snap, crumbs=crumbs, stale=stale)


def task_page(snap: Snapshot, task: dict[str, Any], calls: list[CallRow],
              stale: str | None = None) -> str:
    trs = []
    for i, c in enumerate(calls):
        url = call_url(c.call_key, c.task_key)
        why = _a(url, "why?", "why") if c.suspicious else _a(url, "details")
        trs.append(
            f'<tr data-key="{escape(c.call_key)}" class="{"sus" if c.suspicious else ""}">'
            f'<td>{i + 1}</td><td>{escape(_ts(c.ts))}</td><td>{escape(c.model)}</td>'
            f'{_num(c.input_tokens, _int(c.input_tokens))}'
            f'{_num(c.cache_read_tokens, _int(c.cache_read_tokens))}'
            f'{_num(c.cache_write_tokens, _int(c.cache_write_tokens))}'
            f'{_num(c.output_tokens, _int(c.output_tokens))}{_money(c.cost_usd)}'
            f'{_num(c.latency_ms, "" if c.latency_ms is None else f"{c.latency_ms:,.0f} ms")}'
            f'<td>{escape(c.status)}</td><td>{why}</td></tr>')
    t = task
    summary = (f'<dl class="summary"><dt>task type</dt><dd>{escape(t["task_type"] or "")}</dd>'
               f'<dt>outcome</dt><dd>{escape(t["outcome"] or "(none)")}</dd>'
               f'<dt>cost</dt><dd class="money" data-v="{escape(str(t["cost_usd"]))}">'
               f'{_usd(t["cost_usd"])}</dd><dt>calls</dt><dd>{_int(t["calls"])}</dd>'
               f'<dt>session</dt><dd>{escape(t["session_id"] or "")}</dd>'
               f'<dt>wasted cache writes</dt><dd>{_int(t["wasted_write_tokens"])} tokens</dd>'
               "</dl>")
    body = summary + _table(("#", "time", "model", "input", "cache read", "cache write",
                             "output", "cost", "latency", "status", ""), trs, tid="calls")
    crumbs = [(tasks_url(type=t["task_type"]), t["task_type"] or "tasks"), ("", t["task_key"])]
    return layout(f"Task {t['task_key']}", body, snap=snap, crumbs=crumbs, stale=stale)


def call_page(snap: Snapshot, call: CallRow, audit: Mapping[str, Any],
              stale: str | None = None) -> str:
    c = call
    buckets = [("input (uncached)", c.input_tokens), ("cache read", c.cache_read_tokens),
               ("cache write 5m", c.cache_write_5m_tokens),
               ("cache write 1h", c.cache_write_1h_tokens), ("output", c.output_tokens)]
    trs = [f"<tr><td>{escape(k)}</td>{_num(v, _int(v))}</tr>" for k, v in buckets]
    find = []
    for f in audit.get("findings", ()):
        find.append(
            f'<li class="finding"><b class="cause">{escape(f.cause)}</b> '
            f'({escape(f.component)}{", " + escape(f.block) if f.block else ""}): '
            f'{escape(f.detail)}<br>lost {_int(f.lost_tokens)} cached tokens, '
            f'<span class="money" data-v="{escape(str(f.lost_usd))}">{_usd(f.lost_usd)}</span>'
            f'{" - provider says: " + escape(f.provider_reason) if f.provider_reason else ""}'
            "</li>")
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in audit.get("notes", ()))
    blocks = audit.get("blocks") or []
    brows = [
        f'<tr class="{"same" if b["same"] else "changed"}"><td>{escape(b["block"])}</td>'
        f'<td class="fp">{escape(str(b["before"] or "-"))[:80]}</td>'
        f'<td class="fp">{escape(str(b["after"] or "-"))[:80]}</td>'
        f'{_num(b["tokens"], _int(b["tokens"]))}</tr>' for b in blocks]
    btable = ("<h2>Prefix blocks, this call vs the earlier call it was compared with</h2>"
              + _table(("block", "before", "after", "tokens"), brows, tid="blocks")
              if brows else "")
    body = f"""<dl class="summary"><dt>time</dt><dd>{escape(_ts(c.ts))}</dd>
<dt>model</dt><dd>{escape(c.provider)}/{escape(c.model)}</dd>
<dt>cost</dt><dd class="money" id="call-cost" data-v="{escape(str(c.cost_usd))}">
{_usd(c.cost_usd, 6)}</dd>
<dt>task</dt><dd>{_a(task_url(c.task_key), c.task_key)}</dd>
<dt>wasted cache writes</dt><dd>{_int(c.wasted_write_tokens)} tokens</dd></dl>
{_table(("bucket", "tokens"), trs, tid="buckets")}
<h2>Why this call was expensive</h2>
{f'<ul class="findings">{"".join(find)}</ul>' if find else ''}{notes}{btable}"""
    crumbs = [(task_url(c.task_key), c.task_key), ("", c.call_key)]
    return layout(f"Call {c.call_key}", body, snap=snap, crumbs=crumbs, stale=stale)


def whatif_page(snap: Snapshot, form: Mapping[str, str], result: Any, error: str | None,
                stale: str | None = None) -> str:
    types = [r.key for r in snap.by_type.rows]
    opts = ['<option value="">(all types)</option>'] + [
        f'<option{" selected" if t == form.get("type") else ""}>{escape(t)}</option>'
        for t in types]
    ttl = "".join(f'<option{" selected" if v == form.get("ttl") else ""}>{v}</option>'
                  for v in ("", "5m", "1h"))
    caching = "".join(f'<option{" selected" if v == form.get("caching") else ""}>{v}</option>'
                      for v in ("", "on", "off"))
    models = "".join(f"<option>{escape(m)}</option>" for m in snap.models)
    out = ""
    if error:
        out = f'<p class="error">{escape(error)}</p>'
    elif result is not None:
        trs = [
            f'<tr data-key="{escape(r.task_type)}"><td>{escape(r.task_type)}</td>'
            f'{_num(r.calls, _int(r.calls))}{_num(r.tasks, _int(r.tasks))}'
            f'<td>{escape(", ".join(r.models_before))} -&gt; {escape(", ".join(r.models_after))}'
            f'</td>{_money(r.before_usd)}{_money(r.after_usd)}{_money(r.delta_usd)}'
            f'{_money(r.per_task(r.before_usd))}{_money(r.per_task(r.after_usd))}</tr>'
            for r in result.types]
        trs.append(f'<tr class="total" data-key="(total)"><td>total</td><td></td><td></td><td></td>'
                   f'{_money(result.before_usd)}{_money(result.after_usd)}<td></td><td></td>'
                   "<td></td></tr>")
        assumptions = "".join(f"<li>{escape(a)}</li>" for a in result.scenario.assumptions())
        notes = "".join(f"<li>{escape(n)}</li>" for n in result.notes)
        out = (_table(("task type", "calls", "tasks", "model before -> after", "$ before",
                       "$ after", "delta", "$/task before", "$/task after"), trs, tid="whatif")
               + f"<h3>Assumptions</h3><ul>{assumptions}</ul>"
               + (f"<h3>Notes</h3><ul>{notes}</ul>" if notes else ""))
    body = f"""<form class="filters" method="get" action="/whatif">
<label>task type <select name="type">{"".join(opts)}</select></label>
<label>model <input name="model" list="models" value="{escape(form.get("model", ""))}">
<datalist id="models">{models}</datalist></label>
<label>cache TTL <select name="ttl">{ttl}</select></label>
<label>history window (turns) <input name="history_window" size="4"
 value="{escape(form.get("history_window", ""))}"></label>
<label>caching <select name="caching">{caching}</select></label>
<button name="run" value="1">re-price</button></form>{out}"""
    return layout("What if", body, snap=snap, crumbs=[("", "what if")], stale=stale)


def error_page(status: int, message: str) -> str:
    return layout(f"{status}", f'<p class="error">{escape(message)}</p>', snap=None)
