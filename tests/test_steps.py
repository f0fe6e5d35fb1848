from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import StepsError
from harness.gates.models import GateResult, GateRun, GateStatus, TestCase
from harness.gates.runner import run_gates
from harness.policy import GuardConfig, Policy, load_policy, parse_policy
from harness.steps import (
    StepsScript,
    apply_to_policy,
    load_steps,
    map_command,
    parse_steps,
    remap_paths,
    repair_text,
)
from harness.steps.account import gate_account, residue

from .conftest import other_gates_off

SEED = Path(__file__).resolve().parent.parent / "harness" / "example" / "STEPS_4b.md"
PYTEST_CMD = (
    "pytest --cov=lukhas --cov-config=.coveragerc --cov-report=term-missing:skip-covered "
    "--cov-fail-under=60 -q"
)


@pytest.fixture(scope="module")
def seed() -> StepsScript:
    return load_steps(SEED)


@pytest.fixture(scope="module")
def clean_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    fixed, repaired = repair_text(SEED.read_text(encoding="utf-8"))
    assert repaired
    path = tmp_path_factory.mktemp("clean") / "STEPS_4b.md"
    path.write_text(fixed, encoding="utf-8")
    return path


def test_seed_arrives_mis_decoded_and_is_repaired(seed: StepsScript) -> None:
    raw = SEED.read_text(encoding="utf-8")
    assert "â€”" in raw and "â‰¤" in raw
    assert seed.repaired_encoding
    assert seed.title.startswith("STEPS_4b — Claude Execution Script")
    dump = json.dumps(seed.model_dump(mode="json"), ensure_ascii=False)
    for garbage in ("â€", "â‰", "âœ", "ðŸ"):
        assert garbage not in dump


def test_clean_utf8_parses_to_the_same_script(seed: StepsScript, clean_path: Path) -> None:
    clean = load_steps(clean_path)
    assert not clean.repaired_encoding
    assert clean.model_dump(exclude={"source", "repaired_encoding"}) == seed.model_dump(
        exclude={"source", "repaired_encoding"}
    )


def test_blocks_and_their_gate_commands(seed: StepsScript) -> None:
    assert [b.number for b in seed.blocks] == [1, 2, 3, 4, 5]
    assert seed.block(1).title == "Coverage Expansion (to ≥60%)"
    assert seed.block(1).gate_commands == [PYTEST_CMD]
    assert seed.block(2).gate_commands == ["ruff check lukhas --statistics"]
    assert seed.block(3).gate_commands == ["mypy lukhas"]
    assert seed.block(4).gate_commands == ["bandit -r lukhas -c bandit.yaml"]
    final = [
        "ruff check --fix lukhas",
        "ruff format lukhas",
        "ruff check lukhas",
        "mypy lukhas",
        PYTEST_CMD,
        "lint-imports --config=linter.ini",
        "bandit -r lukhas -c bandit.yaml",
        "gitleaks detect --no-banner --redact",
    ]
    assert seed.block(5).gate_commands == final
    assert seed.block(5).final and not seed.block(4).final
    assert seed.final_gates == final
    with pytest.raises(StepsError, match="no block 9"):
        seed.block(9)


def test_goals_flatten_nested_bullets_and_skip_run_lines(seed: StepsScript) -> None:
    goals1 = seed.block(1).goals
    assert len(goals1) == 4
    assert goals1[1].startswith("Add targeted tests in: `lukhas/core/memory_system.py`")
    assert "Fix: Any Optional arithmetic or attribute risks." in seed.block(3).goals
    assert not any(g.startswith("Run:") for b in seed.blocks for g in b.goals)
    assert len(seed.goals) == 6  # the "Phase 4b Goals" section


