"""Synthetic call logs from a budget spec, vectorized (numpy + Arrow, no object per call).

For each task: a start time (uniform over the simulated days), a task type (the spec's
``task_types`` shares, or ``--task-types``), a number of turns drawn from the spec's
turns distribution, and an outcome (``failure`` with probability ``failure_rate``,
else ``success``). Its calls are exactly the projection's calls for a session of that
many turns: same components, same call spacing, same cache replay, so the billed
usage per call is what :func:`~ctxbudget.plan.project` computes and the mean cost per
task converges to the projection's expected cost per task. Each distinct session shape
is computed once (a *template*) and tasks index into it.

Caches are per session: a session never reads another session's cached prefix (the
conservative assumption of the projection too).

Injected regressions (``--inject``), all relative to day 1 = the first simulated day
(UTC), affecting tasks that *start* on the given days:

- ``COMPONENT+N%@dayD[:TYPE]`` (or ``-N%``): from day D on, the component's tokens are
  multiplied by (1 ± N/100), rounded half-up. A fixed component (e.g. ``system_prompt``)
  becomes new content, so its cached prefix is written afresh in each session. Variable
  components: ``retrieved``, ``tool_outputs``, ``user_message``, ``output``, ``history``
  (its per-turn growth).
- ``cache-break@dayD[:TYPE]``: from day D on, the prompt prefix differs on every call
  (think: a timestamp in the system prompt), so no call reads the cache; with explicit
  caching every call writes its breakpoint prefix instead.
- ``@dayD-E`` limits either to days D..E inclusive. ``:TYPE`` limits it to one task type.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import SpecError
from .components import resolve_fixed
from .project import ModelRun, distribution_for, price_book_for, resolve_models, run_model
from .spec import VARIABLE_COMPONENTS, LoadedSpec, as_loaded

__all__ = ["Injection", "iter_simulate", "parse_injection", "simulate", "tasks_path_for",
           "write_parquet"]

_INJ = re.compile(
    r"^\s*(?:(?P<comp>[A-Za-z_][\w-]*)(?P<sign>[+-])(?P<pct>\d+(?:\.\d+)?)%|(?P<brk>cache-break))"
    r"@day(?P<d0>\d+)(?:-(?P<d1>\d+))?(?::(?P<type>[\w.-]+))?\s*$")

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Injection:
    """A regression injected into simulated logs (see the module docstring)."""

    text: str
    kind: str
    """``scale`` or ``cache-break``."""
    component: str | None
    factor: float
    first_day: int
    last_day: int | None
    task_type: str | None

    def applies(self, day: int, task_type: str) -> bool:
        return (day >= self.first_day and (self.last_day is None or day <= self.last_day)
                and (self.task_type is None or self.task_type == task_type))


def parse_injection(text: str, fixed_names: Sequence[str] = ()) -> Injection:
    m = _INJ.match(text)
    if not m:
        raise SpecError(f"--inject {text!r}: expected COMPONENT+N%@dayD[-E][:TYPE] or "
                        "cache-break@dayD[-E][:TYPE]")
    d0 = int(m["d0"])
    d1 = int(m["d1"]) if m["d1"] else None
    if d0 < 1 or (d1 is not None and d1 < d0):
        raise SpecError(f"--inject {text!r}: days start at 1 and ranges go forward")
    if m["brk"]:
        return Injection(text=text, kind="cache-break", component=None, factor=1.0,
                         first_day=d0, last_day=d1, task_type=m["type"])
    comp = m["comp"]
    allowed = [*fixed_names, *VARIABLE_COMPONENTS]
    if comp not in allowed:
        raise SpecError(f"--inject {text!r}: unknown component {comp!r} "
                        f"(known: {', '.join(allowed)})")
    pct = float(m["pct"]) / 100
    factor = 1 + pct if m["sign"] == "+" else 1 - pct
    if factor < 0:
        raise SpecError(f"--inject {text!r}: a component cannot shrink below zero")
    return Injection(text=text, kind="scale", component=comp, factor=factor, first_day=d0,
                     last_day=d1, task_type=m["type"])


def _parse_types(task_types: Mapping[str, float] | str | None,
                 spec_types: Mapping[str, float] | None) -> dict[str, float]:
    if isinstance(task_types, str):
        out: dict[str, float] = {}
        for part in task_types.split(","):
            name, _, w = part.partition(":")
            name = name.strip()
            if not name:
                raise SpecError(f"--task-types {task_types!r}: expected name[:share],...")
            try:
                out[name] = float(w) if w else 1.0
            except ValueError:
                raise SpecError(f"--task-types {task_types!r}: {w!r} is not a number") from None
            if out[name] <= 0:
                raise SpecError(f"--task-types {task_types!r}: shares must be positive")
        return out
    if task_types:
        return dict(task_types)
    return dict(spec_types) if spec_types else {"default": 1.0}


def _template_arrays(run: ModelRun) -> dict[str, Any]:
    import numpy as np

    calls, usages = run.calls, run.usages
    comps = [json.dumps({**dict(c.components), "output": c.output_tokens},
                        separators=(",", ":")) for c in calls]
    turn = np.asarray([c.turn for c in calls], dtype=np.int32)
    upto = np.zeros(len(run.turns) + 1, dtype=np.int64)  # calls in a session of n turns
    for n in range(1, len(run.turns) + 1):
        upto[n] = int(np.searchsorted(turn, n, side="right"))
    return {
        "turn": turn,
        "at_us": np.asarray([round(c.at * 1_000_000) for c in calls], dtype=np.int64),
        "input_tokens": np.asarray([u.input_tokens for u in usages], dtype=np.int64),
        "cache_read_tokens": np.asarray([u.cache_read_tokens for u in usages], dtype=np.int64),
        "cache_write_5m_tokens": np.asarray([u.cache_write_5m_tokens for u in usages],
                                            dtype=np.int64),
        "cache_write_1h_tokens": np.asarray([u.cache_write_1h_tokens for u in usages],
                                            dtype=np.int64),
        "output_tokens": np.asarray([u.output_tokens for u in usages], dtype=np.int64),
        "components": comps,
        "upto": upto,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class _Draws:
    """Everything random about a simulation, per task, drawn up front from one seed."""

    provider: str
    model: str
    service_tier: str | None
    type_names: list[str]
    type_idx: Any
    turns: Any
    failed: Any
    task_start_us: Any
    variant: Any
    counts: Any
    """Calls of each task."""
    templates: list[dict[str, Any]]
    seed: int
    _cache: dict[str, Any] = field(default_factory=dict)

    def concatenated(self) -> dict[str, Any]:
        """Template columns with all templates concatenated (computed once)."""
        import numpy as np

        cache: dict[str, Any] = self._cache
        if not cache:
            for key in ("turn", "at_us", "input_tokens", "cache_read_tokens",
                        "cache_write_5m_tokens", "cache_write_1h_tokens", "output_tokens"):
                cache[key] = np.concatenate([t[key] for t in self.templates])
        return cache

    @property
    def components(self) -> list[str]:
        """Components JSON of every template row, templates concatenated."""
        return [c for t in self.templates for c in t["components"]]


def _fixed_width(blocks: list[bytes], rows: int, width: int) -> Any:
    """A pyarrow string array of ``rows`` strings of ``width`` bytes, from joined blocks."""
    import numpy as np
    import pyarrow as pa

    if rows * width >= 2**31:
        raise ValueError("chunk too large for 32-bit string offsets")
    offsets = np.arange(rows + 1, dtype=np.int32) * np.int32(width)
    return pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(b"".join(blocks)))


def _dict(indices: Any, values: Sequence[str | None]) -> Any:
    """A dictionary-encoded string column (the Parquet writer keeps the encoding)."""
    import numpy as np
    import pyarrow as pa

    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(indices, dtype=np.int32)),
                                          pa.array(list(values), pa.string()))


def _draw(
    loaded: LoadedSpec, *, tasks: int, days: float, seed: int, failure_rate: float,
    inject: Sequence[str], task_types: Mapping[str, float] | str | None,
    start: datetime | None, model: str | None, prices: Sequence[Path],
) -> _Draws:
    import numpy as np

    if tasks < 0:
        raise SpecError("--tasks must be >= 0")
    if days <= 0:
        raise SpecError("--days must be > 0")
    if not 0.0 <= failure_rate <= 1.0:
        raise SpecError("--failure-rate must be between 0 and 1")
    s = loaded.spec
    book = price_book_for(loaded, prices)
    t0 = start or DEFAULT_START
    if t0.tzinfo is None:
        t0 = t0.replace(tzinfo=UTC)
    models = resolve_models(loaded, book, t0)
    if model is not None:
        pick = [mp for mp in models if model in (mp[0].model, mp[0].label, mp[1].model)]
        if not pick:
            raise SpecError(f"--model {model!r} is not one of the spec's models")
        m, price = pick[0]
    else:
        m, price = models[0]
    provider = m.provider or price.provider
    fixed = resolve_fixed(loaded, m.model, provider)
    injections = [parse_injection(t, [f.name for f in fixed]) for t in inject]
    types = _parse_types(task_types, s.task_types)
    for inj in injections:
        if inj.task_type is not None and inj.task_type not in types:
            raise SpecError(f"--inject {inj.text!r}: task type {inj.task_type!r} is not "
                            f"simulated (types: {', '.join(types)})")
    dist = distribution_for(loaded)
    policy = s.history_policies[0]

    rng = np.random.default_rng(seed)
    n = tasks
    offsets_s = np.sort(rng.uniform(0.0, days * 86400.0, size=n))
    type_names = list(types)
    w = np.asarray([types[k] for k in type_names], dtype=np.float64)
    type_idx = rng.choice(len(type_names), size=n, p=w / w.sum())
    turns = np.asarray(dist.sample(rng, n), dtype=np.int64)
    failed = rng.random(n) < failure_rate
    day = (offsets_s // 86400).astype(np.int64) + 1

    flags = np.zeros((n, len(injections)), dtype=bool)
    for j, inj in enumerate(injections):
        on = day >= inj.first_day
        if inj.last_day is not None:
            on &= day <= inj.last_day
        if inj.task_type is not None:
            on &= type_idx == type_names.index(inj.task_type)
        flags[:, j] = on
    if injections and n:
        keys, variant = np.unique(flags, axis=0, return_inverse=True)
        variant = np.asarray(variant).reshape(-1)
    else:
        keys, variant = np.zeros((1, len(injections)), dtype=bool), np.zeros(n, dtype=np.int64)
    templates = []
    for key in keys:
        active = [inj for inj, on in zip(injections, key, strict=True) if on]
        fscale: dict[str, float] = {}
        vscale: dict[str, float] = {}
        for inj in active:
            if inj.kind == "scale" and inj.component is not None:
                target = fscale if inj.component in s.fixed else vscale
                target[inj.component] = target.get(inj.component, 1.0) * inj.factor
        run = run_model(loaded, fixed, m, price, policy, dist.max_turns,
                        break_cache=any(i.kind == "cache-break" for i in active),
                        fixed_scale=fscale or None, variable_scale=vscale or None)
        templates.append(_template_arrays(run))
    upto = np.stack([t["upto"] for t in templates])
    counts = upto[variant, turns] if n else np.zeros(0, dtype=np.int64)
    start_us = int(t0.timestamp() * 1_000_000)
    return _Draws(provider=provider, model=price.model, service_tier=m.service_tier,
                  type_names=type_names, type_idx=type_idx, turns=turns, failed=failed,
                  task_start_us=start_us + np.round(offsets_s * 1_000_000).astype(np.int64),
                  variant=variant, counts=counts, templates=templates, seed=seed)


def _task_id_array(d: _Draws, lo: int, hi: int) -> Any:
    """Task ids ``sim<seed>-<zero-padded index>`` for tasks lo..hi-1, as a numpy ``S``
    array (built digit by digit, no Python string per task)."""
    import numpy as np

    width = max(len(str(max(len(d.counts) - 1, 0))), 6)
    prefix = f"sim{d.seed}-".encode()
    idx = np.arange(lo, hi, dtype=np.int64)
    mat = np.empty((hi - lo, len(prefix) + width), dtype=np.uint8)
    mat[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    for j in range(width):
        mat[:, len(prefix) + j] = (idx // 10 ** (width - 1 - j)) % 10 + 48
    return mat.view(f"S{mat.shape[1]}").reshape(-1)


def _calls_chunk(d: _Draws, lo: int, hi: int, latency_rng: Any, plain: bool) -> Any:
    """The calls of tasks ``lo..hi-1`` as an Arrow table with ``CALL_COLUMNS``: repetitive
    strings dictionary-encoded unless ``plain`` (then exactly :func:`call_schema`)."""
    import numpy as np
    import pyarrow as pa

    from ..store.schema import CALL_COLUMNS, DETAIL_COLUMNS  # the column contract (pure data)

    counts = d.counts[lo:hi]
    variant = d.variant[lo:hi]
    rows = int(counts.sum())
    k = hi - lo
    task_of = np.repeat(np.arange(k), counts)
    first_row = np.cumsum(counts) - counts
    within = np.arange(rows) - np.repeat(first_row, counts)
    bases = np.cumsum([0] + [len(t["turn"]) for t in d.templates])[:-1]
    tmpl = np.repeat(np.asarray(bases)[variant], counts) + within
    cat = d.concatenated()
    ts = d.task_start_us[lo:hi][task_of] + cat["at_us"][tmpl]
    tok = {b: cat[b][tmpl] for b in ("input_tokens", "cache_read_tokens",
                                     "cache_write_5m_tokens", "cache_write_1h_tokens",
                                     "output_tokens")}
    prompt = (tok["input_tokens"] + tok["cache_read_tokens"] + tok["cache_write_5m_tokens"]
              + tok["cache_write_1h_tokens"])
    latency = (250.0 + 0.02 * prompt + 12.0 * tok["output_tokens"]) \
        * latency_rng.lognormal(0.0, 0.25, size=rows)

    tids = _task_id_array(d, lo, hi)
    wt = tids.dtype.itemsize
    digits = len(str(max(int(d.counts.max(initial=1)) - 1, 1)))
    ph = b"\x00" * wt  # placeholder replaced by each task's id (ids never contain NUL)
    pats: dict[int, tuple[bytes, bytes, bytes, bytes]] = {}
    for c in set(counts.tolist()):
        sufs = [b":" + str(i).zfill(digits).encode() for i in range(c)]
        pats[c] = (ph * c, (b"sess-" + ph) * c, b"".join(ph + x for x in sufs),
                   b"".join(b"simulate:" + ph + x for x in sufs))
    pairs = list(zip(tids.tolist(), counts.tolist(), strict=True))
    blocks = tuple([pats[c][col].replace(ph, tid) for tid, c in pairs] for col in range(4))
    n_const = np.zeros(rows, dtype=np.int32)
    cols: dict[str, Any] = {
        "call_key": _fixed_width(blocks[3], rows, 9 + wt + 1 + digits),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "provider": _dict(n_const, [d.provider]),
        "model": _dict(n_const, [d.model]),
        "task_id": _fixed_width(blocks[0], rows, wt),
        "session_id": _fixed_width(blocks[1], rows, 5 + wt),
        "task_type": _dict(d.type_idx[lo:hi][task_of], d.type_names),
        "request_id": _fixed_width(blocks[2], rows, wt + 1 + digits),
        **{b: pa.array(v, pa.int64()) for b, v in tok.items()},
        "reasoning_tokens": pa.array(np.zeros(rows, np.int64), pa.int64()),
        "latency_ms": pa.array(latency, pa.float64()),
        "status": _dict(n_const, ["ok"]),
        "source": _dict(n_const, ["simulate"]),
        "service_tier": _dict(n_const, [d.service_tier]) if d.service_tier
        else pa.nulls(rows, pa.string()),
        "turn": pa.array(cat["turn"][tmpl], pa.int32()),
        "components": _dict(tmpl, d.components),
        "prefix_fingerprint": pa.nulls(rows, pa.string()),
        "expected_cache_read_tokens": pa.nulls(rows, pa.int64()),
        "input_inclusive": pa.nulls(rows, pa.bool_()),
        "meta": pa.nulls(rows, pa.string()),
        # no modality tokens nor server-side tools in a simulated call
        **{n: pa.nulls(rows, pa.int64() if t == "BIGINT" else pa.string())
           for n, t in DETAIL_COLUMNS},
    }
    table = pa.table({name: cols[name] for name, _ in CALL_COLUMNS})
    if plain:
        table = table.cast(call_schema())
    return table, ts[first_row + counts - 1] + np.round(
        latency[first_row + counts - 1] * 1000).astype(np.int64) if k else np.zeros(0, np.int64)


def call_schema() -> Any:
    """The Arrow schema of the store's calls table (``CALL_COLUMNS``)."""
    import pyarrow as pa

    from ..store.schema import CALL_COLUMNS

    types_map = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "INTEGER": pa.int32(),
                 "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(),
                 "TIMESTAMPTZ": pa.timestamp("us", tz="UTC")}
    return pa.schema([(name, types_map[t]) for name, t in CALL_COLUMNS])


