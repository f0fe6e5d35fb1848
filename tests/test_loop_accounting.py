"""A block's end accounts for every command of its STEPS text and every target it states:
real git repositories, real ruff, the builtin and scripted providers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.loop import Loop, RunOptions
from harness.outcome import CommandAccount
from harness.policy import parse_policy
from harness.providers.base import Provider
from harness.providers.builtin import BuiltinProvider
from harness.providers.scripted import ScriptedProvider
from harness.record import read_events
from harness.steps import parse_steps
from tests.conftest import git, other_gates_off

POLICY = (
    other_gates_off("ruff")
    + """
[gates.ruff]
paths = ["pkg"]
args = ["--select", "F,E"]
[loop]
max_iterations = 3
verify_patches = false
"""
)


# Each line `name = {  "k":n}` is reformatted as one line removed and one added.
def _unformatted(n: int) -> str:
    return "".join(f'v{i} = {{  "k":{i}}}\n' for i in range(n))


FILES = {
    "pkg/__init__.py": "",
    # 2 unused imports (safe fixes), 2 lines to format.
    "pkg/small.py": "import os\nimport sys\n" + _unformatted(2),
    # 15 and 12 lines to format: 30 and 24 changed lines, over a limit of 20.
    "pkg/big1.py": _unformatted(15),
    "pkg/big2.py": _unformatted(12),
}

FORMAT = """# STEPS — tidy

## BLOCK 1 — Tidy `pkg/`

- Remove what ruff reports.

Run: `ruff format pkg ; ruff check pkg && test -f pkg/__init__.py`

## Guardrails

