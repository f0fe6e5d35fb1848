"""STEPS scripts in the shapes people write them: each parsed as a whole, line by line.

The scripts are written for these tests in the styles the user's scripts take (runbooks with
lettered sections, numbered headings, bold pseudo-headings, headings without any numbering).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import StepsError
from harness.steps import StepsScript, not_a_command, parse_steps

RUNBOOK = """\
# Widgets cleanup — lint and typing runbook

Work in small diffs (max 15 lines per file). Keep the tests offline.

## Fixes

A) Ruff
- Remove unused imports (F401) across `widgets/`.
- Raise line length to 120 in `pyproject.toml`.
- Ruff: cut the findings \u2212300 this round.

B) MyPy
- Install the missing stubs:
  - `types-PyYAML`
  - `types-requests`
- Annotate the public functions of `widgets/api.py`.

## Order of work

1) Apply the safe fixes first.
2) Fix what ruff still reports by hand.
3) Fix the mypy errors, module by module.
4) Add tests for anything you touched.
5) Re-run gates: `ruff check widgets; mypy widgets; pytest -q; bandit -r widgets; lint-imports`

Append a line per step to `notes/PROGRESS.md`.

Output a final JSON line:
```
{ "ruff_ok": <bool>, "mypy_ok": <bool>, "tests": { "passed": N, "failed": M } }
```
"""

NUMBERED = """\
# STEPS — gadgets: Final Gates

Plan, then fix, then verify.

## 1. Coverage to 70%

- Write tests for the error paths of `gadgets/io.py`.

Run `pytest --cov=gadgets --cov-fail-under=70 -q` again after each new test.

## 2) Lint

- Bring **ruff** to **0** findings.
- Re-run `ruff check gadgets --statistics` again after each fix.

**Gate:**\x20\x20
`ruff check gadgets`

## 3. Types

- Triage first: run `pytest -q -x` to find the first failing test.
- Then fix the annotations.

**Gate:** `mypy gadgets` && `pytest -q`

## 4. Final Gates

```bash
ruff check gadgets && mypy gadgets
pytest -q
```

Output a single JSON line:

```json
{ "ok": <bool>, "coverage": "<int>%" }
```
"""

BOLD = """\
# Sprockets: security sweep

**BLOCK 1 — Bandit clean**

- Fix the B602 subprocess calls in `sprockets/run.py`.
- Run `bandit -r sprockets -ll`

**BLOCK 2 — Secrets**

Gate
`gitleaks detect --no-banner --redact`

**BLOCK 3 — Final gates**

Re-run gates:

```
bandit -r sprockets -ll
gitleaks detect --no-banner --redact
{ "bandit_ok": <bool>, "gitleaks_ok": <bool> }
```

## Guardrails

- No network in tests.
- At most 10 lines per file.
- Output: `{"bandit_ok": <bool>, "gitleaks_ok": <bool>}`
"""

PLAIN_HEADINGS = """\
# Gizmos

Small steps; log to `gizmos/LOG.md`.

### Lint pass

Run: `ruff check gizmos`

### Typing pass

- Fix Optional misuse.

Run
```
mypy gizmos
```

### Where to look

Nothing to run here; read `gizmos/core.py` first.
"""

STUBS = """\
# Stubs

## BLOCK 1 — Typing stubs

Install:
```bash
types-PyYAML
types-requests
```

Then run: `pip install types-PyYAML types-requests`