def _tasks_table(d: _Draws, ended_us: Any) -> Any:
    import numpy as np
    import pyarrow as pa

    n = len(d.counts)
    tids = _task_id_array(d, 0, n)
    wt = tids.dtype.itemsize
    ph = b"\x00" * wt
    return pa.table({
        "task_id": _fixed_width([tids.tobytes()], n, wt),
        "task_type": _dict(d.type_idx, d.type_names).cast(pa.string()),
        "outcome": _dict(d.failed.astype(np.int32), ["success", "failure"]).cast(pa.string()),
        "started_at": pa.array(d.task_start_us, pa.timestamp("us", tz="UTC")),
        "ended_at": pa.array(ended_us, pa.timestamp("us", tz="UTC")),
        "session_id": _fixed_width([(b"sess-" + ph).replace(ph, t) for t in tids.tolist()],
                                   n, 5 + wt),
        "parent_id": pa.nulls(n, pa.string()),
        "source": pa.array(["simulate"] * n, pa.string()),
    })


def iter_simulate(
    spec: str | Path | LoadedSpec,
    *,
    tasks: int,
    days: float = 1.0,
    seed: int = 0,
    failure_rate: float = 0.0,
    inject: Sequence[str] = (),
    task_types: Mapping[str, float] | str | None = None,
    start: datetime | None = None,
    model: str | None = None,
    prices: Sequence[Path] = (),
    chunk_rows: int = 1_000_000,
    plain: bool = False,
) -> tuple[Any, Any]:
    """``(iterator of calls tables, tasks_table_fn)``: calls in chunks of about
    ``chunk_rows`` rows (bounded memory for 10M-call runs); call ``tasks_table_fn()`` after
    exhausting the iterator."""
    import numpy as np

    loaded = as_loaded(spec)
    d = _draw(loaded, tasks=tasks, days=days, seed=seed, failure_rate=failure_rate,
              inject=inject, task_types=task_types, start=start, model=model, prices=prices)
    n = len(d.counts)
    ended = np.zeros(n, dtype=np.int64)
    lat_rng = np.random.default_rng([seed, 1])
    cum = np.cumsum(d.counts)
    bounds = [0]
    while bounds[-1] < n:
        base = cum[bounds[-1] - 1] if bounds[-1] else 0
        nxt = int(np.searchsorted(cum, base + chunk_rows, side="right"))
        bounds.append(min(n, max(nxt, bounds[-1] + 1)))

    def chunks() -> Any:
        for lo, hi in itertools.pairwise(bounds):
            table, end = _calls_chunk(d, lo, hi, lat_rng, plain)
            ended[lo:hi] = end
            yield table

    return chunks(), lambda: _tasks_table(d, ended)


