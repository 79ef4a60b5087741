"""Generate a large ``~/.claude``-style folder from the shared Claude Code sessions.

Copy ``k`` of every shared session gets unique ids (session / message / request ids
and every UUID get a per-copy suffix, consistently within the copy) and its
``"timestamp"`` dates shifted by ``k % days`` whole days, so the folder has the
same per-copy token totals as the shared data (``totals x copies``), spread over
``days`` days. Nothing else in the lines changes.

    python3 bench/make_claude_folder.py OUT_DIR [--size-mib 1024] [--days 60]

Prints the folder, file count, bytes and number of copies. The files are written
as ``OUT_DIR/projects/bench-<p>/<session uuid>.jsonl`` (100 sessions per project).
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date, timedelta
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "claude-code"

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_TOKEN = re.compile(
    rf"(?P<uuid>{_UUID})|(?P<msg>msg_[A-Za-z0-9]+)|(?P<req>req_[A-Za-z0-9]+)"
    r'|"timestamp":"(?P<day>\d{4}-\d\d-\d\d)'
)


class Template:
    """A session file split into literal text and substitutable tokens."""

    def __init__(self, text: str, session: str) -> None:
        self.session = session
        self.parts: list[str] = []
        self.kinds: list[str] = []  # kind of the token after parts[i]
        self.values: list[str] = []
        pos = 0
        for m in _TOKEN.finditer(text):
            kind = m.lastgroup or ""
            start = m.start(kind)
            self.parts.append(text[pos:start])
            self.kinds.append(kind)
            self.values.append(m.group(kind))
            pos = m.end(kind)
        self.tail = text[pos:]

    def render(self, copy: int, shift_days: int) -> str:
        suffix = f"{copy:06x}"
        out: list[str] = []
        for lit, kind, val in zip(self.parts, self.kinds, self.values, strict=True):
            out.append(lit)
            if kind == "uuid":
                out.append(val[:-6] + suffix)
            elif kind in ("msg", "req"):
                out.append(f"{val}x{suffix}")
            else:
                out.append((date.fromisoformat(val) + timedelta(days=shift_days)).isoformat())
        out.append(self.tail)
        return "".join(out)


def make_folder(out: Path, size_mib: float = 1024, days: int = 60,
                source: Path = DATA) -> tuple[int, int, int]:
    """Write the folder; return (files, bytes, copies)."""
    templates = []
    for f in sorted((source / "projects").glob("*/*.jsonl")):
        templates.append(Template(f.read_text(encoding="utf-8"), f.stem))
    if not templates:
        raise SystemExit(f"no sessions under {source}/projects")
    per_copy = sum(len(t.render(0, 0).encode()) for t in templates)
    copies = max(1, round(size_mib * 1024 * 1024 / per_copy))
    files = written = 0
    for k in range(copies):
        for t in templates:
            text = t.render(k, k % days)
            proj = out / "projects" / f"bench-{files // 100:04d}"
            proj.mkdir(parents=True, exist_ok=True)
            name = t.session[:-6] + f"{k:06x}"
            data = text.encode("utf-8")
            (proj / f"{name}.jsonl").write_bytes(data)
            files += 1
            written += len(data)
    return files, written, copies


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--size-mib", type=float, default=1024)
    ap.add_argument("--days", type=int, default=60)
    a = ap.parse_args(argv)
    files, nbytes, copies = make_folder(a.out, a.size_mib, a.days)
    sys.stdout.write(f"{a.out}: {files} files, {nbytes / 2**20:.0f} MiB, {copies} copies\n")


if __name__ == "__main__":
    main()
