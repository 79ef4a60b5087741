"""``import ctxbudget`` stays light and offline; the public API is explicit and complete."""

from __future__ import annotations
import __future__

import json
import re
import subprocess
import sys
import types

import ctxbudget

_Feature = __future__._Feature  # `from __future__ import annotations` leaves one behind

HEAVY = ("anthropic", "openai", "litellm", "plotly", "matplotlib", "pyspark", "duckdb",
         "tiktoken", "genai_prices.data", "tokenizers", "pandas", "pyarrow", "typer", "rich")

PROBE = r"""
import json, socket, sys
attempts = []
_real = socket.socket.connect
def _spy(self, address):
    attempts.append(repr(address))
    raise OSError("network disabled by the import probe")
socket.socket.connect = _spy
socket.socket.connect_ex = _spy
_create = socket.create_connection
def _spy_create(address, *a, **k):
    attempts.append(repr(address))
    raise OSError("network disabled by the import probe")
socket.create_connection = _spy_create

import ctxbudget  # noqa: E402

heavy = sorted(m for m in sys.modules
               if m.split(".")[0] in HEAVY_ROOTS or m in HEAVY_FULL)
print(json.dumps({"heavy": heavy, "connects": attempts}))
"""


def _probe(code: str) -> dict[str, list[str]]:
    roots = sorted({h for h in HEAVY if "." not in h})
    full = sorted(h for h in HEAVY if "." in h)
    src = f"HEAVY_ROOTS = {roots!r}\nHEAVY_FULL = {full!r}\n" + code
    p = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, timeout=120,
                       env=_clean_env())
    assert p.returncode == 0, p.stderr
    out: dict[str, list[str]] = json.loads(p.stdout.strip().splitlines()[-1])
    return out


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}


def test_import_is_light_and_offline() -> None:
    got = _probe(PROBE)
    assert got["heavy"] == [], f"import ctxbudget pulled in {got['heavy']}"
    assert got["connects"] == [], f"import ctxbudget opened connections: {got['connects']}"


def test_probe_can_fail() -> None:
    """The probe itself sees heavy imports and connections (so the test above can fail)."""
    code = PROBE.replace("import ctxbudget  # noqa: E402",
                         "import ctxbudget, duckdb\n"
                         "try:\n    socket.create_connection(('192.0.2.1', 80))\n"
                         "except OSError:\n    pass")
    got = _probe(code)
    assert "duckdb" in got["heavy"]
    assert got["connects"]


def test_pricing_a_call_stays_off_the_network() -> None:
    code = PROBE.replace(
        "import ctxbudget  # noqa: E402",
        "import ctxbudget\n"
        "ctxbudget.PriceBook().total_usd(ctxbudget.Usage(input_tokens=1), 'gpt-4o', 'openai')",
    )
    got = _probe(code)
    assert got["connects"] == []


# --------------------------------------------------------------------------- __all__


def _isort_key(name: str) -> tuple[int, str]:
    """ruff RUF022's "isort-style" order: SCREAMING_CASE, then CamelCase, then the rest."""
    if re.fullmatch(r"[A-Z][A-Z0-9_]*", name) and len(name) > 1:
        group = 0
    elif name[:1].isupper():
        group = 1
    else:
        group = 2
    return group, name


def test_all_is_sorted_and_unique() -> None:
    names = list(ctxbudget.__all__)
    assert len(names) == len(set(names))
    assert names == sorted(names, key=_isort_key), \
        "fix with: ruff check --fix --select RUF022 src/ctxbudget/__init__.py"


def test_all_is_complete() -> None:
    public = {
        name for name, value in vars(ctxbudget).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType | _Feature)
    }
    exported = set(ctxbudget.__all__)
    lazy = set(ctxbudget._LAZY)
    assert public - exported == set(), "eagerly imported public names missing from __all__"
    assert lazy - exported == set(), "lazy public names missing from __all__"
    leftovers = exported - public - lazy - {"__version__"}
    assert leftovers == set(), "names in __all__ that are neither imported nor lazy"


def test_every_public_name_is_importable() -> None:
    code = (
        "import ctxbudget\n"
        "missing = [n for n in ctxbudget.__all__ if getattr(ctxbudget, n, None) is None]\n"
        "print(missing)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, env=_clean_env())
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_unknown_attribute() -> None:
    try:
        ctxbudget.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
