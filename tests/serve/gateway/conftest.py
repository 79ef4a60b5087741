"""Fixtures: the fake upstream, and gateway processes started with ``ctxbudget gateway``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from fake_upstream import FakeUpstream

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProc:
    """``ctxbudget gateway`` in a subprocess with its own ``CTXBUDGET_HOME``."""

    def __init__(self, home: Path, config: dict[str, Any], *, workers: int = 1,
                 port: int | None = None) -> None:
        self.home = home
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_path = home / "gateway.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / f"gateway-{self.port}.log"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CTXBUDGET_HOME": str(self.home),
                "PYTHONPATH": str(ROOT / "src")}

    def start(self) -> GatewayProc:
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ctxbudget.cli.main", "gateway", "--config",
                 str(self.config_path), "--port", str(self.port), "--workers",
                 str(self.workers)], env=self.env, stdout=logf, stderr=logf)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as c:
                    c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if b"200" in c.recv(64):
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gateway did not start: {self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(60)
        self.proc = None
        return rc

    def calls(self) -> list[Any]:
        from ctxbudget.store.spool import read_spool

        calls, _, report = read_spool(self.home / "spool")
        assert report.rejected == 0, report.rejected_at
        return calls


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    up = FakeUpstream().start()
    yield up
    up.stop()


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[GatewayProc] = []

    def make(config: dict[str, Any], *, name: str = "gw", workers: int = 1,
             start: bool = True) -> GatewayProc:
        g = GatewayProc(tmp_path / name, config, workers=workers)
        made.append(g)
        return g.start() if start else g

    yield make
    for g in made:
        g.stop(signal.SIGKILL)


def base_config(upstream: FakeUpstream, home: Path | None = None, **extra: Any
                ) -> dict[str, Any]:
    cfg: dict[str, Any] = {"upstreams": {"anthropic": {"base_url": upstream.url},
                                         "openai": {"base_url": upstream.url}}}
    cfg.update(extra)
    return cfg