def test_targets(seed: StepsScript) -> None:
    def targets(n: int) -> set[tuple[str, str, float]]:
        return {(t.metric, t.op, t.value) for t in seed.block(n).targets}

    assert ("coverage", ">=", 60) in targets(1)
    assert ("ruff", "<=", 0) in targets(2)
    assert ("mypy", "<=", 0) in targets(3)
    assert ("bandit", "<=", 0) in targets(4)
    assert {("ruff", "<=", 0), ("coverage", ">=", 60), ("imports", "<=", 0)} <= targets(5)


def test_count_targets_from_goal_text() -> None:
    text = (
        "## Block 1 — Lint\n\n- Bring **ruff** to **25** findings.\n"
        "- Keep mypy diffs to 20 lines.\n- Coverage to 70% or better.\n"
    )
    targets = {(t.metric, t.op, t.value) for t in parse_steps(text).block(1).targets}
    assert targets == {("ruff", "<=", 25), ("coverage", ">=", 70)}


def test_guardrails_output_and_progress_log(seed: StepsScript) -> None:
    kinds = {g.kind: g for g in seed.guardrails}
    assert set(kinds) == {
        "max_lines_per_file",
        "no_network_tests",
        "utc",
        "lane_separation",
        "security_clean",
        "progress_log",
    }
    assert kinds["max_lines_per_file"].value == 20
    assert seed.max_lines_per_file() == 20
    assert seed.progress_log == "docs/audits/CLAUDE_PROGRESS.md"
    assert seed.output_keys == [
        "ruff_stable_ok",
        "mypy_ok",
        "pytest",
        "coverage_stable",
        "lane_guard_ok",
        "bandit_ok",
        "gitleaks_ok",
    ]
    assert seed.output_subkeys == {"pytest": ["passed", "failed", "errors", "skipped"]}
    assert seed.output_template.startswith('{ "ruff_stable_ok"')


def test_unplaced_lists_what_was_not_understood(seed: StepsScript) -> None:
    heads = [u.splitlines()[0] for u in seed.unplaced]
    assert heads == [
        "---",
        "## STEPS_4 Completion Summary",
        "# STEPS_5 — Placeholder (Not Started)",
        "## Artifacts & Execution Scripts",
    ]
    summary = seed.unplaced[1]
    assert "PERF401: 6 (manual list comprehensions)" in summary
    assert not summary.rstrip().endswith("---")


def test_minimal_script_subsections_and_intro_guardrails() -> None:
    text = (
        "# Cleanup\n\nKeep diffs small (at most 8 lines per file) and log to `notes/log.md`.\n\n"
        "## Step 1: Lint\n\n- Make ruff green.\n\n### Gate\n\n```\n"
        "ruff check src \\\n  --config ruff.toml\n```\n\n"
        "## Final Gates\n\n```bash\n# comment\n$ mypy src; python -m pytest -x tests\n```\n"
        "```python\nprint('not a command')\n```\n"
        '```json\n{"unlabelled": 1}\n```\n'
        '## Output JSON\n\nPrint this:\n\n```json\n{"ok": true, "n": {"a": 1}}\n```\n'
    )
    script = parse_steps(text, "mini.md")
    assert not script.repaired_encoding
    assert [b.number for b in script.blocks] == [1, 2]
    assert script.block(1).gate_commands == ["ruff check src --config ruff.toml"]
    assert script.block(1).gates[0].config == "ruff.toml"
    assert script.final_gates == ["mypy src", "python -m pytest -x tests"]
    assert script.block(2).gates[1].gate == "pytest"
    assert script.max_lines_per_file() == 8
    assert script.progress_log == "notes/log.md"
    assert all(g.source == "intro" for g in script.guardrails)
    assert any("print('not a command')" in u for u in script.unplaced)
    assert any('"unlabelled"' in u for u in script.unplaced)
    assert "Output JSON: Print this:" in script.unplaced
    assert script.output_keys == ["ok", "n"]
    assert script.output_subkeys == {"n": ["a"]}


