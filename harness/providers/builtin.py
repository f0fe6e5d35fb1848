"""Offline, deterministic provider: patches built from the tools' own safe fix suggestions.

It works only on what a rule can fix safely (ruff's `safe` fixes), splits each file's fixes
so a patch stays within the per-file limit, and says plainly which goals it cannot work on.
It patches from a file's whole text, which the loop hands it however large the file is (a
model is shown only regions of a file over `loop.max_read_bytes`).
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from harness.errors import ProviderError
from harness.guard.globs import match_any
from harness.guard.textdiff import count_changes, split_lines
from harness.proc import run
from harness.providers.base import ModelRequest, ModelResponse

# (path, text) -> ruff's findings for that text, as dicts with code, message, line, fix.
Lint = Callable[[str, str], list[dict[str, Any]]]

CANNOT = {
    "pytest": "writing tests to raise coverage needs a language model; the builtin provider "
    "only applies rule-based fixes",
    "mypy": "mypy reports no machine-applicable fixes; typing errors need a language model",
    "bandit": "bandit findings have no safe automatic fix; they need review by a model or a person",
    "secrets": "a leaked secret must be rotated by a person; no automatic fix is safe",
    "imports": "a broken import contract needs a design decision, not a rule-based fix",
}


def _offset(lines: list[str], row: int, col: int) -> int:
    """ruff locations are 1-based row/column in characters."""
    return sum(len(line) for line in lines[: row - 1]) + (col - 1)


def _apply_edits(text: str, edits: list[tuple[int, int, str]]) -> str:
    for start, end, content in sorted(edits, reverse=True):
        text = text[:start] + content + text[end:]
    return text


def _changed_lines(old: str, new: str) -> int:
    """added + removed as the guard counts them (git's numstat). difflib is not minimal on
    files of 200+ lines (autojunk), so it over-counts and would refuse fixes that fit."""
    return sum(count_changes(split_lines(old), split_lines(new)))


def unified_diff(path: str, old: str, new: str) -> str:
    body = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
    )
    return "".join(body)


def _safe_fix_edits(finding: dict[str, Any], lines: list[str]) -> list[tuple[int, int, str]] | None:
    fix = finding.get("fix")
    if not isinstance(fix, dict) or fix.get("applicability") != "safe":
        return None
    edits = []
    for edit in fix.get("edits") or []:
        loc, end = edit["location"], edit["end_location"]
        start = _offset(lines, loc["row"], loc["column"])
        stop = _offset(lines, end["row"], end["column"])
        edits.append((start, stop, str(edit.get("content") or "")))
    return edits or None


def build_fix_patch(path: str, text: str, findings: list[dict[str, Any]], max_lines: int) -> str:
    """Greedily take non-overlapping safe fixes, top of file first, while the file's change
    stays within max_lines. Returns "" when nothing can be taken."""
    lines = text.splitlines(keepends=True)
    if not text.endswith("\n"):
        return ""  # a diff without "\ No newline" handling would be wrong; leave such files
    chosen: list[tuple[int, int, str]] = []
    ordered = sorted(
        findings, key=lambda f: ((f.get("line") or 0), str(f.get("code")), str(f.get("message")))
    )
    for finding in ordered:
        edits = _safe_fix_edits(finding, lines)
        if edits is None:
            continue
        overlaps = any((s < ce and cs < e) or s == cs for s, e, _ in edits for cs, ce, _c in chosen)
        if overlaps:
            continue
        trial = _apply_edits(text, chosen + edits)
        if not trial.endswith("\n") or _changed_lines(text, trial) > max_lines:
            continue
        chosen.extend(edits)
    if not chosen:
        return ""
    return unified_diff(path, text, _apply_edits(text, chosen))


def ruff_stdin_linter(argv: list[str], cwd: str) -> Lint:
    """Lint candidate text through `ruff check ... --stdin-filename PATH -`, as the gate would."""

    def lint(path: str, text: str) -> list[dict[str, Any]]:
        proc = run([*argv, "--stdin-filename", path, "-"], cwd, stdin=text, timeout=120)
        try:
            if proc.returncode != 0:
                raise ValueError(proc.tail)
            rows = json.loads(proc.stdout)
            return [
                {
                    "gate": "ruff",
                    "path": path,
                    "code": str(r.get("code") or "invalid-syntax"),
                    "message": str(r["message"]),
                    "line": r["location"]["row"],
                    "fix": r.get("fix"),
                }
                for r in rows
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(f"builtin: ruff could not lint {path}: {exc}") from exc

    return lint


def _new(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Findings of `after` beyond the (code, message) multiset of `before`."""
    budget = Counter((f["code"], f["message"]) for f in before)
    out = []
    for f in after:
        key = (f["code"], f["message"])
        if budget[key] > 0:
            budget[key] -= 1
        else:
            out.append(f)
    return out


def _settle(lint: Lint, path: str, base: list[dict[str, Any]], text: str) -> str | None:
    """Ruff's own fix-point: a fix may leave a new finding (removing an import un-sorts the
    block); apply the safe fixes of what the change introduced, or give up (None)."""
    for _ in range(3):
        new = _new(base, lint(path, text))
        if not new:
            return text
        lines = text.splitlines(keepends=True)
        edits: list[tuple[int, int, str]] = []
        for finding in new:
            more = _safe_fix_edits(finding, lines)
            if more is None:
                return None
            if not any(s < ce and cs < e for s, e, _ in more for cs, ce, _c in edits):
                edits += more
        text = _apply_edits(text, edits)
    return None


def build_checked_fix_patch(path: str, text: str, lint: Lint, max_lines: int) -> str:
    """Take safe fixes one at a time, each verified by ruff to introduce no new finding (after
    following ruff's fix-point), while the file's change stays within max_lines."""
    if not text.endswith("\n"):
        return ""
    current = text
    refused: set[tuple[str, str]] = set()
    progress = True
    while progress:
        progress = False
        found = lint(path, current)
        lines = current.splitlines(keepends=True)
        for finding in sorted(found, key=lambda f: (f["line"] or 0, f["code"], f["message"])):
            key = (finding["code"], finding["message"])
            edits = _safe_fix_edits(finding, lines)
            if edits is None or key in refused:
                continue
            trial = _apply_edits(current, edits)
            if not trial.endswith("\n") or _changed_lines(text, trial) > max_lines:
                continue
            settled = _settle(lint, path, found, trial)
            if settled is None or _changed_lines(text, settled) > max_lines:
                refused.add(key)
                continue
            current, progress = settled, True
            break
    return unified_diff(path, text, current) if current != text else ""


def _in_lanes(path: str, lanes: list[str]) -> bool:
    return match_any(path, lanes) if lanes else True


class BuiltinProvider:
    name = "builtin"
    model = "builtin-rules"

    def complete(self, request: ModelRequest) -> ModelResponse:
        ctx = request.context
        if request.phase == "plan":
            return self._plan(ctx)
        if request.phase == "todo":
            return self._todo(ctx)
        return self._execute(ctx)

    @staticmethod
    def _fixable(ctx: dict[str, Any]) -> dict[str, list[str]]:
        lanes = list(ctx.get("lanes") or [])
        by_file: dict[str, list[str]] = {}
        for f in ctx.get("findings", {}).get("ruff", []):
            fix = f.get("fix") or {}
            if fix.get("applicability") == "safe" and _in_lanes(f["path"], lanes):
                by_file.setdefault(f["path"], []).append(f["code"])
        return by_file

    @staticmethod
    def _not_fixable(ctx: dict[str, Any]) -> list[str]:
        """Why the other ruff findings are left, each reason with its own count: a finding
        with an unsafe fix, or a safe one outside the lanes, is not one with "no fix"."""
        lanes = list(ctx.get("lanes") or [])
        why: Counter[str] = Counter()
        for f in ctx.get("findings", {}).get("ruff", []):
            applicability = (f.get("fix") or {}).get("applicability")
            if applicability is None:
                why["no automatic fix"] += 1
            elif applicability != "safe":
                why[f"only a fix ruff marks {applicability} (it may change behaviour)"] += 1
            elif not _in_lanes(f["path"], lanes):
                why["a safe fix, in a file outside this block's lanes"] += 1
        return [
            f"ruff: {n} finding{'s have' if n != 1 else ' has'} {w}" for w, n in sorted(why.items())
        ]

    def _plan(self, ctx: dict[str, Any]) -> ModelResponse:
        gates = list(ctx.get("block", {}).get("gates") or [])
        cannot = [f"{g}: {CANNOT[g]}" for g in gates if g in CANNOT]
        steps = []
        if "ruff" in gates:
            fixable = self._fixable(ctx)
            count = sum(len(v) for v in fixable.values())
            steps.append(
                f"Apply ruff's safe fixes ({count} in {len(fixable)} files), one file per "
                f"patch, at most {ctx.get('max_lines', 20)} changed lines per file; a safe fix "
                "that would leave a new finding is skipped."
            )
            cannot += self._not_fixable(ctx)
        summary = " ".join(steps) if steps else "Nothing in this block can be fixed by rules."
        plan = {"summary": summary, "steps": steps, "cannot_do": cannot}
        return ModelResponse(tool="submit_plan", input=plan, model=self.model)

    def _todo(self, ctx: dict[str, Any]) -> ModelResponse:
        items: list[dict[str, Any]] = []
        gates = list(ctx.get("block", {}).get("gates") or [])
        if "ruff" in gates:
            max_items = int(ctx.get("max_items", 12))
            for i, (path, codes) in enumerate(sorted(self._fixable(ctx).items()), start=1):
                if len(items) >= max_items:
                    break
                shown = ", ".join(sorted(set(codes)))[:150]
                items.append(
                    {
                        "id": f"R{i}",
                        "title": f"Apply ruff safe fixes in {path} ({shown})",
                        "files": [path],
                        "gate": "ruff",
                    }
                )
        return ModelResponse(tool="submit_todos", input={"items": items}, model=self.model)

    def _execute(self, ctx: dict[str, Any]) -> ModelResponse:
        item = ctx["item"]
        # Halve the budget on each retry, so a guard that counts differently still gets a
        # patch it accepts.
        budget = max(1, int(ctx.get("max_lines", 20)) >> int(ctx.get("attempt", 0)))
        findings = [f for f in ctx.get("findings", []) if f.get("gate") == "ruff"]
        for path in item.get("files", []):
            text = ctx.get("files", {}).get(path)
            if text is None:
                continue
            mine = [f for f in findings if f.get("path") == path]
            lint = ctx.get("lint")
            if isinstance(lint, dict):
                linter = ruff_stdin_linter(list(lint["argv"]), str(lint["cwd"]))
                diff = build_checked_fix_patch(path, text, linter, budget)
            else:
                diff = build_fix_patch(path, text, mine, budget)
            if diff:
                proposal = {
                    "item_id": item["id"],
                    "action": "patch",
                    "diff": diff,
                    "explanation": "ruff safe fixes: "
                    + ", ".join(sorted({str(f["code"]) for f in mine})),
                }
                return ModelResponse(tool="propose_patch", input=proposal, model=self.model)
        missing = ctx.get("missing") or {}
        unseen = [p for p in item.get("files", []) if p not in ctx.get("files", {})]
        # Saying "no safe fix applies" about a file it never saw would be a false claim.
        why = (
            "not given the text of "
            + ", ".join(f"{p} ({missing.get(p, 'unreadable')})" for p in unseen)
            + "; cannot build a patch for it"
            if unseen
            else "no safe fix applies"
        )
        skip = {"item_id": item["id"], "action": "skip", "explanation": why}
        return ModelResponse(tool="propose_patch", input=skip, model=self.model)
