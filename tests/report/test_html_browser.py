"""The HTML report is self-contained and draws every chart in headless Chromium."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ctxbudget.report.html import CHART_IDS


def test_html_is_self_contained(html_report: Path) -> None:
    text = html_report.read_text(encoding="utf-8")
    assert text.count("<script") >= len(CHART_IDS)
    # plotly.js is inlined once; nothing is fetched from the network
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"<link[^>]+href=\"http", text)
    assert "Warning signals" in text and "rising" in text.lower()


def _chromium(exe: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr",
           "--v=0", "--virtual-time-budget=10000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.browser
def test_charts_drawn_in_headless_chromium(html_report: Path, tmp_path: Path,
                                           chromium: Callable[[], Any]) -> None:
    res = _chromium(chromium(), tmp_path, "--dump-dom", html_report.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    console = [ln for ln in res.stderr.splitlines() if ":CONSOLE" in ln]
    assert console == [], console
    starts = [dom.index(f'id="{cid}"') for cid in CHART_IDS]
    assert starts == sorted(starts)
    for cid, lo, hi in zip(CHART_IDS, starts, [*starts[1:], len(dom)], strict=True):
        seg = dom[lo:hi]
        assert 'class="main-svg"' in seg, f"{cid}: no SVG drawn"
        traces = [m.start() for m in re.finditer(r'<g class="trace', seg)]
        assert traces, f"{cid}: no trace group"
        drawn = re.findall(r'<path[^>]*\sd="M[^"]{8,}"', seg[traces[0]:])
        assert drawn, f"{cid}: traces have no drawn paths"


@pytest.mark.browser
def test_screenshot_is_not_blank(html_report: Path, tmp_path: Path,
                                 chromium: Callable[[], Any]) -> None:
    shot = tmp_path / "shot.png"
    res = _chromium(chromium(), tmp_path, f"--screenshot={shot}", "--window-size=1400,2400",
                    "--hide-scrollbars", html_report.as_uri())
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # charts, not a blank page