@pytest.mark.parametrize(
    ("cmd", "kind", "gate", "fields"),
    [
        (
            PYTEST_CMD,
            "gate",
            "pytest",
            {"cov": ["lukhas"], "config": ".coveragerc", "fail_under": 60.0, "paths": []},
        ),
        ("pytest tests/unit --cov lukhas/", "gate", "pytest", {"paths": ["tests/unit"]}),
        ("ruff check lukhas", "gate", "ruff", {"paths": ["lukhas"]}),
        ("ruff check --fix lukhas", "fixer", "ruff", {}),
        ("ruff check lukhas --unsafe-fixes --fix", "fixer", "ruff", {}),
        ("ruff format lukhas", "fixer", None, {}),
        ("ruff format --check lukhas", "command", None, {}),
        ("mypy lukhas", "gate", "mypy", {"paths": ["lukhas"]}),
        ("mypy -p lukhas.core --config-file mypy.ini", "gate", "mypy", {"paths": ["lukhas/core"]}),
        (
            "bandit -r lukhas -c bandit.yaml -f json",
            "gate",
            "bandit",
            {"paths": ["lukhas"], "config": "bandit.yaml"},
        ),
        ("lint-imports --config=linter.ini", "gate", "imports", {"config": "linter.ini"}),
        ("gitleaks detect --no-banner --redact", "gate", "secrets", {}),
        ("detect-secrets scan", "gate", "secrets", {}),
        ("PYTHONHASHSEED=0 python3 -m mypy src", "gate", "mypy", {"paths": ["src"]}),
        ("make check", "command", None, {"shell": False}),
        ("pytest -q tests 2>&1 | tee log", "gate", "pytest", {"shell": True, "paths": ["tests"]}),
        ("ruff check src >out.txt", "gate", "ruff", {"shell": True, "paths": ["src"]}),
        (".venv/bin/ruff check 'my dir'", "gate", "ruff", {"paths": ["my dir"]}),
    ],
)
def test_map_command(cmd: str, kind: str, gate: str | None, fields: dict[str, object]) -> None:
    m = map_command(cmd)
    assert (m.kind, m.gate) == (kind, gate)
    for name, value in fields.items():
        assert getattr(m, name) == value


@pytest.mark.parametrize(
    ("cmd", "message"),
    [
        ("ruff check 'unterminated", "cannot parse command"),
        ("   ", "empty command"),
        ("pytest --cov-fail-under=sixty", "not a number"),
    ],
)
def test_map_command_errors(cmd: str, message: str) -> None:
    with pytest.raises(StepsError, match=message):
        map_command(cmd)


