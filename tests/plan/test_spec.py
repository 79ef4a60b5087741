"""Spec validation: errors name file, line and field; the CLI exits 2; the schema is committed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctxbudget.cli.main import app
from ctxbudget.errors import SpecError
from ctxbudget.plan import load_spec, project, spec_json_schema

GOOD = """\
prices: prices.yaml
models: [{model: test-sonnet, provider: anthropic}]
fixed:
  system_prompt: {tokens: 400}
  tools: {tokens: 200, count: 8}
session:
  turns: 3
"""


def _err(write_spec: Callable[[str], Path], text: str) -> str:
    p = write_spec(text)
    with pytest.raises(SpecError) as exc:
        project(p)
    return str(exc.value)


def test_unknown_key_names_line_and_field(write_spec: Callable[[str], Path]) -> None:
    msg = _err(write_spec, GOOD.replace("  turns: 3\n", "  turns: 3\n  turnz: 4\n"))
    assert msg.endswith("spec.yaml:8: session.turnz: unknown key")


def test_negative_tokens(write_spec: Callable[[str], Path]) -> None:
    msg = _err(write_spec, GOOD.replace("{tokens: 200, count: 8}", "{tokens: -200, count: 8}"))
    assert "spec.yaml:5: fixed.tools.tokens:" in msg and "greater than or equal to 0" in msg


def test_nested_union_error_line(write_spec: Callable[[str], Path]) -> None:
    text = GOOD.replace("  turns: 3\n", "  turns:\n    distribution: uniform\n    min: 5\n"
                                        "    max: 2\n")
    msg = _err(write_spec, text)
    assert "spec.yaml:7: session.turns" in msg and "max must be >= min" in msg
    msg = _err(write_spec, GOOD.replace("  turns: 3\n", "  turns:\n    distribution: normal\n"
                                                       "    sd: 2\n"))
    assert "spec.yaml:7: session.turns.mean: required field missing" in msg


def test_missing_files(write_spec: Callable[[str], Path]) -> None:
    msg = _err(write_spec, GOOD.replace("{tokens: 400}", "{files: [prompts/*.md]}"))
    assert "spec.yaml:4: fixed.system_prompt.files[0]: no file matches 'prompts/*.md'" in msg
    msg = _err(write_spec, GOOD.replace("{tokens: 200, count: 8}", "{tools_file: tools.json}"))
    assert "spec.yaml:5: fixed.tools.tools_file: file not found" in msg
    msg = _err(write_spec, GOOD.replace("prices: prices.yaml", "prices: nope.yaml"))
    assert "spec.yaml:1: prices: prices file not found" in msg


def test_cacheable_must_be_leading(write_spec: Callable[[str], Path]) -> None:
    msg = _err(write_spec, GOOD + "caching: {cacheable: [tools]}\n")
    assert "spec.yaml:8: caching.cacheable: must be the leading fixed components" in msg
    msg = _err(write_spec, GOOD + "caching:\n  cacheable: [nope]\n")
    assert "spec.yaml:9: caching.cacheable: unknown fixed component(s) nope" in msg


def test_unknown_model_names_line(write_spec: Callable[[str], Path]) -> None:
    msg = _err(write_spec, GOOD.replace("test-sonnet", "no-such-model-xyz"))
    assert "spec.yaml:2: models[0]:" in msg and "no price known" in msg


def test_bad_yaml_and_not_a_mapping(write_spec: Callable[[str], Path]) -> None:
    assert "spec.yaml:2: not valid YAML" in _err(write_spec, "models: [a\nfixed: {")
    assert "a budget spec is a YAML mapping" in _err(write_spec, "- 1\n- 2\n")


@pytest.mark.parametrize("change, field", [
    (("  turns: 3\n", "  turns: 3\n  turnz: 4\n"), "session.turnz"),
    (("{tokens: 200, count: 8}", "{tokens: -1}"), "fixed.tools.tokens"),
    (("{tokens: 400}", "{files: [missing.txt]}"), "fixed.system_prompt.files[0]"),
])
def test_cli_exit_2_one_line(write_spec: Callable[[str], Path], change: tuple[str, str],
                             field: str) -> None:
    p = write_spec(GOOD.replace(*change))
    r = CliRunner().invoke(app, ["plan", str(p), "--json"])
    assert r.exit_code == 2
    err = r.stderr if hasattr(r, "stderr") else r.output
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and field in lines[0] and "spec.yaml:" in lines[0]
    assert "Traceback" not in err


def test_files_and_tools_file_are_counted(write_spec: Callable[[str], Path],
                                          tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "a.md").write_text("You are a careful assistant. " * 20)
    (tmp_path / "prompts" / "b.md").write_text("Answer briefly.")
    tools = [{"name": f"tool_{i}", "description": "Look something up " * 5,
              "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}
             for i in range(3)]
    (tmp_path / "tools.json").write_text(json.dumps(tools))
    text = GOOD.replace("{tokens: 400}", "{files: [prompts/*.md]}").replace(
        "{tokens: 200, count: 8}", "{tools_file: tools.json}").replace(
        "test-sonnet, provider: anthropic", "test-gpt, provider: openai")
    p = project(write_spec(text))
    by = {f.name: f for f in p.fixed}
    assert by["system_prompt"].source == "files (2)" and by["system_prompt"].tokens > 100
    assert by["tools"].source == "tools_file (3 tools)" and len(by["tools"].parts) == 3
    assert by["tools"].tokens >= sum(t for _, t in by["tools"].parts)
    assert p.fixed_tokens == by["system_prompt"].tokens + by["tools"].tokens
    # doubling a prompt file's content grows the count
    (tmp_path / "prompts" / "b.md").write_text("Answer briefly. " * 50)
    assert project(write_spec(text)).fixed[0].tokens > by["system_prompt"].tokens


def test_schema_is_committed_and_current(root_dir: Path) -> None:
    committed = json.loads((root_dir / "docs" / "budget-spec.schema.json").read_text())
    assert committed == json.loads(json.dumps(spec_json_schema()))
    r = CliRunner().invoke(app, ["plan", "--schema"])
    assert r.exit_code == 0 and json.loads(r.output) == committed


def test_examples_validate(root_dir: Path) -> None:
    for p in sorted((root_dir / "examples").glob("*.yaml")):
        if "prices" in p.name:
            continue
        assert load_spec(p).spec.models


def test_support_agent_example_projects(root_dir: Path) -> None:
    p = project(root_dir / "examples" / "support-agent.yaml")
    by = {f.name: f for f in p.fixed}
    assert by["tools"].source == "tools_file (5 tools)" and by["tools"].tokens > 300
    assert by["system_prompt"].source == "files (1)" and not by["system_prompt"].exact
    assert [m.caching.mode for m in p.models] == ["explicit", "explicit", "automatic",
                                                  "automatic"]
    assert p.distribution.kind == "normal" and p.task.p90_turns > p.task.p50_turns
    assert p.task.p90_usd > p.task.p50_usd


def test_spec_as_data(tmp_path: Path, write_spec: Callable[[str], Path],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    write_spec(GOOD)  # writes prices.yaml beside it
    monkeypatch.chdir(tmp_path)
    data = yaml.safe_load(GOOD)
    p = project(data)
    assert p.fixed_tokens == 2000 and len(p.turns) == 3
    data["session"]["turnz"] = 1
    with pytest.raises(SpecError, match=r"<spec>: session.turnz: unknown key"):
        project(data)
