"""Plugins register like built-ins; de-duplication invariants (hypothesis)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import ctxbudget.sources as sources
from ctxbudget.cli.main import app
from ctxbudget.sources import Importer, ImportStats, Record, Skip, get_importer, import_paths
from ctxbudget.sources._runner import import_files
from ctxbudget.store import open_store
from ctxbudget.usage import Call, Usage


class _Tsv(Importer):
    name = "tsv-demo"
    description = "model<TAB>input<TAB>output per line"
    patterns = ("*.tsv",)

    def records(self, path: Path) -> Iterable[Record]:
        for no, line in enumerate(path.read_text().splitlines(), 1):
            yield Record(path=path, line=no, value=line)

    def convert(self, rec: Record) -> Iterable[Any]:
        if rec.value.startswith("#"):
            yield Skip("comment")
            return
        model, i, o = rec.value.split("\t")
        yield Call(ts=__import__("datetime").datetime(2025, 1, 1), provider="openai",
                   model=model, usage=Usage(input_tokens=int(i), output_tokens=int(o)),
                   request_id=f"{rec.path.name}:{rec.line}", source="tsv-demo")


class _EP:
    def load(self) -> Any:
        return lambda reg: reg.add(_Tsv)


def test_third_party_importer_through_entry_point(monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setattr(sources, "_REGISTRY", None)
    monkeypatch.setattr(sources, "entry_points",
                        lambda group: [_EP()] if group == "ctxbudget.importers" else [])
    assert "tsv-demo" in sources.importer_names() and "claude-code" in sources.importer_names()
    f = tmp_path / "a.tsv"
    f.write_text("# header\ngpt-4o\t10\t2\ngpt-4o\tx\t2\n")
    r = CliRunner().invoke(app, ["import", "tsv-demo", str(tmp_path), "--db",
                                 str(tmp_path / "u.db"), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert (s["accepted"], s["rejected"], s["skipped"]) == (1, 1, {"comment": 1})
    assert s["rejections"][0]["line"] == 3
    monkeypatch.setattr(sources, "_REGISTRY", None)


_call = st.tuples(st.integers(0, 5), st.integers(1, 50), st.integers(0, 3), st.booleans())


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(_call, min_size=1, max_size=8), split=st.integers(1, 3),
       order=st.randoms(use_true_random=False))
def test_final_copy_kept_and_engines_agree(tmp_path: Path, calls: list[Any], split: int,
                                           order: Any) -> None:
    """Streaming copies (same message id, growing output) collapse into the copy with
    the most tokens, whichever file or order they come in; both engines agree and a
    re-import changes nothing."""
    lines: list[dict[str, Any]] = []
    expect: dict[str, int] = {}
    for n, (inp, out, extra_copies, side) in enumerate(calls):
        for c in range(extra_copies + 1):
            lines.append({
                "type": "assistant", "uuid": f"u{n}-{c}",
                "timestamp": f"2025-10-0{1 + n % 3}T10:00:{c:02d}.000Z", "requestId": f"req_{n}",
                "isSidechain": side,
                "message": {"id": f"msg_{n}", "model": "claude-sonnet-4-20250514",
                            "usage": {"input_tokens": inp, "output_tokens": out + c}}})
            if n % 3:  # else: no sessionId, the file name is the session
                lines[-1]["sessionId"] = f"s{n % 2}"
        expect[f"claude-code:msg_{n}:req_{n}"] = out + extra_copies
        lines.append({"type": "user", "sessionId": "s0", "message": {"content": "hi"}})
    order.shuffle(lines)
    root = Path(tempfile.mkdtemp(dir=tmp_path)) / "projects" / "p"
    root.mkdir(parents=True)
    for k in range(split):
        (root / f"f{k}.jsonl").write_text(
            "".join(json.dumps(x) + "\n" for x in lines[k::split]))
    snaps = []
    for engine in ("fast", "python", "again"):
        imp = get_importer("claude-code")
        with open_store(root.parent / ("fast.db" if engine == "again" else f"{engine}.db")) as s:
            if engine == "python":
                stats = ImportStats(format="claude-code")
                import_files(imp, imp.discover(root), s, stats)
            else:
                stats = import_paths(imp, [root], s, reimport=True)
            assert stats.calls - stats.duplicates == len(expect)
            got = dict(s.con.execute("SELECT call_key, output_tokens FROM calls").fetchall())
            snaps.append(s.con.execute("SELECT * FROM calls ORDER BY call_key").fetchall())
        assert got == expect
    assert snaps[0] == snaps[1] == snaps[2]


def test_builtin_formats_map_names_their_modules() -> None:
    """``get_importer`` imports only the module of a format in BUILTIN_FORMATS."""
    import importlib

    from ctxbudget.sources import BUILTIN_FORMATS, BUILTIN_MODULES, Registry

    for name, module in BUILTIN_FORMATS.items():
        assert module in BUILTIN_MODULES
        reg = Registry()
        importlib.import_module(module).register(reg)
        assert name in reg.names()
