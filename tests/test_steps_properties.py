"""Properties of the STEPS parser over generated scripts, and mutations that must change a parse.

Round trip: a script the parser accepts, shown by `harness steps --json` and written back in
the canonical shape (`to_markdown`), parses to the same blocks, gates and targets.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import StepsError
from harness.steps import StepsScript, parse_steps, to_markdown

# One heading level per script, as people write them; the styles mix freely.
HEADINGS = [
    "{h} BLOCK {n} — {t}",
    "{h} Step {n}: {t}",
    "{h} {n}. {t}",
    "{h} {n}) {t}",
    "**BLOCK {n} — {t}**",
]
COMMANDS = [
    "ruff check src",
    "ruff check --select E,F src tests",
    "ruff check --fix src",
    "ruff format src",
    "mypy src",
    "mypy -p pkg.core --strict",
    "pytest -q",
    "pytest --cov=pkg --cov-fail-under=70 -q",
    "python -m pytest tests/unit -x",
    "bandit -r src -ll",
    "lint-imports --config=linter.ini",
    "gitleaks detect --no-banner --redact",
    "make check",
    "./scripts/smoke.sh",
]
TITLES = ["Lint", "Types", "Coverage to 75%", "Ruff to 0", "Security sweep", "MyPy green"]
GOALS = [
    "Fix the unused imports.",
    "Raise line length to 120.",
    "Bring **ruff** to **10** findings.",
    "Coverage to 80% or better.",
    "Keep mypy diffs to 20 lines.",
    "Ruff: \u2212300 findings this round.",
    "Make mypy green.",
    "Add tests for `pkg/io.py` error paths.",
]
NOISE = ["Some context for the model.", "> A quoted reminder.", "---"]


def _gate_text(style: int, cmds: list[str]) -> str:
    if style == 0:
        return "**Gate:**\n```bash\n" + "\n".join(cmds) + "\n```"
    if style == 1:
        return "Run:\n```\n" + "\n".join(cmds) + "\n```"
    if style == 2:
        return "Run: " + " && ".join(f"`{c}`" for c in cmds)
    if style == 3:
        return "**Gate:**  \n" + "; ".join(f"`{c}`" for c in cmds)
    if style == 4:
        return "\n\n".join(f"Run `{c}` again" for c in cmds)
    return "```bash\n" + " && ".join(cmds) + "\n```"


@st.composite
def scripts(draw: st.DrawFn) -> tuple[str, list[list[str]]]:
    """A script in mixed shapes, and the commands each block was given."""
    h1 = draw(st.sampled_from(["# STEPS — demo", "# STEPS — demo: Final Gates", "# Cleanup"]))
    parts = [h1, "", draw(st.sampled_from(NOISE)), ""]
    n_blocks = draw(st.integers(1, 4))
    hashes = "#" * draw(st.integers(2, 4))
    final = draw(st.booleans())
    given_cmds: list[list[str]] = []
    for n in range(1, n_blocks + 1):
        heading = draw(st.sampled_from(HEADINGS))
        title = "Final Gates" if final and n == n_blocks else draw(st.sampled_from(TITLES))
        parts += [heading.format(h=hashes, n=n, t=title), ""]
        for goal in draw(st.lists(st.sampled_from(GOALS), max_size=3, unique=True)):
            parts.append(f"- {goal}")
        parts.append("")
        if draw(st.booleans()):
            parts += [draw(st.sampled_from(NOISE)), ""]
        cmds = draw(st.lists(st.sampled_from(COMMANDS), min_size=1, max_size=3, unique=True))
        given_cmds.append(cmds)
        parts += [_gate_text(draw(st.integers(0, 5)), cmds), ""]
    if draw(st.booleans()):
        parts += ["## Guardrails", "", "- At most 20 lines per file.", "- No network.", ""]
    return "\n".join(parts), given_cmds


def shape(script: StepsScript) -> list[object]:
    """What the round trip must keep: blocks, their gates, their targets."""
    return [
        (
            b.number,
            b.title,
            b.final,
            b.gate_commands,
            [(g.kind, g.gate, g.paths, g.cov, g.config, g.fail_under, g.args) for g in b.gates],
            sorted((t.metric, t.op, t.value, t.reduction) for t in b.targets),
        )
        for b in script.blocks
    ]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=scripts())
def test_round_trip_through_the_json_keeps_blocks_gates_and_targets(
    case: tuple[str, list[list[str]]], tmp_path: Path
) -> None:
    text, given_cmds = case
    parsed = parse_steps(text, "gen.md")
    # The generated shapes are all understood: every block, every command, in order.
    assert [b.gate_commands for b in parsed.blocks] == given_cmds
    assert [b.number for b in parsed.blocks] == list(range(1, len(given_cmds) + 1))
    assert parsed.title.startswith(("STEPS", "Cleanup"))
    path = tmp_path / "gen.md"
    path.write_text(text, encoding="utf-8")
    res = CliRunner().invoke(app, ["steps", "--json", str(path)])
    assert res.exit_code == 0, res.output
    shown = StepsScript.model_validate(json.loads(res.output))
    assert shape(shown) == shape(parsed)
    again = parse_steps(to_markdown(shown), "again.md")
    assert shape(again) == shape(parsed)


# Lines in the shapes above, with a marker word each, mixed at random: whatever the parser makes
# of them, every word of the script is somewhere in what it returns (a block, the title, a
# guardrail, the output template, or `unplaced`), except the labels and markers of structure.
LINES = [
    "# Title one",
    "## BLOCK 1 — Lint zeta",
    "## 2) Types kappa",
    "### Sub lambda",
    "A) Ruff omega",
    "**BLOCK 3 — Bold sigma**",
    "**Gate:**",
    "Gate",
    "Run:",
    "Run `ruff check src` again",
    "- Fix imports alpha",
    "  - nested beta",
    "1) first gamma",
    "5) Re-run gates: `mypy src; pytest -q`",
    "```bash",
    "```",
    "ruff check src",
    "types-PyYAML",
    '{ "ok": <bool> }',
    "Output a single JSON line:",
    "> quoted delta",
    "---",
    "",
    "## Guardrails",
    "- At most 9 lines per file epsilon",
    "## Goals",
    "Append to `notes/LOG.md` eta",
    "Plain words theta",
    "```json",
    "## Notes iota",
    "Triage: run `pytest -x` mu",
    "**Gate:** `pytest -q` nu",
    "    indented xi",
    "<div>html pi</div>",
    "## Final Gates",
    "- Ruff: \u2212300 findings rho",
    "Gate:  ",
    "`make check`",
    "## 1. Context tau",
]
STRUCTURE = {"gate", "run", "re", "output", "json", "block", "bash", "again", "final", "gates"}
STRUCTURE |= {"a", "single", "line", "guardrails", "goals", "1", "2", "3", "5", "div"}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9_]+", text.lower()))


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(st.sampled_from(LINES), max_size=30))
def test_nothing_is_dropped(lines: list[str]) -> None:
    try:
        script = parse_steps("\n".join(lines) + "\n", "fuzz.md")
    except StepsError as exc:
        assert "no blocks found" in str(exc) or "appears twice" in str(exc)
        return
    said: list[str] = []
    fence = False
    for line in lines:
        if (not fence and line.startswith("```")) or (fence and line.strip() == "```"):
            fence = not fence
        elif not (fence and line.lstrip().startswith("#")):  # a shell comment is commentary
            said.append(line)
    dump = json.dumps(script.model_dump(mode="json"), ensure_ascii=False).replace("\\n", " ")
    assert _words("\n".join(said)) - _words(dump) - STRUCTURE == set()


# --- mutations: each must change the parse, in the way expected -----------------------------

BASE = """\
# Demo

