"""Importers: one module per external log format, all registered through one hook.

Built-in importers register exactly the way a third-party one does: a module (or
any object) exposes ``register(registry: Registry) -> None`` and calls
``registry.add(MyImporter)``. Built-ins are listed in :data:`BUILTIN_MODULES`;
third-party packages declare an entry point in the ``ctxbudget.importers`` group
pointing at their ``register`` function::

    [project.entry-points."ctxbudget.importers"]
    myformat = "my_pkg.ctxbudget_importer:register"

Then ``ctxbudget import myformat PATH`` works, with the same de-duplication,
rejection reporting, ``--strict`` and progress bar as the built-ins.

Every importer is idempotent: calls are keyed ``<source>:<request id>`` (see
:func:`ctxbudget.store.db.call_key`) and written with ``INSERT OR REPLACE``, so
importing the same data again adds nothing; copies of one call met in the input
collapse into the final one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputFormatError

if TYPE_CHECKING:
    from ._base import (
        STDIN,
        Importer,
        ImportStats,
        Record,
        Rejection,
        Skip,
        csv_records,
        json_records,
        jsonl_records,
        parse_ts,
    )
    from ._runner import Imported, StrictStop

#: Names re-exported from the private modules, imported on first use: importing one
#: submodule (the Claude Code scanner of the daily report) does not load them all.
_LAZY: dict[str, str] = {
    **dict.fromkeys(("STDIN", "Importer", "ImportStats", "Record", "Rejection", "Skip",
                     "csv_records", "json_records", "jsonl_records", "parse_ts"), "._base"),
    "StrictStop": "._runner",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "BUILTIN_MODULES",
    "STDIN",
    "ImportStats",
    "Importer",
    "Record",
    "Registry",
    "Rejection",
    "Skip",
    "StrictStop",
    "csv_records",
    "get_importer",
    "import_paths",
    "importer_names",
    "json_records",
    "jsonl_records",
    "parse_ts",
    "registry",
]

#: Modules whose ``register(registry)`` adds the built-in importers.
BUILTIN_MODULES: tuple[str, ...] = (
    "ctxbudget.sources.claude_code",
    "ctxbudget.sources.codex",
    "ctxbudget.sources.batch",
    "ctxbudget.sources.otel",
    "ctxbudget.sources.litellm",
    "ctxbudget.sources.langfuse",
    "ctxbudget.sources.table",
)


class Registry:
    """Importer classes by format name."""

    def __init__(self) -> None:
        self._by_name: dict[str, type[Importer]] = {}

    def add(self, cls: type[Importer]) -> None:
        if not cls.name:
            raise ValueError(f"importer {cls.__name__} has no name")
        self._by_name[cls.name] = cls

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def get(self, name: str) -> type[Importer]:
        try:
            return self._by_name[name]
        except KeyError:
            raise InputFormatError(
                f"unknown import format {name!r}; known formats: {', '.join(self.names())}"
            ) from None


_REGISTRY: Registry | None = None


def entry_points(group: str) -> Any:
    """``importlib.metadata.entry_points``, imported on first use (it reads every
    installed package's metadata)."""
    from importlib.metadata import entry_points as _entry_points

    return _entry_points(group=group)


#: The built-in format each of the first modules registers: ``get_importer`` of one of
#: these imports that module only (tests check the map against what they register).
BUILTIN_FORMATS: dict[str, str] = {
    "claude-code": "ctxbudget.sources.claude_code",
    "codex": "ctxbudget.sources.codex",
}


def registry() -> Registry:
    """The registry, filled on first use from built-ins and entry points."""
    global _REGISTRY
    if _REGISTRY is None:
        reg = Registry()
        for mod in BUILTIN_MODULES:
            importlib.import_module(mod).register(reg)
        for ep in entry_points(group="ctxbudget.importers"):
            hook: Callable[[Registry], None] = ep.load()
            hook(reg)
        _REGISTRY = reg
    return _REGISTRY


def importer_names() -> list[str]:
    return registry().names()


def get_importer(name: str, **options: Any) -> Importer:
    """An importer instance for ``name`` configured with its options."""
    if _REGISTRY is None and name in BUILTIN_FORMATS:
        # the daily run: no need to import every other format and the plugins
        one = Registry()
        importlib.import_module(BUILTIN_FORMATS[name]).register(one)
        return one.get(name)(**options)
    return registry().get(name)(**options)


def import_paths(
    importer: Importer,
    paths: Sequence[Path | str],
    store: Any,
    *,
    strict: bool = False,
    reimport: bool = False,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> ImportStats:
    """Import files / folders / ``-`` (stdin) into ``store``.

    Files the store's ``imports`` table already holds with the same size and mtime
    are skipped unless ``reimport`` (re-importing them would change nothing); a file
    of an appendable format that grew since is read on from where the last import
    stopped (whole when its bytes before that point changed). The importer's fast
    path (``import_fast``), if it has one, goes first; the files it hands back are
    read line by line. ``on_total`` receives the number of bytes to read once the
    files are known (for a progress bar); ``progress`` the bytes read.
    """
    from ._base import STDIN, ImportStats
    from ._runner import file_signature, import_files, imported_signatures, resume_offset

    stats = ImportStats(format=importer.name)
    files: list[Path] = []
    seen: set[Path] = set()
    done = {} if reimport else imported_signatures(store, importer.name)
    starts: dict[Path, Imported] = {}
    total = 0
    for raw in paths:
        p = Path(raw)
        # resolve the argument once: what discover finds under it is then absolute
        # (resolving each of thousands of files costs a stat per path component)
        for f in importer.discover(p if p == STDIN else p.resolve()):
            if f in seen:
                continue
            seen.add(f)
            sig = file_signature(f)
            prev = done.get(str(f)) if done else None
            if prev is not None and sig == (prev.size, prev.mtime):
                stats.unchanged_files += 1
                continue
            if (prev is not None and importer.appendable and sig is not None
                    and resume_offset(f, prev) is not None):
                starts[f] = prev
                stats.appended_files += 1
            files.append(f)
            if sig is not None:
                total += sig[0] - (starts[f].size if f in starts else 0)
    if on_total is not None:
        on_total(total)
    fast = getattr(importer, "import_fast", None)
    if fast is not None and files:
        files = fast(files, store, stats, strict=strict, progress=progress, starts=starts)
    if files:
        engine = stats.engine
        import_files(importer, files, store, stats, strict=strict, progress=progress,
                     starts=starts)
        stats.engine = f"{engine}+python" if engine else "python"
    stats.accepted = stats.calls - stats.duplicates
    return stats