- At most 20 lines per file.
"""


def options(repo: Path, provider: Provider, steps: str, policy: str = POLICY) -> RunOptions:
    return RunOptions(
        steps=parse_steps(steps, "steps.md"),
        steps_text=steps,
        repo=repo,
        policy=parse_policy(policy),
        policy_text=policy,
        policy_path=None,
        provider=provider,
        runs_dir=repo.parent / "runs",
    )


def by_command(accounts: list[CommandAccount]) -> dict[str, CommandAccount]:
    return {a.command: a for a in accounts}


def test_every_command_of_a_joined_line_is_accounted_for_and_format_lands_within_the_limit(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    said: list[str] = []
    opts = options(repo, BuiltinProvider(), FORMAT)
    opts.progress = said.append
    summary = Loop(opts).run()
    out = summary.blocks[0]
    # `a ; b && c`: three commands, each accounted for, in the script's order, with its line.
    assert [(a.command, a.line) for a in out.commands] == [
        ("ruff format pkg", 7),
        ("ruff check pkg", 7),
        ("test -f pkg/__init__.py", 7),
    ]
    acc = by_command(out.commands)
    fmt = acc["ruff format pkg"]
    # small.py's format landed as its own patch; the other two files would change 30 and 24
    # lines each, over the limit of 20: not attempted, with the numbers.
    assert (fmt.how, fmt.status) == ("fixer", "partly")
    assert fmt.fixer is not None
    assert (fmt.fixer.start_lines, fmt.fixer.start_files) == (59, 3)
    assert (fmt.fixer.done_lines, fmt.fixer.done_files) == (5, 1)
    assert (fmt.fixer.left_lines, fmt.fixer.left_files, fmt.fixer.over_files) == (54, 2, 2)
    assert fmt.result == (
        "changed 5 lines in 1 file; not attempted: over the per-file limit "
        "(54 lines in 2 files, 2 files over the limit of 20)"
    )
    subjects = [git(repo, "log", "-1", "--format=%s", sha).strip() for sha in out.commits]
    assert any(s.startswith("harness: ruff format pkg/small.py") for s in subjects)
    for sha in out.commits:
        for row in git(repo, "show", "--numstat", "--format=", sha).splitlines():
            added, removed, _path = row.split("\t")
            assert int(added) + int(removed) <= 20
    check = acc["ruff check pkg"]
    assert (check.how, check.gate, check.status) == ("gate", "ruff", "passed")
    assert check.result == "passed: 0 findings (at the block's start: 2 findings)"
    plain = acc["test -f pkg/__init__.py"]
    assert (plain.how, plain.gate, plain.status) == (
        "gate",
        "command:test -f pkg/__init__.py",
        "passed",
    )
    assert plain.result.startswith("passed: exit 0")
    # On the console, in the record's block outcome and in summary.json.
    assert f"  ruff format pkg: {fmt.result}" in said
    outcome = next(e for e in read_events(Path(summary.run_dir)) if e["kind"] == "block_outcome")
    assert [c["result"] for c in outcome["commands"]] == [a.result for a in out.commands]
    saved = json.loads((Path(summary.run_dir) / "summary.json").read_text())
    assert saved["blocks"][0]["commands"][0]["fixer"]["over_files"] == 2


def test_a_whole_tree_format_over_the_limit_is_not_attempted_with_the_numbers(
    make_repo: Callable[..., Path],
) -> None:
    files = {k: v for k, v in FILES.items() if k != "pkg/small.py"}
    files["pkg/fixable.py"] = "import os\nimport sys\n"
    steps = FORMAT.replace(
        "Run: `ruff format pkg ; ruff check pkg && test -f pkg/__init__.py`",
        "```bash\nruff check --fix pkg\nruff format pkg\nruff check pkg\n```",
    )
    repo = make_repo(files)
    # A model that plans nothing: the fixers are measured all the same.
    responses: list[dict[str, Any]] = [
        {"phase": "plan", "tool": "submit_plan", "input": {"summary": "nothing"}},
        {"phase": "todo", "tool": "submit_todos", "input": {"items": []}},
    ]
    summary = Loop(options(repo, ScriptedProvider.from_responses(responses), steps)).run()
    acc = by_command(summary.blocks[0].commands)
    fmt = acc["ruff format pkg"]
    assert (fmt.how, fmt.status) == ("not_attempted", "left")
    assert fmt.result == (
        "not attempted: over the per-file limit (54 lines in 2 files, 2 files over the limit of 20)"
    )
    fix = acc["ruff check --fix pkg"]
    assert (fix.how, fix.status) == ("not_attempted", "left")
    assert fix.result == (
        "not attempted: 2 lines in 1 file: 1 file within the limit not proposed "
        "(the block ended: nothing_left)"
    )
    assert acc["ruff check pkg"].status == "failed"


def test_the_run_prints_the_accounting_and_json_carries_it(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo({**FILES, "STEPS.md": FORMAT, "harness.toml": POLICY})
    runs = tmp_path / "runs"
    base = [sys.executable, "-m", "harness", "run", "STEPS.md", "--repo", str(repo)]
    base += ["--provider", "builtin", "--runs-dir", str(runs)]
    proc = subprocess.run(base, cwd=repo, capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert "line 7: ruff format pkg: changed 5 lines in 1 file; not attempted: over the " in (
        proc.stdout
    )
    assert "line 7: ruff check pkg: passed: 0 findings" in proc.stdout
    proc = subprocess.run([*base, "--json"], cwd=repo, capture_output=True, text=True, timeout=600)
    data = json.loads(proc.stdout)
    commands = data["blocks"][0]["commands"]
    assert [c["how"] for c in commands] == ["fixer", "gate", "gate"]


TARGETS = """# STEPS — targets

## BLOCK 1 — Ruff: \u22122 findings

- Reduce ruff findings by 40.
- Bring ruff to 5 findings.

Run: `ruff check pkg`
"""


def test_reduction_and_absolute_targets_are_judged_against_the_block_start(
    make_repo: Callable[..., Path],
) -> None:
    files = {
        "pkg/__init__.py": "",
        # Three unused imports (fixed by the builtin provider), one ambiguous name (no fix).
        "pkg/calc.py": "import os\nimport re\nimport sys\n\nl = 1\n",
    }
    repo = make_repo(files)
    summary = Loop(options(repo, BuiltinProvider(), TARGETS)).run()
    checks = {(t.value, t.reduction): t for t in summary.blocks[0].targets}
    met = checks[(2, True)]
    assert (met.start, met.end, met.goal, met.met) == (4, 1, 2, True)
    assert met.result == "ruff <= start - 2: met (4 -> 1, reduced by 3 of 2)"
    missed = checks[(40, True)]
    assert (missed.goal, missed.met) == (-36, False)
    assert missed.result == "ruff <= start - 40: not met (4 -> 1, reduced by 3 of 40)"
    assert checks[(5, False)].met is True
    assert checks[(5, False)].result == "ruff <= 5: met (4 -> 1)"
    # The gate command's own target: ruff passes only with no findings.
    assert checks[(0, False)].met is False
