"""``ctxbudget count``: JSON output, exactness, exit codes naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tiktoken
from typer.testing import CliRunner

from ctxbudget.cli.main import app
from ctxbudget.tokens import Calibration


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def files(tmp_path: Path, real_texts: dict[str, str]) -> list[Path]:
    out = []
    for name, text in real_texts.items():
        p = tmp_path / name
        p.write_text(text, encoding="utf-8")
        out.append(p)
    return out


@pytest.mark.parametrize(("model", "encoding"),
                         [("gpt-4o", "o200k_base"), ("gpt-4", "cl100k_base")])
def test_json_per_file_and_total(runner: CliRunner, files: list[Path], model: str,
                                 encoding: str) -> None:
    res = runner.invoke(app, ["count", *map(str, files), "--model", model, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    enc = tiktoken.get_encoding(encoding)
    expected = [len(enc.encode_ordinary(p.read_text(encoding="utf-8"))) for p in files]
    assert [f["tokens"] for f in out["files"]] == expected
    assert [f["path"] for f in out["files"]] == [str(p) for p in files]
    assert out["total_tokens"] == sum(expected)
    assert out["total_bytes"] == sum(p.stat().st_size for p in files)
    assert out["exact"] is True and out["method"] == f"tiktoken:{encoding}"
    assert out["provider"] == "openai"


def test_estimate_is_labelled(runner: CliRunner, files: list[Path]) -> None:
    res = runner.invoke(app, ["count", str(files[0]), "-m", "claude-sonnet-4-5", "--json",
                              "--threads", "1"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["exact"] is False and out["provider"] == "anthropic"
    assert out["method"].startswith("estimate:o200k*")
    assert "Claude has no public tokenizer" in out["note"]


def test_calibration_file(runner: CliRunner, files: list[Path], tmp_path: Path) -> None:
    cal = Calibration(family="anthropic", basis="chars", slope=0.5, n=3, source="test")
    path = tmp_path / "cal.json"
    cal.save(path)
    res = runner.invoke(app, ["count", str(files[0]), "-m", "claude-sonnet-4-5",
                              "--calibration", str(path), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["total_tokens"] == round(len(files[0].read_text(encoding="utf-8")) * 0.5)
    assert out["method"] == "estimate:chars/2.00 calibrated(n=3)"


def test_table_output(runner: CliRunner, files: list[Path]) -> None:
    res = runner.invoke(app, ["count", *map(str, files), "-m", "gpt-4o"])
    assert res.exit_code == 0, res.output
    assert "tiktoken:o200k_base (exact)" in res.stdout
    assert "total" in res.stdout


def test_missing_file_exit_2(runner: CliRunner, files: list[Path], tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    res = runner.invoke(app, ["count", str(files[0]), str(missing), "-m", "gpt-4o"])
    assert res.exit_code == 2
    assert res.stderr.strip() == f"error: {missing}: file not found"
    assert res.stdout == ""


def test_binary_file_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    res = runner.invoke(app, ["count", str(blob), "-m", "gpt-4o"])
    assert res.exit_code == 2
    assert str(blob) in res.stderr and "binary" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_undecodable_file_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("café au lait".encode("latin-1"))
    res = runner.invoke(app, ["count", str(latin), "-m", "gpt-4o"])
    assert res.exit_code == 2
    assert res.stderr.strip() == f"error: {latin}: not UTF-8 text (invalid byte at offset 3)"


def test_directory_and_bad_tokenizer_exit_2(runner: CliRunner, files: list[Path],
                                            tmp_path: Path) -> None:
    res = runner.invoke(app, ["count", str(tmp_path), "-m", "gpt-4o"])
    assert res.exit_code == 2 and "not a regular file" in res.stderr
    res = runner.invoke(app, ["count", str(files[0]), "-m", "llama",
                              "--tokenizer", str(tmp_path / "tokenizer.json")])
    assert res.exit_code == 2
    assert "tokenizer file not found" in res.stderr and "Traceback" not in res.output


def test_no_progress_bar_off_a_tty(runner: CliRunner, files: list[Path],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from ctxbudget.cli import count as count_cli

    monkeypatch.setattr(count_cli, "PROGRESS_BYTES", 1)
    assert count_cli.want_progress(10, 1) is False  # pytest's stderr is not a terminal
    res = runner.invoke(app, ["count", *map(str, files), "-m", "gpt-4o", "--json"])
    assert res.exit_code == 0 and res.stderr == ""


def test_progress_bar_and_batches_keep_the_numbers(runner: CliRunner, files: list[Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from ctxbudget.cli import count as count_cli

    args = ["count", *map(str, files), *map(str, files), "-m", "gpt-4o", "--json"]
    plain = json.loads(runner.invoke(app, args).stdout)
    monkeypatch.setattr(count_cli, "want_progress", lambda total, n: True)
    monkeypatch.setattr(count_cli, "BATCH_BYTES", 1)  # one file per batch
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == plain
    assert len(plain["files"]) == 4


def test_offline_count_is_an_estimate_not_a_crash(runner: CliRunner, files: list[Path],
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken.registry

    from ctxbudget.tokens import _counters

    empty = tmp_path / "no-encodings"
    empty.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(empty))
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    _counters._forget_encodings()
    try:
        res = runner.invoke(app, ["count", str(files[0]), "-m", "gpt-4o", "--json"])
    finally:
        _counters._forget_encodings()
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["exact"] is False and out["method"].startswith("estimate:chars/")
    assert out["note"] == "tiktoken encoding o200k_base unavailable offline; estimated"