## BLOCK 1 — Ruff to 0

- Fix the unused imports.

**Gate:**
```bash
ruff check src
ruff check tests
```

## BLOCK 2 — Types

- Make mypy green.

Run: `mypy src`

## BLOCK 3 — Final Gates

```bash
ruff check src
mypy src
pytest -q
```
"""


def _blocks(text: str) -> list[tuple[int, str, list[str]]]:
    return [(b.number, b.title, b.gate_commands) for b in parse_steps(text, "m.md").blocks]


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    nxt = text.find("\n## ", start + 1)
    return text[start : nxt + 1 if nxt != -1 else len(text)]


def test_reordering_blocks_reorders_the_parse() -> None:
    one, two = _section(BASE, "## BLOCK 1"), _section(BASE, "## BLOCK 2")
    swapped = BASE.replace(one + two, two + one)
    assert swapped != BASE
    assert [n for n, _, _ in _blocks(BASE)] == [1, 2, 3]
    # Numbered blocks keep their numbers and commands; their order is the script's.
    assert _blocks(swapped) == [_blocks(BASE)[1], _blocks(BASE)[0], _blocks(BASE)[2]]
    # Unnumbered (lettered) blocks are numbered in order: the swap renumbers them.
    lettered = "# L\n\nA) Ruff\n\nRun: `ruff check src`\n\nB) Types\n\nRun: `mypy src`\n"
    flipped = "# L\n\nA) Types\n\nRun: `mypy src`\n\nB) Ruff\n\nRun: `ruff check src`\n"
    assert _blocks(lettered) == [(1, "Ruff", ["ruff check src"]), (2, "Types", ["mypy src"])]
    assert _blocks(flipped) == [(1, "Types", ["mypy src"]), (2, "Ruff", ["ruff check src"])]


def test_dropping_a_gate_line_drops_that_gate_and_its_target() -> None:
    base = parse_steps(BASE, "m.md")
    dropped = parse_steps(BASE.replace("ruff check tests\n", "", 1), "m.md")
    assert dropped.block(1).gate_commands == ["ruff check src"]
    assert [g.paths for g in dropped.block(1).gates] == [["src"]]
    assert [g.paths for g in base.block(1).gates] == [["src"], ["tests"]]
    no_pytest = parse_steps(BASE.replace("pytest -q\n", ""), "m.md")
    assert "tests_failed" in {t.metric for t in base.block(3).targets}
    assert "tests_failed" not in {t.metric for t in no_pytest.block(3).targets}
    assert no_pytest.final_gates == ["ruff check src", "mypy src"]


@pytest.mark.parametrize(
    "style",
    [
        "**BLOCK 2 — Types**",
        "## 2. Types",
        "## 2) Types",
        "## Step 2 — Types",
        "### BLOCK 2 — Types",
    ],
)
def test_renaming_a_heading_style_keeps_the_block(style: str) -> None:
    renamed = BASE.replace("## BLOCK 2 — Types", style)
    assert renamed != BASE
    assert shape(parse_steps(renamed, "m.md")) == shape(parse_steps(BASE, "m.md"))


def test_a_numbered_heading_below_a_block_is_part_of_it() -> None:
    nested = parse_steps(BASE.replace("## BLOCK 2 — Types", "### 2) Types"), "m.md")
    assert [b.number for b in nested.blocks] == [1, 3]
    assert nested.block(1).gate_commands == ["ruff check src", "ruff check tests", "mypy src"]


def test_renaming_a_heading_to_no_block_style_unplaces_the_block() -> None:
    renamed = parse_steps(BASE.replace("## BLOCK 2 — Types", "## Types"), "m.md")
    assert [b.number for b in renamed.blocks] == [1, 3]
    assert all("mypy src" not in b.gate_commands for b in renamed.blocks if not b.final)
    assert any(u.startswith("## Types\n") and "Run: `mypy src`" in u for u in renamed.unplaced)
