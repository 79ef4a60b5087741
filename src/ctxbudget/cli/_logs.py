"""Where ``report --from FORMAT`` finds each format's logs (no CLI framework import)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["FROM_FORMATS", "default_log_paths"]


#: ``report --from FORMAT``: where each format's logs are by default.
FROM_FORMATS = ("claude-code", "codex")


def default_log_paths(fmt: str) -> list[Path]:
    """The folders ``report --from FORMAT`` reads without a PATH: for claude-code
    ``$CLAUDE_CONFIG_DIR`` (comma-separated folders allowed) else those of
    ``~/.config/claude`` and ``~/.claude`` that exist (ccusage's defaults); for codex
    ``$CODEX_HOME/sessions`` else ``~/.codex/sessions``."""
    import os

    if fmt == "claude-code":
        env = os.environ.get("CLAUDE_CONFIG_DIR", "").strip()
        if env:
            return [Path(p.strip()).expanduser() for p in env.split(",") if p.strip()]
        home = Path.home()
        found = [p for p in (home / ".config" / "claude", home / ".claude") if p.is_dir()]
        return found or [home / ".claude"]
    codex_home = os.environ.get("CODEX_HOME", "").strip()
    return [(Path(codex_home).expanduser() if codex_home else Path.home() / ".codex")
            / "sessions"]