def simulate(
    spec: str | Path | LoadedSpec,
    *,
    tasks: int,
    days: float = 1.0,
    seed: int = 0,
    failure_rate: float = 0.0,
    inject: Sequence[str] = (),
    task_types: Mapping[str, float] | str | None = None,
    start: datetime | None = None,
    model: str | None = None,
    prices: Sequence[Path] = (),
) -> tuple[Any, Any]:
    """``(calls, tasks)`` as pyarrow Tables: calls with the store's ``CALL_COLUMNS``, tasks
    with the store's tasks columns. Deterministic for a given ``seed``."""
    import pyarrow as pa

    it, tasks_fn = iter_simulate(spec, tasks=tasks, days=days, seed=seed,
                                 failure_rate=failure_rate, inject=inject,
                                 task_types=task_types, start=start, model=model, prices=prices,
                                 plain=True)
    parts = list(it)
    calls = pa.concat_tables(parts) if parts else call_schema().empty_table()
    return calls, tasks_fn()


def tasks_path_for(out: Path) -> Path:
    """``calls.parquet`` -> ``calls.tasks.parquet`` (the tasks table beside the calls)."""
    return out.with_name(out.stem + ".tasks" + (out.suffix or ".parquet"))


def write_parquet(chunks: Any, tasks_fn: Any, out: Path) -> tuple[Path, Path, int]:
    """Stream call chunks to ``out`` and the tasks to ``tasks_path_for(out)``; each file is
    written to a temporary name and renamed into place. Returns (calls path, tasks path,
    rows written)."""
    import pyarrow.parquet as pq

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    rows = 0
    writer = None
    try:
        for table in chunks:
            if writer is None:
                # store_schema=False: readers see plain VARCHAR columns (CALL_COLUMNS), the
                # dictionary encoding stays a Parquet encoding detail
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd",
                                          store_schema=False)
            writer.write_table(table)
            rows += table.num_rows
        if writer is None:
            pq.write_table(call_schema().empty_table(), tmp, compression="zstd")
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(out)
    tpath = tasks_path_for(out)
    ttmp = tpath.with_name(tpath.name + ".tmp")
    pq.write_table(tasks_fn(), ttmp, compression="zstd")
    ttmp.replace(tpath)
    return out, tpath, rows


class _CallableModule(types.ModuleType):
    """``ctxbudget.plan.simulate(spec, ...)`` calls :func:`simulate`; the module's other
    names (``iter_simulate``, ``write_parquet``...) stay importable."""

    def __call__(self, spec: str | Path | LoadedSpec, **kwargs: Any) -> tuple[Any, Any]:
        return simulate(spec, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
