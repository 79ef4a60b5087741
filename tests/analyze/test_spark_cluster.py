"""``report --engine spark --spark-master spark://...`` on a real standalone cluster.

A Spark standalone master and one worker are started on 127.0.0.1 from the pyspark
package's own launcher (``pyspark/bin/spark-class``, what ``sbin/start-master.sh``
and ``start-worker.sh`` run), the shared Claude Code data is imported and exported
with ``ctxbudget export --out DIR``, and the report computed on the cluster from the
export must equal DuckDB's on the store: every row's tokens and exact cost.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctxbudget.cli.main import app

pyspark = pytest.importorskip("pyspark")
pytestmark = [pytest.mark.spark, pytest.mark.slow]

if shutil.which("java") is None:  # pragma: no cover - CI installs a JRE
    pytest.skip("no Java runtime", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(pred: object, what: str, timeout: float = 600) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def _workers(ui: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5) as r:
        return sum(1 for w in json.load(r).get("workers", []) if w.get("state") == "ALIVE")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = Path(pyspark.__file__).parent
    spark_class = home / "bin" / "spark-class"
    assert spark_class.exists()
    port, ui, wui = _free_port(), _free_port(), _free_port()
    logs = tmp_path_factory.mktemp("spark-logs")
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_WORKER_DIR": str(logs / "work"), "PYSPARK_PYTHON": sys.executable}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with (logs / "master.log").open("wb") as out:
            procs.append(subprocess.Popen(
                [str(spark_class), "org.apache.spark.deploy.master.Master", "--host",
                 "127.0.0.1", "--port", str(port), "--webui-port", str(ui)],
                env=env, stdout=out, stderr=subprocess.STDOUT))
        _wait(lambda: socket.create_connection(("127.0.0.1", port), timeout=2).close() is None,
              "the Spark master")
        with (logs / "worker.log").open("wb") as out:
            procs.append(subprocess.Popen(
                [str(spark_class), "org.apache.spark.deploy.worker.Worker", "--host",
                 "127.0.0.1", "--cores", "2", "--memory", "2g", "--webui-port", str(wui),
                 f"spark://127.0.0.1:{port}"],
                env=env, stdout=out, stderr=subprocess.STDOUT))
        _wait(lambda: _workers(ui) == 1, "the worker to register")
        yield f"spark://127.0.0.1:{port}"
    finally:
        from ctxbudget.analyze import engine

        for master, session in list(engine._SESSIONS.items()):
            if master.startswith("spark://"):
                session.stop()
                del engine._SESSIONS[master]
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()


def test_report_on_the_cluster_equals_duckdb(cluster: str, data_dir: Path,
                                             tmp_path: Path) -> None:
    runner = CliRunner()
    db = tmp_path / "u.duckdb"
    r = runner.invoke(app, ["import", "claude-code", str(data_dir / "claude-code"),
                            "--db", str(db)])
    assert r.exit_code == 0, r.output
    out = tmp_path / "lake"
    r = runner.invoke(app, ["export", "--out", str(out), "--db", str(db), "--json"])
    assert r.exit_code == 0, r.output
    done = json.loads(r.stdout)
    assert (done["calls"], done["days"]) == (197, 2)
    assert sorted(p.name for p in (out / "calls").iterdir()) == ["day=2025-09-03",
                                                                  "day=2025-09-07"]
    ref = runner.invoke(app, ["report", "--db", str(db), "--by", "day", "--json"])
    assert ref.exit_code == 0, ref.output
    got = runner.invoke(app, ["report", "--engine", "spark", "--spark-master", cluster,
                              "--data", str(out), "--by", "day", "--json"])
    assert got.exit_code == 0, got.output
    want, have = json.loads(ref.stdout), json.loads(got.stdout)
    assert have["engine"] == "spark"
    keys = ("key", "calls", "input_tokens", "cache_read_tokens", "cache_write_5m_tokens",
            "cache_write_1h_tokens", "output_tokens", "cost_usd")
    assert [{k: r[k] for k in keys} for r in have["rows"]] == \
        [{k: r[k] for k in keys} for r in want["rows"]]
    assert have["total"]["cost_usd"] == want["total"]["cost_usd"]
