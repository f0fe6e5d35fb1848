"""What the model is shown: block context, findings, numbered files, a repository map."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from harness.gates.models import Finding, GateRun, GateStatus
from harness.gitutil import open_repo
from harness.policy import GuardConfig
from harness.steps import Block, map_command

GOAL_GATES = ("ruff", "mypy", "pytest", "bandit", "imports", "secrets")
_TITLE_GATES = {
    "coverage": ["pytest"],
    "ruff": ["ruff"],
    "mypy": ["mypy"],
    "security": ["bandit", "secrets"],
    "bandit": ["bandit"],
    "gitleaks": ["secrets"],
}


def block_commands(block: Block) -> dict[str, str]:
    """The block's commands that map onto no gate: run as they are, judged by exit code."""
    cmds = [m.command for m in map(map_command, block.gate_commands) if m.kind == "command"]
    return {f"command:{c}": c for c in cmds}


def block_gates(block: Block) -> list[str]:
    """The gates that judge a block: from its gate commands, else from its title."""
    gates: list[str] = list(block_commands(block))
    for cmd in block.gate_commands:
        gate = map_command(cmd).gate
        if gate in GOAL_GATES and gate not in gates:
            gates.append(gate)
    if not gates:
        title = block.title.lower()
        for word, names in _TITLE_GATES.items():
            gates += [g for g in names if word in title and g not in gates]
    return gates


def goal_met(gates: list[str], run: GateRun) -> bool:
    return bool(gates) and all(
        g in run.results and run.results[g].status == GateStatus.PASSED for g in gates
    )


def numbered(text: str) -> str:
    return "".join(f"{i:5d} | {line}" for i, line in enumerate(text.splitlines(True), 1))


def finding_line(f: Finding) -> str:
    return f"{f.path}:{f.line or '-'} {f.code} {f.message}"


def read_repo_file(root: Path, path: str, max_bytes: int) -> tuple[str | None, str]:
    """(text, "") for a readable, reasonably small text file inside the repository, else
    (None, why not). `path` is model input: no name it sends may raise."""
    try:
        target = (root / path).resolve()
        if not target.is_relative_to(root.resolve()) or ".git" in Path(path).parts:
            return None, "outside the repository"
        if not target.is_file():
            return None, "no such file"
        size = target.stat().st_size
    except ValueError as exc:  # a NUL byte, a lone surrogate
        return None, f"not a valid file name ({exc})"
    except OSError as exc:
        return None, f"not a usable file name ({exc.strerror or type(exc).__name__})"
    if size > max_bytes:
        return None, f"{size} bytes is over the loop.max_read_bytes limit of {max_bytes}"
    try:
        return target.read_text(encoding="utf-8"), ""
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"not readable as UTF-8 text ({type(exc).__name__})"


def repo_map(root: Path, limit: int = 200) -> str:
    """Tracked Python and config files with their sizes: a compact map for planning."""
    rows = []
    # -z: names come out raw, not C-quoted ("pkg/\303\251.py"), so non-ASCII names survive.
    for rel in open_repo(root).git.ls_files("-z").split("\0"):
        if not rel.endswith((".py", ".toml", ".ini", ".cfg")):
            continue
        full = root / rel
        try:
            # A tracked symlink (to a directory, or dangling) is not a file to show.
            if not stat.S_ISREG(full.lstat().st_mode):
                continue
            size = len(full.read_bytes().splitlines())
        except OSError:
            continue  # deleted or unreadable in the working tree
        rows.append(f"{rel} ({size} lines)")
    extra = f"\n... and {len(rows) - limit} more" if len(rows) > limit else ""
    return "\n".join(rows[:limit]) + extra


def findings_text(gates: list[str], run: GateRun, per_gate: int = 40) -> str:
    """The findings of the block's gates as compact text (coverage: the least covered files)."""
    parts = []
    for g in gates:
        r = run.results.get(g)
        if r is None:
            continue
        head_line = f"## {g}: {r.status.value}"
        if r.reason:
            head_line += f" ({r.reason})"
        if r.coverage:
            head_line += f", coverage {r.coverage.percent:.1f}%"
            low = sorted(r.coverage.per_file.items(), key=lambda kv: kv[1])[:15]
            parts.append(head_line + "\n" + "\n".join(f"{p}: {c:.0f}%" for p, c in low))
            continue
        lines = [finding_line(f) for f in r.findings[:per_gate]]
        more = len(r.findings) - per_gate
        parts.append("\n".join([head_line, *lines] + ([f"... {more} more"] if more > 0 else [])))
    return "\n\n".join(parts) or "(no gate findings for this block)"


def block_context(
    block: Block, gates: list[str], guard: GuardConfig, run: GateRun, max_items: int
) -> dict[str, Any]:
    """Structured facts for the plan and todo phases (offline providers read these)."""
    return {
        "block": {
            "number": block.number,
            "title": block.title,
            "goals": block.goals,
            "gate_commands": block.gate_commands,
            "gates": gates,
        },
        "findings": {
            g: [f.model_dump() for f in run.results[g].findings] for g in gates if g in run.results
        },
        "lanes": guard.lanes,
        "max_lines": guard.max_changed_lines_per_file,
        "max_items": max_items,
    }
