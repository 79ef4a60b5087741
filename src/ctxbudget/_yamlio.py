"""Reading user YAML files with errors that name the file and line (one place for all)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["read_yaml", "safe_load"]


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


def read_yaml(path: Path, error: type[Exception], what: str) -> Any:
    """Read and parse a YAML file; a missing file raises ``error("PATH: WHAT not found")``."""
    if not path.exists():
        raise error(f"{path}: {what} not found")
    return safe_load(path.read_text(encoding="utf-8"), str(path), error)
