"""Reading user YAML files with errors that name the file and line (one place for all)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["read_text", "read_yaml", "safe_load"]


def safe_load(text: str, name: str, error: type[Exception]) -> Any:
    """Parse YAML ``text``; a syntax error raises ``error("NAME:LINE: not valid YAML (...)")``."""
    import yaml

    # libyaml's parser when PyYAML was built with it (~10x faster; same safe types)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise error(f"{name}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except RecursionError:
        raise error(f"{name}: not valid YAML (nested too deeply)") from None
    except ValueError as exc:  # an integer past Python's int-from-string limit
        raise error(f"{name}: not valid YAML ({str(exc).splitlines()[0]})") from None


def read_yaml(path: Path, error: type[Exception], what: str) -> Any:
    """Read and parse a YAML file; a missing file raises ``error("PATH: WHAT not found")``,
    one that cannot be read or is not UTF-8 ``error("PATH: ...")`` too."""
    if not path.exists():
        raise error(f"{path}: {what} not found")
    return safe_load(read_text(path, error, what), str(path), error)


def read_text(path: Path, error: type[Exception], what: str) -> str:
    """The UTF-8 text of a user file; unreadable or not UTF-8 raises ``error`` naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise error(f"{path}:{line}: {what} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror})") from None
