"""Size of the slim base install, and what works in it.

    python3 bench/bench_install.py [--keep DIR]

Creates a fresh virtual environment (``python3 -m venv``: pip and setuptools
included, as a user gets it), runs ``pip install <this checkout>`` with no extras and
prints its size on disk next to the same venv with ``[analyze]`` (measured in a second
venv). Then, in the slim venv (with ``anthropic`` added, as the app would have it, not
counted): ``ctxbudget --version``, ``ctxbudget cost``, ``ctxbudget.track(anthropic
client)`` against a local replay of a recorded Anthropic response
(``tests/track/fakeapi.py``), and ``ctxbudget report`` (which must name the extra).
Goal (issue #14): the slim venv <= 80 MB. Needs the package index.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

TRACK = r"""
import sys
import anthropic, ctxbudget
client = ctxbudget.track(anthropic.Anthropic(base_url=sys.argv[1], api_key="test", max_retries=0))
r = client.messages.create(model="claude-sonnet-4-5", max_tokens=64,
                           messages=[{"role": "user", "content": "hi"}])
ctxbudget.flush()
heavy = [m for m in ("duckdb", "pyarrow", "numpy", "pandas", "plotly") if m in sys.modules]
print(f"tracked: input {r.usage.input_tokens}, output {r.usage.output_tokens}; heavy: {heavy}")
"""


def du_mib(path: Path) -> float:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                total += os.lstat(p).st_blocks * 512
    return total / 2**20


def venv(where: Path, spec: str) -> float:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    subprocess.run([str(where / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                    spec], check=True, cwd=ROOT)
    return du_mib(where)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="build the venvs here and keep them")
    a = ap.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="ctxb-install-"))
    try:
        slim = venv(work / "slim", str(ROOT))
        full = venv(work / "analyze", f"{ROOT}[analyze]")
        empty = work / "empty"
        subprocess.run([sys.executable, "-m", "venv", str(empty)], check=True)
        base = du_mib(empty)
        print(f"{'venv':30} {'MiB':>7}")
        print(f"{'empty (pip, setuptools)':30} {base:7.1f}")
        print(f"{'pip install .':30} {slim:7.1f}   goal <= 80")
        print(f"{'pip install .[analyze]':30} {full:7.1f}")
        bin_ = work / "slim" / "bin"
        subprocess.run([str(bin_ / "pip"), "install", "-q", "--disable-pip-version-check",
                        "anthropic", "pyyaml"], check=True)
        for cmd in (["--version"], ["cost", "--model", "claude-sonnet-4-5", "--input", "1000"]):
            p = subprocess.run([str(bin_ / "ctxbudget"), *cmd], capture_output=True, text=True)
            print(f"ctxbudget {' '.join(cmd)}: exit {p.returncode}")
        sys.path.insert(0, str(ROOT / "tests" / "track"))
        from fakeapi import FakeAPI

        env = {**os.environ, "CTXBUDGET_HOME": str(work / "home")}
        with FakeAPI(DATA / "api-responses") as api:
            p = subprocess.run([str(bin_ / "python"), "-c", TRACK, api.url], capture_output=True,
                               text=True, env=env)
        print(p.stdout.strip() or p.stderr.strip().splitlines()[-1])
        p = subprocess.run([str(bin_ / "ctxbudget"), "report"], capture_output=True, text=True,
                           env=env)
        print(f"ctxbudget report: exit {p.returncode}: {p.stderr.strip()}")
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
