"""What the model is shown: block context, findings, numbered files, a repository map."""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.gates.models import Finding, GateRun, GateStatus
from harness.gitutil import open_repo
from harness.policy import GuardConfig
from harness.steps import Block, map_command

GOAL_GATES = ("ruff", "mypy", "pytest", "bandit", "imports", "secrets")
# A file past this is generated code or data, not source to patch: it is not read at all.
# Below it, a file over `loop.max_read_bytes` is read whole (offline providers patch it from
# its text) but shown to the model only as regions.
MAX_FILE_BYTES = 10_000_000
# Lines shown either side of a finding in a file too large to show whole.
CONTEXT_LINES = 20
# What the model may name in a todo title: "line 120", "lines 120-140", "tabulate.py:120".
_NAMED_LINES = re.compile(r"(?:\blines?\s+|\.py:)(\d{1,7})(?:\s*[-\u2013]\s*(\d{1,7}))?")
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


def _row(i: int, line: str) -> str:
    return f"{i:5d} | {line}"


def numbered(text: str) -> str:
    return "".join(_row(i, line) for i, line in enumerate(text.splitlines(True), 1))


@dataclass(frozen=True)
class FileView:
    """What the model is shown of one file: all of it, numbered, or regions of it."""

    text: str
    size: int  # bytes of the whole file
    lines: int
    regions: tuple[tuple[int, int], ...] = ()  # empty: the file is shown whole
    basis: str = ""  # why these regions: "around its findings", ...

    @property
    def whole(self) -> bool:
        return not self.regions


def _runs(chosen: Iterable[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for i in sorted(chosen):
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _spans(runs: Sequence[tuple[int, int]]) -> str:
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in runs)


def _hidden(a: int, b: int) -> str:
    # No "NNNNN |" prefix: a marker must never pass for a line of the file.
    return (
        f"~~~~~ lines {a}-{b} not shown ~~~~~\n" if a != b else f"~~~~~ line {a} not shown ~~~~~\n"
    )


def _render_regions(path: str, rows: list[str], size: int, chosen: set[int], why: str) -> str:
    n = len(rows)
    runs = _runs(chosen)
    head = (
        f"({path} has {n} lines, {round(size / 1000)} kB, too large to show whole: showing "
        f"lines {_spans(runs) or 'none'} {why}. Lines keep the file's own numbers; lines "
        "between the regions are hidden, so never guess them. To see more, call read_files "
        f'with "ranges": [{{"path": "{path}", "start": N, "end": M}}].)\n'
    )
    parts = [head]
    shown_to = 0
    for a, b in runs:
        if a > shown_to + 1:
            parts.append(_hidden(shown_to + 1, a - 1))
        parts += [r if r.endswith(("\n", "\r")) else r + "\n" for r in rows[a - 1 : b]]
        shown_to = b
    if shown_to < n:
        parts.append(_hidden(shown_to + 1, n))
    return "".join(parts)


def file_view(
    path: str,
    text: str,
    max_bytes: int,
    focus: Sequence[tuple[int, int]] = (),
    wanted: Sequence[tuple[int, int]] = (),
) -> FileView:
    """The whole file numbered when it fits in max_bytes; else the regions the item needs:
    `wanted` (ranges the model asked for, latest first), then CONTEXT_LINES around each
    `focus` span (findings, lines the item names), numbered exactly as `numbered` numbers the
    whole file so hunks written against them locate, the total held to max_bytes."""
    size = len(text.encode("utf-8"))
    lines = text.splitlines(True)
    n = len(lines)
    if size <= max_bytes:
        return FileView(numbered(text), size, n)
    rows = [_row(i, line) for i, line in enumerate(lines, 1)]
    cost = [len(r.encode("utf-8")) for r in rows]
    focus = sorted({(a, b) for a, b in focus if a <= n})  # stale lines past the end are moot
    windows = [*reversed(wanted), *((a - CONTEXT_LINES, b + CONTEXT_LINES) for a, b in focus)]
    if wanted:
        why = "around its findings and where asked" if focus else "where asked"
    elif focus:
        why = "around its findings"
    else:
        windows, why = [(1, n)], "from its top (no finding to center on)"
    chosen: set[int] = set()
    # Room for the header, the markers and the listing of regions in it.
    used = len(_render_regions(path, [], size, set(), why).encode("utf-8")) + 2 * 40
    for k, (a, b) in enumerate(windows):
        new = [i for i in range(max(1, a), min(n, b) + 1) if i not in chosen]
        # A line that starts a new region costs a marker and an entry in the header.
        taken = chosen.union(new)
        starts = sum(1 for i in new if i - 1 not in taken)
        need = sum(cost[i - 1] for i in new) + 60 * starts
        if used + need <= max_bytes:
            chosen.update(new)
            used += need
            continue
        # A range asked for, or the first region, is shown as far as it fits; a finding's
        # region is shown whole or not at all (a stub of one need not hold its finding).
        if k < len(wanted) or not chosen:
            for i in new:
                extra = 0 if i - 1 in chosen else 60
                if used + cost[i - 1] + extra > max_bytes:
                    break
                chosen.add(i)
                used += cost[i - 1] + extra
        break
    unseen = [a for a, b in focus if not chosen.intersection(range(a, b + 1))]
    if unseen:
        more = f" and {len(unseen) - 10} more" if len(unseen) > 10 else ""
        listed = ", ".join(map(str, unseen[:10]))
        why += f"; lines {listed}{more} of the findings did not fit in {max_bytes} bytes"
    view = _render_regions(path, rows, size, chosen, why)
    while chosen and len(view.encode("utf-8")) > max_bytes:  # the estimate is only an estimate
        chosen.discard(max(chosen))
        view = _render_regions(path, rows, size, chosen, why)
    basis = why.split(";")[0]
    return FileView(view, size, n, tuple(_runs(chosen)), basis)


def named_lines(title: str) -> list[tuple[int, int]]:
    """Line spans an item's title names ("line 120", "lines 120-140", "tabulate.py:120")."""
    spans = []
    for m in _NAMED_LINES.finditer(title):
        a = int(m.group(1))
        b = int(m.group(2) or a)
        if 0 < a <= b:
            spans.append((a, b))
    return spans


def wanted_range(text: str, max_bytes: int, start: int, end: int) -> tuple[int, int] | str:
    """A line range the model asked for, clamped to the file's end; or why it is not shown.
    `start` <= `end`, both >= 1, is checked by the ReadFiles schema."""
    if len(text.encode("utf-8")) <= max_bytes:
        return "the whole file is shown already"
    n = len(text.splitlines())
    if start > n:
        return f"lines {start}-{end} are past the end of the file ({n} lines)"
    return start, min(end, n)


def finding_line(f: Finding) -> str:
    return f"{f.path}:{f.line or '-'} {f.code} {f.message}"


def read_repo_file(
    root: Path, path: str, max_bytes: int = MAX_FILE_BYTES
) -> tuple[str | None, str]:
    """(text, "") for a readable text file of at most max_bytes inside the repository, else
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
        return None, f"{size} bytes is over the limit of {max_bytes} for a file to read"
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
        "contracts_broken": [c.name for c in run.results["imports"].contracts if not c.kept]
        if "imports" in run.results
        else [],
        "lanes": guard.lanes,
        "max_lines": guard.max_changed_lines_per_file,
        "max_items": max_items,
    }