**Gate:**
```bash
mypy src
```
"""


def _gates(script: StepsScript, n: int) -> list[tuple[str, int | None]]:
    return [(g.command, g.line) for g in script.block(n).gates]


def _targets(script: StepsScript, n: int) -> set[tuple[str, str, float, bool]]:
    return {(t.metric, t.op, t.value, t.reduction) for t in script.block(n).targets}


def test_runbook_with_lettered_sections_and_numbered_steps() -> None:
    script = parse_steps(RUNBOOK, "runbook.md")
    assert script.title == "Widgets cleanup — lint and typing runbook"
    assert [(b.number, b.title, b.final) for b in script.blocks] == [
        (1, "Ruff", False),
        (2, "MyPy", False),
        (3, "Re-run gates", True),
    ]
    # Five commands on one line, separated by `;`, on the step's own line.
    assert _gates(script, 3) == [
        ("ruff check widgets", 24),
        ("mypy widgets", 24),
        ("pytest -q", 24),
        ("bandit -r widgets", 24),
        ("lint-imports", 24),
    ]
    assert script.final_gates == [c for c, _ in _gates(script, 3)]
    # Stub package names are goals, never commands.
    assert script.block(2).gate_commands == []
    assert "Install the missing stubs: `types-PyYAML`" in script.block(2).goals
    # "Raise line length to 120" states a setting; a minus sign and 300 is a reduction.
    assert _targets(script, 1) == {("ruff", "<=", 300, True)}
    assert script.block(1).targets[0].line == 10
    assert script.progress_log == "notes/PROGRESS.md"
    assert script.max_lines_per_file() == 15
    assert script.output_keys == ["ruff_ok", "mypy_ok", "tests"]
    assert script.output_subkeys == {"tests": ["passed", "failed"]}
    # The steps the parser did not turn into blocks are listed, without the placed ones.
    order = next(u for u in script.unplaced if u.startswith("## Order of work"))
    assert "1) Apply the safe fixes first." in order
    assert "Re-run gates" not in order and "Output a final JSON line" not in order


def test_numbered_headings_gate_labels_and_supersession() -> None:
    script = parse_steps(NUMBERED, "numbered.md")
    # The H1 is the title, even when it says "Final Gates".
    assert script.title == "STEPS — gadgets: Final Gates"
    assert [(b.number, b.title, b.final) for b in script.blocks] == [
        (1, "Coverage to 70%", False),
        (2, "Lint", False),
        (3, "Types", False),
        (4, "Final Gates", True),
    ]
    assert _gates(script, 1) == [("pytest --cov=gadgets --cov-fail-under=70 -q", 9)]
    # A command on the line after "**Gate:**  " (a hard break); the label has no colon.
    assert _gates(script, 2) == [("ruff check gadgets", 17)]
    # A later explicit Gate wins over an earlier run of the same gate (a snapshot, a triage).
    assert _gates(script, 3) == [("mypy gadgets", 24), ("pytest -q", 24)]
    superseded = [u for u in script.unplaced if "(superseded by the block's gate" in u]
    assert [u.split(" (")[0] for u in superseded] == [
        "BLOCK 2: line 14: ruff check gadgets --statistics",
        "BLOCK 3: line 21: pytest -q -x",
    ]
    assert _gates(script, 4) == [
        ("ruff check gadgets", 29),
        ("mypy gadgets", 29),
        ("pytest -q", 30),
    ]
    assert ("coverage", ">=", 70, False) in _targets(script, 1)
    assert ("ruff", "<=", 0, False) in _targets(script, 2)
    assert script.output_keys == ["ok", "coverage"]


def test_bold_pseudo_headings_and_templates_that_are_not_commands() -> None:
    script = parse_steps(BOLD, "bold.md")
    assert [(b.number, b.title, b.final) for b in script.blocks] == [
        (1, "Bandit clean", False),
        (2, "Secrets", False),
        (3, "Final gates", True),
    ]
    assert script.block(1).line == 3
    assert _gates(script, 1) == [("bandit -r sprockets -ll", 6)]
    assert _gates(script, 2) == [("gitleaks detect --no-banner --redact", 11)]
    assert script.final_gates == ["bandit -r sprockets -ll", "gitleaks detect --no-banner --redact"]
    template = [u for u in script.unplaced if '"bandit_ok"' in u]
    assert len(template) == 1 and template[0].startswith("BLOCK 3: line 20: not a command")
    assert script.max_lines_per_file() == 10
    assert script.output_keys == ["bandit_ok", "gitleaks_ok"]


def test_headings_without_numbers_are_blocks_when_the_script_has_no_other() -> None:
    script = parse_steps(PLAIN_HEADINGS, "plain.md")
    assert [(b.number, b.title) for b in script.blocks] == [(1, "Lint pass"), (2, "Typing pass")]
    assert _gates(script, 1) == [("ruff check gizmos", 7)]
    assert _gates(script, 2) == [("mypy gizmos", 15)]
    assert script.progress_log == "gizmos/LOG.md"
    assert script.unplaced == [
        "### Where to look\nNothing to run here; read `gizmos/core.py` first."
    ]


def test_package_names_in_a_code_block_are_listed_not_run() -> None:
    script = parse_steps(STUBS, "stubs.md")
    assert script.block(1).gate_commands == [
        "pip install types-PyYAML types-requests",
        "mypy src",
    ]
    notes = [u for u in script.unplaced if "not a command" in u]
    assert [n.rsplit(": ", 1)[1] for n in notes] == ["types-PyYAML", "types-requests"]
    assert notes[0].startswith("BLOCK 1: line 7:")


@pytest.mark.parametrize(
    ("cmd", "ok"),
    [
        ("ruff check src", True),
        ("PYTHONHASHSEED=0 python3.12 -m pytest", True),
        ("./scripts/check.sh --fast", True),
        (".venv/bin/mypy src", True),
        ("tools/lint.py", True),
        ("types-PyYAML", False),
        ('{ "ruff_stable_ok": <bool> }', False),
        ("<int>%", False),
        ("coverage_stable", False),
    ],
)
def test_a_command_starts_with_a_known_tool_or_a_path(cmd: str, ok: bool) -> None:
    assert (not_a_command(cmd) is None) is ok


def test_a_setting_is_not_a_target_a_stated_count_is() -> None:
    text = (
        "## BLOCK 1 — Ruff\n\n- Raise line length to 120.\n- Set ruff line-length to 100.\n"
        "- Keep mypy diffs to 20 lines.\n- Errors to 5 in `core/`.\n"
        "## BLOCK 2 — Ruff again\n\n- Reduce ruff findings by 40.\n- Target: 12.\n"
        "## BLOCK 3 — Types\n\n- Make mypy green.\n"
    )
    script = parse_steps(text, "t.md")
    assert _targets(script, 1) == {("ruff", "<=", 5, False)}
    assert _targets(script, 2) == {("ruff", "<=", 40, True), ("ruff", "<=", 12, False)}
    assert _targets(script, 3) == {("mypy", "<=", 0, False)}


def test_a_label_then_bullets_of_commands() -> None:
    text = "## BLOCK 1 — Lint\n\nGates:\n- `ruff check src`\n- `mypy src`\n- Fix the rest.\n"
    block = parse_steps(text, "g.md").block(1)
    assert [(g.command, g.line) for g in block.gates] == [("ruff check src", 4), ("mypy src", 5)]
    assert block.goals == ["Fix the rest."]


def test_deeper_headings_belong_to_the_section_above_only_while_it_is_open() -> None:
    text = (
        "# Plan\n\n## Goals\n\nA) Coverage to 60%\n\nB) Ruff to 0\n\n"
        "## Guardrails\n\n### Size\n\n- At most 12 lines per file.\n\n"
        "## BLOCK 1 — Lint\n\nRun: `ruff check src`\n\n# Appendix\n\n"
        "### Old notes\n\nRun: `ruff check old`\n\n"
        "## BLOCK 2 — Types\n\nA) first the core\nB) then the rest\n\nRun: `mypy src`\n"
    )
    script = parse_steps(text, "d.md")
    # Lettered lines under the goals are goals, not blocks.
    assert script.goals == ["A) Coverage to 60%", "B) Ruff to 0"]
    assert [(g.kind, g.value) for g in script.guardrails] == [
        ("other", None),
        ("max_lines_per_file", 12),
    ]
    # `# Appendix` closes block 1: its subsection is not block 1's.
    assert script.block(1).gate_commands == ["ruff check src"]
    assert any(u.startswith("### Old notes") for u in script.unplaced)
    # Two lettered lines in a row are a list written by hand, not two blocks.
    assert [b.number for b in script.blocks] == [1, 2]
    assert script.block(2).goals == ["A) first the core B) then the rest"]


def test_a_label_in_a_sentence_is_not_a_command() -> None:
    text = (
        "## BLOCK 1 — Format\n\n- Do not run `ruff format` on generated code.\n"
        "- Use `types-*` stubs.\n\nRun: `ruff check src`\n"
    )
    script = parse_steps(text, "f.md")
    assert script.block(1).gate_commands == ["ruff check src"]
    assert len(script.block(1).goals) == 2


def test_no_recognisable_structure_names_what_was_expected() -> None:
    with pytest.raises(StepsError) as err:
        parse_steps("# Notes\n\nJust prose.\n\n- a list\n", "notes.md")
    message = str(err.value)
    assert "\n" not in message
    assert "## BLOCK 1 — Ruff to 0" in message and "harness init" in message


def test_cli_shows_the_line_of_each_gate_and_target(tmp_path: Path) -> None:
    path = tmp_path / "numbered.md"
    path.write_text(NUMBERED, encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(app, ["steps", str(path)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "line 17  ruff check gadgets" in res.output
    assert "line 5  BLOCK 1 Coverage to 70%" in res.output
    assert "line 5  coverage >= 70  Coverage to 70%" in res.output
    res = runner.invoke(app, ["steps", "--json", str(path)])
    data = json.loads(res.output)
    assert [(g["command"], g["line"]) for g in data["blocks"][1]["gates"]] == [
        ("ruff check gadgets", 17)
    ]
    assert data["blocks"][0]["targets"][0]["line"] == 5
    path.write_text("Just prose.\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "steps", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no blocks found" in lines[0] and "harness init" in lines[0]


LABELS = """\
# Doodads

Append to `docs/audits/PROGRESS.md` after each block.

## BLOCK 1 — Lint

Checks: `ruff check src`; `mypy src`, `bandit -r src`

```console
$ pytest -q \\
    --cov=src
```

Commands:
```
ruff format src && ruff check --fix src
```

Print the summary as JSON: `{"ok": true, "n": 1}`
"""


def test_commands_between_code_spans_prompts_continuations_and_fixers() -> None:
    script = parse_steps(LABELS, "labels.md")
    assert [(g.command, g.kind, g.gate, g.line) for g in script.block(1).gates] == [
        ("ruff check src", "gate", "ruff", 7),
        ("mypy src", "gate", "mypy", 7),
        ("bandit -r src", "gate", "bandit", 7),
        ("pytest -q --cov=src", "gate", "pytest", 10),
        ("ruff format src", "fixer", None, 16),
        ("ruff check --fix src", "fixer", "ruff", 16),
    ]
    # "Append to" with no other words before the path is the progress log, too.
    assert script.progress_log == "docs/audits/PROGRESS.md"
    assert script.output_keys == ["ok", "n"]
    assert script.unplaced == []