def test_apply_to_policy(seed: StepsScript) -> None:
    base = Policy(guard=GuardConfig(max_changed_lines_per_file=100))
    applied = apply_to_policy(seed, base)
    assert applied.guard.max_changed_lines_per_file == 20
    assert base.guard.max_changed_lines_per_file == 100  # a copy, the input is untouched
    assert applied.gates.pytest.cov == ["lukhas"]
    assert applied.gates.pytest.fail_under == 60
    assert applied.gates.pytest.config == ".coveragerc"
    assert applied.gates.ruff.paths == ["lukhas"]
    assert applied.gates.bandit.config == "bandit.yaml"
    assert applied.gates.imports.config == "linter.ini"
    stricter = apply_to_policy(seed, Policy(guard=GuardConfig(max_changed_lines_per_file=5)))
    assert stricter.guard.max_changed_lines_per_file == 5
    default = load_policy()
    seeded = apply_to_policy(seed, default)
    assert seeded.gates.ruff.paths == ["lukhas"]  # the script's paths, not the policy's
    assert default.gates.ruff.paths == []  # the default policy names no project
    # The harness writes the script's progress log; no patch may.
    assert "docs/audits/CLAUDE_PROGRESS.md" in seeded.guard.forbidden
    assert "docs/audits/CLAUDE_PROGRESS.md" not in default.guard.forbidden


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# Title\n\nJust prose.\n", "no blocks found"),
        ("## BLOCK 1 — a\n\n## BLOCK 1 — b\n", "block 1 appears twice"),
        ("## BLOCK 1 — a\n\nRun:\n```\nruff check 'x\n```\n", r"x\.md:5: cannot parse command"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(StepsError, match=message):
        parse_steps(text, "x.md")


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(StepsError, match="cannot read STEPS script"):
        load_steps(tmp_path / "missing.md")
    binary = tmp_path / "bin.md"
    binary.write_bytes(b"\x81\x8d\x8f\x90\x9d" * 4)
    with pytest.raises(StepsError, match="not UTF-8 or cp1252"):
        load_steps(binary)
    cp = tmp_path / "cp.md"
    cp.write_bytes(
        "## BLOCK 1 \u2014 Lint \u226420\n\nRun: `ruff check .`\n".encode("cp1252", "replace")
    )
    assert load_steps(cp).block(1).gate_commands == ["ruff check ."]


def test_cli_tree_and_json() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["steps", str(SEED)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "BLOCK 5 Final Gates" in res.output
    assert "fixer: never run as a gate" in res.output
    assert "max_lines_per_file = 20" in res.output
    assert "STEPS_4 Completion Summary" in res.output
    assert "repaired" in res.output
    res = runner.invoke(app, ["steps", "--json", str(SEED)])
    assert res.exit_code == 0
    data = json.loads(res.output)
    assert data["progress_log"] == "docs/audits/CLAUDE_PROGRESS.md"
    assert len(data["blocks"]) == 5


@pytest.mark.parametrize(
    ("cmd", "paths", "args", "extra"),
    [
        ('pytest -m "not slow" --maxfail 1', [], ["-m", "not slow", "--maxfail", "1"], {}),
        (
            "pytest tests/unit -k 'add or sub' --cov lukhas --junitxml=r.xml -p no:randomly",
            ["tests/unit"],
            ["-k", "add or sub", "-p", "no:randomly"],
            {"cov": ["lukhas"]},
        ),
        ("pytest --cov -q tests", ["tests"], ["-q"], {"cov": []}),
        ("ruff check --select E,F lukhas", ["lukhas"], ["--select", "E,F"], {}),
        (
            "ruff check lukhas --output-format=concise --config ruff.toml --statistics",
            ["lukhas"],
            [],
            {"config": "ruff.toml"},
        ),
        (
            "ruff check --config 'line-length = 100' src",
            ["src"],
            ["--config", "line-length = 100"],
            {"config": None},
        ),
        ("mypy --python-version 3.11 lukhas", ["lukhas"], ["--python-version", "3.11"], {}),
        ("mypy lukhas --strict --cache-dir /tmp/c", ["lukhas"], ["--strict"], {}),
        ("mypy -p lukhas.core --config-file mypy.ini", ["lukhas/core"], [], {"config": "mypy.ini"}),
        ("bandit -s B101 -r lukhas", ["lukhas"], ["-s", "B101"], {}),
        (
            "bandit -r lukhas -ll -x lukhas/tests -c bandit.yaml -f json -o out.json",
            ["lukhas"],
            ["-ll", "-x", "lukhas/tests"],
            {"config": "bandit.yaml"},
        ),
    ],
)
def test_map_command_option_values_are_not_paths(
    cmd: str, paths: list[str], args: list[str], extra: dict[str, object]
) -> None:
    m = map_command(cmd)
    assert m.kind == "gate"
    assert (m.paths, m.args) == (paths, args)
    for name, value in extra.items():
        assert getattr(m, name) == value


def _script(*blocks: str) -> StepsScript:
    text = "# S\n\n"
    for i, cmds in enumerate(blocks, 1):
        title = "Final Gates" if i == len(blocks) else f"Block {i}: Work"
        text += f"## {title}\n\n- Do it.\n\n```bash\n{cmds}\n```\n\n"
    return parse_steps(text, "s.md")


def test_the_final_block_decides_paths_and_options() -> None:
    script = _script(
        "pytest tests/unit -q\nruff check --select E lukhas\nmypy lukhas --strict",
        "pytest --cov=lukhas\nruff check lukhas\nruff check tests --select F\nmypy lukhas",
    )
    assert script.blocks[-1].final
    base = Policy()
    base.gates.mypy.args = ["--warn-unused-ignores"]
    applied = apply_to_policy(script, base)
    assert applied.gates.pytest.paths == []  # no path: the whole suite
    assert applied.gates.pytest.cov == ["lukhas"]
    assert applied.gates.ruff.paths == ["lukhas", "tests"]
    assert applied.gates.ruff.args == ["--select", "F"]
    # The final `mypy lukhas` gives no options: the policy's stay, block 1's do not come back.
    assert applied.gates.mypy.args == ["--warn-unused-ignores"]
    # One command with no path among the final block's makes it "everything".
    everything = _script("ruff check lukhas", "ruff check lukhas\nruff check")
    assert apply_to_policy(everything, Policy()).gates.ruff.paths == []


def test_carried_options_reach_the_real_tools(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(
        {
            "pkg/__init__.py": "",
            "pkg/m.py": "import os\n\n\ndef f(a):\n    return a == None\n",
            "tests/test_m.py": "import pytest\n\n\ndef test_fast():\n    assert True\n\n\n"
            "@pytest.mark.slow\ndef test_slow():\n    assert True\n",
            "pyproject.toml": '[tool.pytest.ini_options]\nmarkers = ["slow"]\n',
        }
    )
    script = _script('ruff check --select F401 pkg\npytest -m "not slow" tests')
    policy = parse_policy(other_gates_off("ruff", "pytest"))
    run = run_gates(repo, apply_to_policy(script, policy), use_cache=False)
    assert [f.code for f in run.results["ruff"].findings] == ["F401"]  # E711 not selected
    assert [t.id for t in run.results["pytest"].tests] == ["tests/test_m.py::test_fast"]


def test_path_remap_reaches_the_fixers_and_a_missing_fixer_path_is_not_nothing_to_change(
    seed: StepsScript, tmp_path: Path
) -> None:
    final = next(b for b in seed.blocks if b.final)
    assert final.gate_commands[:2] == ["ruff check --fix lukhas", "ruff format lukhas"]
    mapped = remap_paths(seed, {"lukhas": "src/pkg", ".coveragerc": ""})
    block = next(b for b in mapped.blocks if b.final)
    # What the builtin provider formats and the accounting dry-runs is the mapped path.
    assert block.gate_commands[:3] == [
        "ruff check --fix src/pkg", "ruff format src/pkg", "ruff check lukhas"
    ]  # fmt: skip
    fixers = [m for m in block.gates if m.kind == "fixer"]
    assert [m.argv for m in fixers] == [
        ["ruff", "check", "--fix", "src/pkg"], ["ruff", "format", "src/pkg"]
    ]  # fmt: skip
    assert fixers[0].paths == ["src/pkg"]
    gate = next(m for m in block.gates if m.kind == "gate" and m.gate == "ruff")
    assert gate.paths == ["src/pkg"] and gate.command == "ruff check lukhas"
    assert [c for c in mapped.final_gates if "--fix" in c] == ["ruff check --fix src/pkg"]
    # A fixer whose every path is dropped keeps them (and fails on them) rather than going wide.
    dropped = next(b for b in remap_paths(seed, {"lukhas": ""}).blocks if b.final)
    assert dropped.gate_commands[:2] == ["ruff check --fix lukhas", "ruff format lukhas"]
    # `ruff check --diff` on a path that is not there exits 0 with no output: an error here.
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "m.py").write_text("import os\n")
    unmapped = next(m for m in final.gates if m.kind == "fixer")
    missing = residue(tmp_path, Policy(), unmapped)
    assert missing.error is not None and "no lukhas in the tree" in missing.error
    found = residue(tmp_path, Policy(), fixers[0])
    assert found.error is None and found.files == {"src/pkg/m.py": (0, 1)}


def test_a_cov_target_mapped_onto_a_module_file_is_measured_by_its_import_name(
    seed: StepsScript, make_repo: Callable[..., Path]
) -> None:
    # The preflight proposes `--path lukhas=six.py` for a single-module project: one mapping for
    # the script's ruff/mypy/bandit paths and its --cov, which coverage reads as an import name.
    mapped = remap_paths(seed, {"lukhas": "six.py", ".coveragerc": ""})
    final = next(b for b in mapped.blocks if b.final)
    pytest_gate = next(m for m in final.gates if m.kind == "gate" and m.gate == "pytest")
    ruff_gate = next(m for m in final.gates if m.kind == "gate" and m.gate == "ruff")
    assert pytest_gate.cov == ["six"] and ruff_gate.paths == ["six.py"]
    under_src = remap_paths(seed, {"lukhas": "src/mod.py"}, "src").blocks[0].gates[0]
    assert under_src.cov == ["mod"]
    nested = remap_paths(seed, {"lukhas": "pkg/sub/__init__.py"}).blocks[0].gates[0]
    assert nested.cov == ["pkg.sub"]
    assert remap_paths(seed, {"lukhas": "src/pkg"}, "src").blocks[0].gates[0].cov == ["src/pkg"]
    repo = make_repo(
        {
            "six.py": "def f(a):\n    if a:\n        return 1\n    return 2\n",
            "test_six.py": "from six import f\n\n\ndef test_f():\n    assert f(1) == 1\n",
        }
    )
    policy = parse_policy(other_gates_off("pytest") + '[gates]\npythonpath = ["."]\n')
    run = run_gates(repo, apply_to_policy(mapped, policy), only=["pytest"], use_cache=False)
    result = run.results["pytest"]
    assert result.status != GateStatus.ERROR, result.error
    assert result.coverage is not None and result.coverage.per_file == {"six.py": 75.0}


def test_steps_shows_the_script_as_run_path_maps_it(
    make_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(make_repo({"src/mod.py": "X = 1\n", "tests/test_mod.py": ""}))
    args = ["steps", "--json", str(SEED), "--path", "lukhas=src/mod.py", "--path", ".coveragerc="]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    block1 = json.loads(res.output)["blocks"][0]["gates"][0]
    assert (block1["cov"], block1["config"]) == (["mod"], None)  # src/ is the source root here


def test_a_secrets_command_run_by_the_other_tool_says_so() -> None:
    def run(tool: str) -> GateRun:
        r = GateResult(gate="secrets", status=GateStatus.PASSED, tool=tool)
        return GateRun(tree="t", results={"secrets": r})

    m = map_command("gitleaks detect --no-banner --redact")
    acc = gate_account(m, run("detect-secrets"), run("detect-secrets"), Policy(), [])
    assert acc.result.endswith("; run as detect-secrets, not gitleaks")
    assert "run as" not in gate_account(m, run("gitleaks"), run("gitleaks"), Policy(), []).result


def test_a_pytest_gates_account_says_how_many_tests_did_not_run() -> None:
    def run(outcomes: dict[str, str]) -> GateRun:
        tests = [TestCase(id=f"tests/test_a.py::{n}", outcome=o) for n, o in outcomes.items()]
        r = GateResult(gate="pytest", status=GateStatus.PASSED, tool="pytest", tests=tests)
        return GateRun(tree="t", results={"pytest": r})

    m = map_command("pytest -q")
    start = run({"a": "passed", "b": "passed"})
    end = run({"a": "passed", "b": "skipped", "c": "xfailed"})
    acc = gate_account(m, start, end, Policy(), [])
    assert acc.result == (
        "passed: 1 passed, 0 failed, 0 errors, 1 skipped, 1 xfailed "
        "(at the block's start: 2 passed, 0 failed, 0 errors)"
    )
