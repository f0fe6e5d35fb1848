"""Offline, deterministic provider: patches built from the tools' own fix suggestions.

Each patch is one ruff rule: as many of its fixes as fit the per-file line limit, in each file
the rule has fixes in. It proposes ruff's safe fixes first, then its unsafe ones, then `ruff
format` where the block runs it; the loop's verification and gates decide what lands. When the
loop refuses or reverts a patch (`ctx["avoid"]`), its fixes are tried again in halves, so the
innocent ones land and the harmful one ends alone, refused, and is never proposed again. It
patches from a file's whole text, which the loop hands it however large the file is (a model is
shown only regions of a file over `loop.max_read_bytes`).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.detect import RUFF_LOWEST_MINOR, flake8_section
from harness.errors import ProviderError
from harness.gitutil import change_key
from harness.guard.globs import match_any
from harness.guard.textdiff import count_changes, render_hunks, split_lines
from harness.proc import run
from harness.providers.base import ModelRequest, ModelResponse

# (path, text) -> ruff's findings for that text, as dicts with code, message, line, fix.
Lint = Callable[[str, str], list[dict[str, Any]]]
Edit = tuple[int, int, str]

CANNOT = {
    "pytest": "writing tests to raise coverage needs a language model; the builtin provider "
    "only applies rule-based fixes",
    "mypy": "mypy reports no machine-applicable fixes; typing errors need a language model",
    "bandit": "bandit findings have no safe automatic fix; they need review by a model or a person",
    "secrets": "a leaked secret must be rotated by a person; no automatic fix is safe",
    "imports": "a broken import contract needs a design decision, not a rule-based fix",
}
SAFE, UNSAFE, FORMAT = "safe", "unsafe", "format"
# The titles this provider writes are also what it reads back in the execute phase (the loop
# hands it the item, not the plan), and they become the commit subjects.
_RULE_TITLE = re.compile(
    r"^ruff (?P<rule>[A-Za-z]+[0-9]+) in (?P<path>.+) \((?:(?P<take>\d+) of )?(?P<total>\d+) "
    r"(?P<unsafe>unsafe )?fix(?:es)?\)$"
)
# A rule's item over several files names their count; the item's `files` lists them.
_SEVERAL = re.compile(r"^\d+ files$")
_FORMAT_TITLE = re.compile(r"^ruff format (?P<path>.+) \(\d+ changed lines?\)$")
# `ruff format` options that take a value: the value is not a path to format.
_FORMAT_VALUED = {"--config", "--line-length", "--target-version", "--exclude", "--extension"}
_FORMAT_DROPPED = {"--check", "--diff", "--quiet", "-q", "--no-cache", "--force-exclude"}


@dataclass(frozen=True)
class Work:
    """What one item asks for: `take` fixes of one rule in one file, or a file's format."""

    kind: str  # SAFE | UNSAFE | FORMAT
    rule: str  # a ruff code, or "format"
    path: str
    take: int = 0  # at most this many fixes; 0: as many as fit


def item_work(title: str) -> Work | None:
    """Read back an item title this provider wrote (None for any other title)."""
    m = _RULE_TITLE.match(title)
    if m:
        kind = UNSAFE if m["unsafe"] else SAFE
        return Work(kind, m["rule"], m["path"], int(m["take"] or m["total"]))
    m = _FORMAT_TITLE.match(title)
    return Work(FORMAT, FORMAT, m["path"]) if m else None


def item_rule(title: str) -> str | None:
    """The rule an item title names ("UP032", "format"): what the loop keys `avoid` entries by."""
    work = item_work(title)
    return work.rule if work else None


def _rule_title(kind: str, rule: str, path: str, take: int, total: int) -> str:
    part = f"{take} of {total}" if take != total else str(total)
    noun = ("unsafe " if kind == UNSAFE else "") + ("fix" if total == 1 else "fixes")
    return f"ruff {rule} in {path} ({part} {noun})"


def _offset(lines: list[str], row: int, col: int) -> int:
    """ruff locations are 1-based row/column in characters."""
    return sum(len(line) for line in lines[: row - 1]) + (col - 1)


def _apply_edits(text: str, edits: list[Edit]) -> str:
    for start, end, content in sorted(edits, reverse=True):
        text = text[:start] + content + text[end:]
    return text


def _changed_lines(old: str, new: str) -> int:
    """added + removed as the guard counts them (git's numstat). difflib is not minimal on
    files of 200+ lines (autojunk), so it over-counts and would refuse fixes that fit."""
    return sum(count_changes(split_lines(old), split_lines(new)))


def unified_diff(path: str, old: str, new: str) -> str:
    """The diff as the guard renders it (git's line matching): the loop keys refused and
    reverted changes by the guard's diff, and difflib pairs the lines of a reordering (a sorted
    `__slots__`) differently, so a refused change proposed again looked new to `_avoided_patch`."""
    hunks = render_hunks(split_lines(old), split_lines(new))
    return "".join([f"--- a/{path}\n", f"+++ b/{path}\n", *hunks]) if hunks else ""


def _applicability(finding: dict[str, Any]) -> str | None:
    fix = finding.get("fix")
    return str(fix.get("applicability")) if isinstance(fix, dict) else None


def _fix_edits(
    finding: dict[str, Any], lines: list[str], applicability: str = SAFE
) -> list[Edit] | None:
    if _applicability(finding) != applicability:
        return None
    edits = []
    for edit in finding["fix"].get("edits") or []:
        loc, end = edit["location"], edit["end_location"]
        start = _offset(lines, loc["row"], loc["column"])
        stop = _offset(lines, end["row"], end["column"])
        edits.append((start, stop, str(edit.get("content") or "")))
    return edits or None


def _safe_fix_edits(finding: dict[str, Any], lines: list[str]) -> list[Edit] | None:
    return _fix_edits(finding, lines, SAFE)


def _overlaps(edits: list[Edit], chosen: list[Edit]) -> bool:
    return any((s < ce and cs < e) or s == cs for s, e, _ in edits for cs, ce, _c in chosen)


def _by_line(f: dict[str, Any]) -> tuple[int, str, str]:
    return (f.get("line") or 0, str(f.get("code")), str(f.get("message")))


def _greedy(
    text: str,
    findings: list[dict[str, Any]],
    max_lines: int,
    rule: str | None,
    applicability: str,
    take: int,
) -> tuple[str, int]:
    """Non-overlapping fixes, top of file first, while the change stays within max_lines:
    the new text and how many fixes it took."""
    lines = text.splitlines(keepends=True)
    chosen: list[Edit] = []
    taken = 0
    for finding in sorted(findings, key=_by_line):
        if (rule is not None and finding.get("code") != rule) or (take and taken >= take):
            continue
        edits = _fix_edits(finding, lines, applicability)
        # Fixes often share an edit (each PYI026 fix adds `TypeAlias` to the same import):
        # made once, it serves them all.
        edits = [e for e in edits if e not in chosen] if edits else None
        if edits is None or _overlaps(edits, chosen):
            continue
        trial = _apply_edits(text, chosen + edits)
        if not trial.endswith("\n") or _changed_lines(text, trial) > max_lines:
            continue
        chosen.extend(edits)
        taken += 1
    return _apply_edits(text, chosen), taken


def build_fix_patch(
    path: str,
    text: str,
    findings: list[dict[str, Any]],
    max_lines: int,
    *,
    rule: str | None = None,
    applicability: str = SAFE,
    take: int = 0,
) -> str:
    """Greedily take non-overlapping fixes (of `rule` alone, if given), top of file first,
    while the file's change stays within max_lines. Returns "" when nothing can be taken."""
    if not text.endswith("\n"):
        return ""  # a diff without "\ No newline" handling would be wrong; leave such files
    new, taken = _greedy(text, findings, max_lines, rule, applicability, take)
    return unified_diff(path, text, new) if taken else ""


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


def older_than_ruff(lint: object) -> str | None:
    """Why no pyupgrade (UP) fix is proposed, when the project supports a Python older than
    ruff's lowest target (3.7): ruff cannot be told that target, so its UP fixes (f-strings,
    `super()`, dropped `sys.version_info` branches) write code the project cannot run."""
    floor = lint.get("python_floor") if isinstance(lint, dict) else None
    if not isinstance(floor, str):
        return None
    try:
        major, minor = (int(x) for x in floor.split("."))
    except ValueError:
        return None
    if (major, minor) >= (3, RUFF_LOWEST_MINOR):
        return None
    return (
        f"the project supports Python {floor}, older than ruff's lowest "
        f"target 3.{RUFF_LOWEST_MINOR}"
    )


def project_linter(lint: dict[str, Any]) -> Lint:
    """The linter candidate text is checked with: the gate's command, and, where it carries a
    line length (the project's flake8 or black one, or the block's), E501 at that length
    whether or not the gate selects it, so that no fix writes a line the project's own lint
    rejects (a UP032 f-string joined onto one line can pass 79 columns). For a project older
    than ruff's lowest target, without the UP findings, so that no fix of theirs is taken."""
    argv = [str(a) for a in lint["argv"]]
    if "--line-length" in argv:
        argv += ["--extend-select", "E501"]
    linter = ruff_stdin_linter(argv, str(lint["cwd"]))
    if older_than_ruff(lint) is None:
        return linter

    def without_pyupgrade(path: str, text: str) -> list[dict[str, Any]]:
        return [f for f in linter(path, text) if not str(f.get("code")).startswith("UP")]

    return without_pyupgrade


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
        edits: list[Edit] = []
        for finding in new:
            more = _safe_fix_edits(finding, lines)
            if more is None:
                return None
            if not any(s < ce and cs < e for s, e, _ in more for cs, ce, _c in edits):
                edits += more
        text = _apply_edits(text, edits)
    return None


def _identity(finding: dict[str, Any], lines: list[str]) -> tuple[str, str, str]:
    """Which finding this is across re-lints: many share a message (every UP032 says "Use
    f-string instead of `format` call"), so the text of its line tells them apart."""
    row = int(finding.get("line") or 0)
    line = lines[row - 1].strip() if 0 < row <= len(lines) else ""
    return (str(finding["code"]), str(finding["message"]), line)


def checked_fix_text(
    path: str,
    text: str,
    lint: Lint,
    max_lines: int,
    *,
    rule: str | None = None,
    applicability: str = SAFE,
    take: int = 0,
    keys: set[str] | None = None,
    banned: set[str] | frozenset[str] = frozenset(),
) -> str:
    """The file's text with the fixes (of `rule` alone, if given; of those whose fix_key is in
    `keys`, if given; none whose fix_key is banned) that ruff confirms introduce no new finding,
    after following ruff's fix-point, while the file's change stays within max_lines.

    All of them at once when that adds nothing; otherwise one finding at a time, keeping each
    that adds nothing, so a fix that would lengthen a line past E501 costs only itself."""
    if not text.endswith("\n"):
        return text
    found = lint(path, text)
    lines0 = text.splitlines(keepends=True)
    mine = [
        f
        for f in found
        if rule in (None, f["code"])
        and _applicability(f) == applicability
        and (keys is None or fix_key(path, text, f, applicability) in keys)
        and (not banned or fix_key(path, text, f, applicability) not in banned)
    ]
    # Which findings are this patch's, across re-lints (the one-at-a-time path below).
    ours = {_identity(f, lines0) for f in mine}
    whole, taken = _greedy(text, mine, max_lines, rule, applicability, take)
    # Fewer taken than asked for (two fixes that each insert `import contextlib` overlap):
    # one at a time, re-linting between, takes them all.
    if taken and taken >= min(take or len(mine), len(mine)):
        settled = _settle(lint, path, found, whole)
        if settled is not None and _changed_lines(text, settled) <= max_lines:
            return settled
    current = text
    refused: set[tuple[str, str, str]] = set()
    taken = 0
    progress = True
    while progress and not (take and taken >= take):
        progress = False
        lines = current.splitlines(keepends=True)
        for finding in sorted(found, key=_by_line):
            key = _identity(finding, lines)
            edits = _fix_edits(finding, lines, applicability)
            if key not in ours or edits is None or key in refused:
                continue
            trial = _apply_edits(current, edits)
            settled = None
            if trial.endswith("\n") and _changed_lines(text, trial) <= max_lines:
                settled = _settle(lint, path, found, trial)
            if settled is None or _changed_lines(text, settled) > max_lines:
                refused.add(key)
                continue
            current, progress, taken = settled, True, taken + 1
            found = lint(path, current)
            break
    return current


def build_checked_fix_patch(
    path: str,
    text: str,
    lint: Lint,
    max_lines: int,
    *,
    rule: str | None = None,
    applicability: str = SAFE,
    take: int = 0,
    keys: set[str] | None = None,
    banned: set[str] | frozenset[str] = frozenset(),
) -> str:
    """checked_fix_text as a diff ("" when nothing can be taken)."""
    new = checked_fix_text(
        path,
        text,
        lint,
        max_lines,
        rule=rule,
        applicability=applicability,
        take=take,
        keys=keys,
        banned=banned,
    )
    return unified_diff(path, text, new) if new != text else ""


# ----------------------------------------------------------------------------- ruff format
def _ruff_prefix(ctx: dict[str, Any]) -> tuple[list[str], list[str], str] | None:
    """(the ruff the gate runs, its --config, --line-length and --target-version, the
    worktree), from the loop's lint command."""
    lint = ctx.get("lint")
    if not isinstance(lint, dict) or "check" not in lint.get("argv", []):
        return None
    argv = [str(a) for a in lint["argv"]]
    at = argv.index("check")
    settings = []
    for option in ("--config", "--line-length", "--target-version"):
        if option in argv[at:]:
            i = argv.index(option, at)
            settings += argv[i : i + 2]
    return argv[:at], settings, str(lint["cwd"])


def format_commands(ctx: dict[str, Any]) -> list[list[str]]:
    """The block's `ruff format` commands, as argv after `format` (a check or a fixer alike:
    either says the block wants formatted code)."""
    block = ctx.get("block") or {}
    cmds = list(block.get("gate_commands") or [])
    cmds += [
        g.removeprefix("command:") for g in block.get("gates") or [] if g.startswith("command:")
    ]
    out: list[list[str]] = []
    for cmd in cmds:
        try:
            argv = shlex.split(cmd)
        except ValueError:
            continue
        words = [w for w in argv if w not in ("-m",) and not Path(w).name.startswith("python")]
        if len(words) >= 2 and Path(words[0]).name == "ruff" and words[1] == "format":
            args = words[2:]
            if args not in out:
                out.append(args)
    return out


def _split_format_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(options to format with, paths to format)."""
    options: list[str] = []
    paths: list[str] = []
    it = iter(args)
    for a in it:
        if a in _FORMAT_DROPPED:
            continue
        if a in _FORMAT_VALUED:
            options += [a, next(it, "")]
        elif a.startswith("-"):
            options.append(a)
        else:
            paths.append(a)
    return options, paths or ["."]


def _format_argv(ctx: dict[str, Any], options: list[str]) -> tuple[list[str], str] | None:
    found = _ruff_prefix(ctx)
    if found is None:
        return None
    ruff, settings, cwd = found
    pairs = dict(zip(settings[::2], settings[1::2], strict=True))
    if any(o.startswith("--config") for o in options):
        pairs = {}  # the block's own config file, which may set its own line length
    for option in ("--line-length", "--target-version"):
        if any(o.startswith(option) for o in options):
            pairs.pop(option, None)
    own = [x for pair in pairs.items() for x in pair]
    return [*ruff, "format", "--no-cache", *own, *options], cwd


def format_sizes(ctx: dict[str, Any]) -> tuple[dict[str, int], str | None]:
    """Changed lines per file that `ruff format` would change, as its own --diff counts them,
    and why it could not tell (None when it could)."""
    sizes: dict[str, int] = {}
    for args in format_commands(ctx):
        options, paths = _split_format_args(args)
        made = _format_argv(ctx, options)
        if made is None:
            return {}, "the loop gave no ruff command or working directory to format with"
        argv, cwd = made
        proc = run([*argv, "--diff", *paths], cwd, timeout=300)
        if proc.missing or proc.timed_out or (proc.returncode not in (0, 1) and not proc.stdout):
            return sizes, f"ruff format could not run: {proc.tail}"
        current = ""
        for line in proc.stdout.splitlines():
            if line.startswith("--- "):
                name = line[4:].split("\t")[0].strip()
                current = _relative(name.removeprefix("a/"), cwd)
                sizes.setdefault(current, 0)
            elif line.startswith("+++ "):
                continue
            elif current and line[:1] in ("+", "-"):
                sizes[current] += 1
    return sizes, None


def _relative(name: str, cwd: str) -> str:
    path = Path(name)
    if path.is_absolute():
        try:
            return path.resolve().relative_to(Path(cwd).resolve()).as_posix()
        except ValueError:
            return path.as_posix()
    return path.as_posix().removeprefix("./")


def format_text(ctx: dict[str, Any], path: str, text: str) -> tuple[str | None, str]:
    """The file's text as the block's `ruff format` leaves it (None, and why, if it cannot)."""
    options = _split_format_args(next(iter(format_commands(ctx)), []))[0]
    made = _format_argv(ctx, options)
    if made is None:
        return None, "the loop gave no ruff command or working directory to format with"
    argv, cwd = made
    proc = run([*argv, "--stdin-filename", path, "-"], cwd, stdin=text, timeout=120)
    if proc.returncode != 0:
        return None, f"ruff format could not format {path}: {proc.tail}"
    return proc.stdout, ""


# ----------------------------------------------------------------------------- the provider
def _in_lanes(path: str, lanes: list[str]) -> bool:
    return match_any(path, lanes) if lanes else True


def _avoid(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """The loop's refused and reverted changes of this run; older callers pass none."""
    return [a for a in ctx.get("avoid") or [] if isinstance(a, dict)]


def _avoided_rule(ctx: dict[str, Any], path: str, rule: str) -> str | None:
    for a in _avoid(ctx):
        if a.get("path") == path and a.get("rule") == rule:
            return str(a.get("reason") or "refused or reverted earlier in this run")
    return None


def _text_key(text: str) -> frozenset[str]:
    return frozenset({hashlib.sha256(text.encode()).hexdigest()})


def _flake8_config(ctx: dict[str, Any]) -> str | None:
    """Where the project configures flake8, which honours the same `# noqa` comments: one
    ruff calls unused (RUF100) may be what keeps the project's flake8 quiet."""
    found = _ruff_prefix(ctx)
    section = flake8_section(Path(found[2])) if found is not None else None
    return section[0] if section is not None else None


def _read(ctx: dict[str, Any], path: str) -> str:
    found = _ruff_prefix(ctx)
    try:
        return (Path(found[2]) / path).read_text(encoding="utf-8") if found else ""
    except (OSError, UnicodeDecodeError):
        return ""


def _fingerprints(findings: list[dict[str, Any]]) -> frozenset[str]:
    return frozenset(str(f.get("fingerprint") or _by_line(f)) for f in findings)


@dataclass
class _Candidate:
    work: Work
    findings: list[dict[str, Any]]
    size: int  # changed lines: estimated for fixes, ruff's count for a format
    keys: list[str] = field(default_factory=list)  # each finding's fix_key, in order


@dataclass
class _Suspects:
    """What the loop's ledger of refused and reverted changes means for each fix."""

    banned: dict[str, str] = field(default_factory=dict)  # fix key -> why: refused alone
    cap: dict[str, int] = field(default_factory=dict)  # fix key -> largest patch it may be in
    # (path, rule) -> why, for changes this provider did not make (it cannot tell which fix).
    rules: dict[tuple[str, str], str] = field(default_factory=dict)


def _estimate(finding: dict[str, Any]) -> int:
    """Changed lines a fix makes, from its edits alone (no text at hand in the todo phase):
    enough to split a rule's fixes into patches that fit the per-file limit."""
    total = 0
    for edit in (finding.get("fix") or {}).get("edits") or []:
        loc, end, content = edit["location"], edit["end_location"], str(edit.get("content") or "")
        whole_lines = loc["column"] == 1 and end["column"] == 1
        removed = end["row"] - loc["row"] + (0 if whole_lines else 1)
        added = content.count("\n") + (0 if whole_lines else 1)
        total += removed + added
    return max(1, total)


def fix_key(path: str, text: str, finding: dict[str, Any], kind: str) -> str:
    """Which fix this is, wherever it sits: the change it makes alone, keyed as the loop keys a
    refused change (`change_key` of the guard's diff: removed and added lines, no context), so
    a fix refused alone is recognised exactly after other fixes moved the lines around it."""
    edits = _fix_edits(finding, text.splitlines(keepends=True), kind)
    return change_key(unified_diff(path, text, _apply_edits(text, edits))) if edits else ""


_NO_CAP = 10**9


def _within_cap(keyed: dict[str, list[str]], cap: dict[str, int]) -> dict[str, list[str]]:
    """The planned fixes, cut to the first n when one of them was in a refused patch since
    the plan (n: the smallest cap among them): a retry of a refused item tries a half."""
    flat = [k for p in sorted(keyed) for k in keyed[p]]
    most = min([cap.get(k, _NO_CAP) for k in flat] + [_NO_CAP])
    if most >= len(flat):
        return keyed
    keep = set(flat[:most])
    return {p: [k for k in ks if k in keep] for p, ks in keyed.items() if set(ks) & keep}


def _groups(
    text: str, fixes: list[tuple[dict[str, Any], str]], kind: str, limit: int, cap: dict[str, int]
) -> list[list[tuple[dict[str, Any], str]]]:
    """A rule's fixes in one file, (finding, fix key) top of file first, split into the groups
    each patch takes: within the per-file limit, measured on the file's text (a fix's edits
    often rewrite more than they change: PYI026 and UP035 rewrite a whole `from typing import
    (...)` block to add or drop one name, and fixes that share such an edit change those lines
    once), and no larger than any member's cap (a fix in a refused patch goes, next time, in
    one half that size). Without the text: estimated from the edits alone."""
    out: list[list[tuple[dict[str, Any], str]]] = []
    group: list[tuple[dict[str, Any], str]] = []
    lines = text.splitlines(keepends=True)
    chosen: list[Edit] = []
    size = 0
    for f, key in fixes:
        most = min(cap.get(k, _NO_CAP) for _f, k in [*group, (f, key)])
        if text:
            edits = _fix_edits(f, lines, kind) or []
            new = [e for e in edits if e not in chosen]
            # Edits that overlap without being the same cannot be applied together here; the
            # execute phase takes such fixes one at a time, re-linting between.
            fits = not _overlaps(new, chosen) and (
                _changed_lines(text, _apply_edits(text, chosen + new)) <= limit
            )
        else:
            new, fits = [], size + _estimate(f) <= limit
        if group and (not fits or len(group) >= most):
            out.append(group)
            group, chosen, size = [], [], 0
            new = (_fix_edits(f, lines, kind) or []) if text else []
        group.append((f, key))
        chosen, size = chosen + new, size + _estimate(f)
    return [*out, group] if group else out


def _pack(
    per_file: dict[str, list[list[tuple[dict[str, Any], str]]]], cap: dict[str, int]
) -> list[dict[str, list[tuple[dict[str, Any], str]]]]:
    """One rule's patches: a group from each of several files, each file within the line
    limit (the guard's limit is per file), so a rule with one fix in each of twelve files costs
    one item, not twelve. A patch holds no more fixes than any member's cap."""
    pending = {p: list(gs) for p, gs in sorted(per_file.items()) if gs}
    patches: list[dict[str, list[tuple[dict[str, Any], str]]]] = []
    while pending:
        patch: dict[str, list[tuple[dict[str, Any], str]]] = {}
        total, most = 0, _NO_CAP
        for path in list(pending):
            group = pending[path][0]
            limit = min([most] + [cap.get(k, _NO_CAP) for _f, k in group])
            if patch and total + len(group) > limit:
                continue
            patch[path], total, most = group, total + len(group), limit
            pending[path].pop(0)
            if not pending[path]:
                del pending[path]
        patches.append(patch)
    return patches


def _why_no_fix(text: str, findings: list[dict[str, Any]], kind: str, budget: int) -> str:
    lines = text.splitlines(keepends=True)
    sizes = [
        _changed_lines(text, _apply_edits(text, edits))
        for f in findings
        if (edits := _fix_edits(f, lines, kind)) is not None
    ]
    if not sizes:
        return "no fix applies"
    if min(sizes) > budget:
        return f"over the per-file limit ({min(sizes)} lines in 1 file)"
    return "each fix within the line limit would leave a new ruff finding"


def _gates_left(ctx: dict[str, Any]) -> list[str]:
    """What this provider cannot do for each gate of the block that has something left to do:
    a gate with no findings (no broken contract) needs no excuse."""
    gates = list(ctx.get("block", {}).get("gates") or [])
    findings = ctx.get("findings") or {}
    left = {g for g in gates if findings.get(g) or g == "pytest"}
    if ctx.get("contracts_broken"):
        left.add("imports")
    return [f"{g}: {CANNOT[g]}" for g in gates if g in CANNOT and g in left]


def unfixable_notes(ctx: dict[str, Any]) -> list[str]:
    """Why the ruff findings without a fix to propose are left, each reason with its own count:
    a finding with a fix outside the lanes is not one with "no fix"."""
    lanes = list(ctx.get("lanes") or [])
    why: Counter[str] = Counter()
    for f in ctx.get("findings", {}).get("ruff", []):
        applicability = _applicability(f)
        if applicability is None:
            why["no automatic fix"] += 1
        elif applicability not in (SAFE, UNSAFE):
            why[f"only a fix ruff marks {applicability} (it shows it, never applies it)"] += 1
        elif not _in_lanes(f["path"], lanes):
            why["a fix, in a file outside this block's lanes"] += 1
    return [
        f"ruff: {n} finding{'s have' if n != 1 else ' has'} {w}" for w, n in sorted(why.items())
    ]


# The plan's notes that count or name what is left, as `_plan` writes them.
_COUNTED = re.compile(r"^ruff: \d+ findings? ha(?:s|ve) ")
_RULE_NOTE = re.compile(r"^ruff (?P<rule>[A-Za-z]+[0-9]+) in (?P<path>.+?)(?: \(unsafe fix\))?: ")


def notes_at_end(planned: list[str], ctx: dict[str, Any]) -> list[str]:
    """The last plan's `cannot_do`, made true of the block's end (`ctx`: the block context of
    its final gate run). That plan counted what was left before its own round's fixes landed
    and before any revert, so a block that ran out of rounds said "17 findings have no
    automatic fix" of a tree that had 16. The counts are made again from the final findings; a
    gate's note stays only if that gate has something left, a rule's note only if the rule
    still has findings in that file; the other notes (a format over the limit) stand."""
    gate_notes = {f"{g}: {why}" for g, why in CANNOT.items()}
    gates_left = set(_gates_left(ctx))
    findings = ctx.get("findings", {}).get("ruff", [])
    left = {(str(f.get("code")), str(f.get("path"))) for f in findings}
    head: list[str] = []
    rest: list[str] = []
    for note in planned:
        rule = _RULE_NOTE.match(note)
        if note in gate_notes:
            head += [note] if note in gates_left else []
        elif not _COUNTED.match(note) and (rule is None or (rule["rule"], rule["path"]) in left):
            rest.append(note)
    ruff = "ruff" in (ctx.get("block", {}).get("gates") or [])
    return [*head, *(unfixable_notes(ctx) if ruff else []), *rest]


class BuiltinProvider:
    name = "builtin"
    model = "builtin-rules"

    def __init__(self) -> None:
        # Items whose execution found nothing to propose, keyed by the findings they were for:
        # listing them again would only end the next round early.
        self._dead: dict[tuple[str, str, str, frozenset[str]], str] = {}
        # The fixes each proposed patch held (its change_key -> per file, their fix keys): when
        # the loop refuses or reverts the patch, exactly those fixes become suspect.
        self._sent: dict[str, dict[str, list[str]]] = {}
        # This round's items (id -> per file, the fix keys the item takes).
        self._planned: dict[str, tuple[str, dict[str, list[str]]]] = {}

    def _suspects(self, ctx: dict[str, Any]) -> _Suspects:
        """A refused patch of one fix bans that fix; of n fixes, its fixes go again in patches
        of at most n // 2 (delta debugging by halves, across rounds), so the innocent ones land
        and the harmful one ends alone and refused. A refused change it did not make itself
        (another provider's, an earlier run's) leaves its rule in its files, as it cannot tell
        which fix it was."""
        out = _Suspects()
        for a in _avoid(ctx):
            pid = str(a.get("patch_id") or "")
            why = str(a.get("reason") or "refused or reverted earlier in this run")
            sent = self._sent.get(pid)
            if sent is None:
                if pid:
                    out.banned.setdefault(pid, why)
                if a.get("rule"):
                    for path in a.get("paths") or [a.get("path")]:
                        out.rules.setdefault((str(path), str(a["rule"])), why)
                continue
            keys = [k for ks in sent.values() for k in ks]
            if len(keys) == 1:
                out.banned.setdefault(keys[0], why)
            for k in keys:
                out.cap[k] = min(out.cap.get(k, _NO_CAP), max(1, len(keys) // 2))
        return out

    def complete(self, request: ModelRequest) -> ModelResponse:
        ctx = request.context
        if request.phase == "plan":
            return self._plan(ctx)
        if request.phase == "todo":
            return self._todo(ctx)
        return self._execute(ctx)

    # --------------------------------------------------------------- what there is to do
    def _candidates(self, ctx: dict[str, Any]) -> tuple[list[_Candidate], list[str]]:
        """Every (file, rule) patch to propose, in order (safe fixes, unsafe fixes, formats),
        and why each of the others is not proposed."""
        lanes = list(ctx.get("lanes") or [])
        gates = list(ctx.get("block", {}).get("gates") or [])
        if "ruff" not in gates and not format_commands(ctx):
            return [], []
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for f in ctx.get("findings", {}).get("ruff", []) if "ruff" in gates else []:
            kind = _applicability(f)
            if kind in (SAFE, UNSAFE) and _in_lanes(f["path"], lanes):
                groups.setdefault((kind, f["path"], f["code"]), []).append(f)
        out: list[_Candidate] = []
        skipped: list[str] = []
        suspects = self._suspects(ctx)
        flake8 = _flake8_config(ctx)
        too_old = older_than_ruff(ctx.get("lint"))
        for (kind, path, rule), found in sorted(groups.items(), key=lambda kv: kv[0][0] != SAFE):
            label = f"ruff {rule} in {path}" + (" (unsafe fix)" if kind == UNSAFE else "")
            if rule == "RUF100" and flake8:
                skipped.append(f"{label}: flake8 reads the same `# noqa` ({flake8})")
                continue
            if too_old and rule.startswith("UP"):
                skipped.append(f"{label}: {too_old}")
                continue
            text = _read(ctx, path)
            why = (
                suspects.rules.get((path, rule))
                or self._dead.get((kind, path, rule, _fingerprints(found)))
                or self._dead.get((kind, path, rule, _text_key(text)))
            )
            found = sorted(found, key=_by_line)
            keys = [fix_key(path, text, f, kind) if text else "" for f in found]
            # Exactly the fixes refused alone are left; the rule's other fixes are proposed.
            banned = [suspects.banned[k] for k in keys if k in suspects.banned]
            kept = [(f, k) for f, k in zip(found, keys, strict=True) if k not in suspects.banned]
            if banned and not why:
                n = len(banned)
                skipped.append(f"{label}: {n} fix{'es' * (n != 1)} {banned[0]}")
            if why or not kept:
                if why:
                    skipped.append(f"{label}: {why}")
                continue
            mine = _Candidate(Work(kind, rule, path), [f for f, _k in kept], 0)
            mine.keys = [k for _f, k in kept]
            out.append(mine)
        out.sort(key=lambda c: (c.work.kind != SAFE, c.work.path, c.work.rule))
        if format_commands(ctx):
            sizes, failed = format_sizes(ctx)
            if failed:
                skipped.append(f"ruff format: {failed}")
            limit = int(ctx.get("max_lines", 20))
            over = {p: n for p, n in sizes.items() if n > limit and _in_lanes(p, lanes)}
            for path, n in sorted(sizes.items()):
                if not n or path in over or not _in_lanes(path, lanes):
                    continue
                why = _avoided_rule(ctx, path, FORMAT) or self._dead.get(
                    (FORMAT, path, FORMAT, _text_key(_read(ctx, path)))
                )
                if why:
                    skipped.append(f"ruff format {path}: {why}")
                    continue
                out.append(_Candidate(Work(FORMAT, FORMAT, path), [], n))
            if over:
                skipped.append(
                    f"ruff format: over the per-file limit "
                    f"({sum(over.values())} lines in {len(over)} files: "
                    f"{', '.join(sorted(over)[:5])}{', ...' if len(over) > 5 else ''})"
                )
        return out, skipped

    def _plan(self, ctx: dict[str, Any]) -> ModelResponse:
        gates = list(ctx.get("block", {}).get("gates") or [])
        cannot = _gates_left(ctx)
        candidates, skipped = self._candidates(ctx)
        limit = ctx.get("max_lines", 20)
        steps = []
        for kind, what in ((SAFE, "safe fixes"), (UNSAFE, "unsafe fixes")):
            mine = [c for c in candidates if c.work.kind == kind]
            if mine:
                count = sum(len(c.findings) for c in mine)
                files = len({c.work.path for c in mine})
                steps.append(
                    f"Apply ruff's {what} ({count} in {files} files), one rule per patch, at "
                    f"most {limit} changed lines per file; a fix that would leave a "
                    "new finding is left out, the others of its rule kept."
                    + (" Each may change behaviour: the gates decide." if kind == UNSAFE else "")
                )
        formats = [c for c in candidates if c.work.kind == FORMAT]
        if formats:
            steps.append(f"Run ruff format on {len(formats)} files, one file per patch.")
        if "ruff" in gates:
            cannot += unfixable_notes(ctx)
        cannot += skipped
        summary = " ".join(steps) if steps else "Nothing in this block can be fixed by rules."
        plan = {"summary": summary, "steps": steps, "cannot_do": cannot}
        return ModelResponse(tool="submit_plan", input=plan, model=self.model)

    def _todo(self, ctx: dict[str, Any]) -> ModelResponse:
        """One rule per item: each item takes as many of the rule's fixes as the per-file
        limit allows, in as many files as that rule has fixes in, so the item budget goes
        on fixes, not on files; the items that fix the most come first (safe fixes, then
        unsafe ones, then formats)."""
        max_items = int(ctx.get("max_items", 12))
        limit = int(ctx.get("max_lines", 20))
        candidates, _ = self._candidates(ctx)
        cap = self._suspects(ctx).cap
        by_rule: dict[tuple[str, str], dict[str, list[list[tuple[dict[str, Any], str]]]]] = {}
        totals: Counter[tuple[str, str]] = Counter()
        planned: list[tuple[tuple[int, int, str], dict[str, Any], dict[str, list[str]]]] = []
        for c in candidates:
            w = c.work
            if w.kind == FORMAT:
                title = f"ruff format {w.path} ({c.size} changed line{'s' * (c.size != 1)})"
                item = {"title": title, "files": [w.path], "gate": "ruff"}
                planned.append(((2, 0, title), item, {}))
                continue
            fixes = list(zip(c.findings, c.keys or [""] * len(c.findings), strict=True))
            groups = _groups(_read(ctx, w.path), fixes, w.kind, limit, cap)
            by_rule.setdefault((w.kind, w.rule), {})[w.path] = groups
            totals[(w.kind, w.rule)] += len(fixes)
        for (kind, rule), per_file in by_rule.items():
            for patch in _pack(per_file, cap):
                take = sum(len(g) for g in patch.values())
                if len(patch) == 1:
                    (path,) = patch
                    total = sum(len(g) for g in per_file[path])
                    title = _rule_title(kind, rule, path, take, total)
                else:
                    title = _rule_title(kind, rule, f"{len(patch)} files", take, totals[kind, rule])
                keys = {p: [k for _f, k in g] for p, g in patch.items()}
                item = {"title": title, "files": sorted(patch), "gate": "ruff"}
                planned.append(((0 if kind == SAFE else 1, -take, title), item, keys))
        planned.sort(key=lambda t: t[0])
        items: list[dict[str, Any]] = []
        self._planned = {}
        for _order, listed, keys in planned[:max_items]:
            item_id = f"R{len(items) + 1}"
            items.append({"id": item_id, **listed})
            if keys and all(all(ks) for ks in keys.values()):
                self._planned[item_id] = (str(listed["title"]), keys)
        return ModelResponse(tool="submit_todos", input={"items": items}, model=self.model)

    # --------------------------------------------------------------- one patch
    def _execute(self, ctx: dict[str, Any]) -> ModelResponse:
        item = ctx["item"]
        # Halve the budget on each retry, so a guard that counts differently still gets a
        # patch it accepts.
        budget = max(1, int(ctx.get("max_lines", 20)) >> int(ctx.get("attempt", 0)))
        findings = [f for f in ctx.get("findings", []) if f.get("gate") == "ruff"]
        work = item_work(str(item.get("title", "")))
        several = work is not None and _SEVERAL.match(work.path) is not None
        paths = [work.path] if work and not several else list(item.get("files", []))
        # The fixes the todo phase gave this item; without them (a replayed item, or the
        # text changed under a fix), the title's count, top of file first.
        planned = self._planned.get(str(item.get("id")))
        keyed = planned[1] if planned and planned[0] == item.get("title") else None
        suspects = self._suspects(ctx)
        refused_alone = suspects.banned
        banned = set(refused_alone)
        if keyed is not None:
            keyed = _within_cap(keyed, suspects.cap)
        diffs: list[str] = []
        sent: dict[str, list[str]] = {}
        why = "no fix applies"
        for path in paths:
            text = ctx.get("files", {}).get(path)
            if text is None:
                continue
            mine = [f for f in findings if f.get("path") == path]
            lint = ctx.get("lint")
            if not mine and isinstance(lint, dict) and (work is None or work.kind != FORMAT):
                # The loop checks only `.py` files before asking (a `.pyi` stub comes with no
                # findings): what ruff says of the text is what the reason must be about.
                mine = project_linter(lint)(path, text)
            if keyed is not None and path not in keyed:
                continue  # left for a later item: a half of a refused patch is tried first
            if work is not None and work.kind == FORMAT:
                diff, why = self._format_patch(ctx, path, text, budget)
            else:
                keys = set(keyed[path]) if keyed is not None else None
                new, taken = self._fix_text(ctx, work, path, text, mine, budget, keys, banned)
                diff = unified_diff(path, text, new) if new != text else ""
                sent[path] = taken
            if diff:
                diffs.append(diff)
                if work is None or work.kind == FORMAT:
                    break  # another provider's item, or a format: one file, as before
                continue
            if work is not None:
                chosen = [f for f in mine if f.get("code") == work.rule]
                if work.kind != FORMAT:
                    why = _why_no_fix(text, chosen, work.kind, budget)
                    # The rule's only fixes left are ones the loop refused alone: say so.
                    fixable = [f for f in chosen if _applicability(f) == work.kind]
                    was = [
                        refused_alone[k]
                        for f in fixable
                        if (k := fix_key(path, text, f, work.kind)) in refused_alone
                    ]
                    if was and len(was) == len(fixable):
                        why = f"the same change was {was[0]}"
                self._mark_dead(work, path, text, chosen, why)
        if diffs:
            diff = "".join(diffs)
            refused = self._avoided_patch(ctx, diff)
            if refused is None:
                if any(sent.values()):
                    self._sent[change_key(diff)] = {p: ks for p, ks in sent.items() if ks}
                return self._proposal(item, diff, work, findings)
            why = f"the same change was {refused}"
            if work is not None and len(paths) == 1:
                text = ctx["files"][paths[0]]
                chosen = [f for f in findings if f.get("code") == work.rule]
                self._mark_dead(work, paths[0], text, chosen, why)
        missing = ctx.get("missing") or {}
        unseen = [p for p in paths if p not in ctx.get("files", {})]
        # Saying "no fix applies" about a file it never saw would be a false claim.
        if unseen and not diffs:
            why = (
                "not given the text of "
                + ", ".join(f"{p} ({missing.get(p, 'unreadable')})" for p in unseen)
                + "; cannot build a patch for it"
            )
        skip = {"item_id": item["id"], "action": "skip", "explanation": why}
        return ModelResponse(tool="propose_patch", input=skip, model=self.model)

    def _mark_dead(
        self, work: Work, path: str, text: str, chosen: list[dict[str, Any]], why: str
    ) -> None:
        # By the text too: the same text gives ruff the same fixes, whether or not the
        # findings it was listed for carry the gate's fingerprints.
        self._dead[(work.kind, path, work.rule, _text_key(text))] = why
        if work.kind != FORMAT:
            self._dead[(work.kind, path, work.rule, _fingerprints(chosen))] = why

    def _proposal(
        self, item: dict[str, Any], diff: str, work: Work | None, mine: list[dict[str, Any]]
    ) -> ModelResponse:
        if work is None:
            what = "ruff safe fixes: " + ", ".join(sorted({str(f["code"]) for f in mine}))
        elif work.kind == FORMAT:
            what = f"ruff format of {work.path}"
        else:
            what = f"ruff {work.kind} fixes of {work.rule} in {work.path}"
        proposal = {"item_id": item["id"], "action": "patch", "diff": diff, "explanation": what}
        return ModelResponse(tool="propose_patch", input=proposal, model=self.model)

    @staticmethod
    def _fix_text(
        ctx: dict[str, Any],
        work: Work | None,
        path: str,
        text: str,
        mine: list[dict[str, Any]],
        budget: int,
        keys: set[str] | None,
        banned: set[str],
    ) -> tuple[str, list[str]]:
        """The file's new text, and the fix keys of the fixes it took (what becomes suspect if
        the loop refuses the patch)."""
        # An item of another provider's making (a replayed run): all safe fixes of the file.
        rule, kind, take = (work.rule, work.kind, work.take) if work else (None, SAFE, 0)
        if keys is not None:
            take = 0  # the planned fixes, as many of them as fit
        lint = ctx.get("lint")
        if not isinstance(lint, dict):
            if not text.endswith("\n"):
                return text, []
            pick = [f for f in mine if fix_key(path, text, f, kind) not in banned]
            new, _n = _greedy(text, pick, budget, rule, kind, take)
            return new, []
        linter = project_linter(lint)

        def fixes(t: str) -> Counter[str]:
            # A multiset: fixes of identical lines have one key, and each is a fix to count.
            return Counter(
                fix_key(path, t, f, kind)
                for f in linter(path, t)
                if rule in (None, f["code"]) and _applicability(f) == kind
            )

        if keys is not None and not keys & set(fixes(text)):
            # A fix that shares an edit with one landed since the plan (PYI026's rewritten
            # import) changes with it: take as many, top of file first.
            take, keys = len(keys), None
        new = checked_fix_text(
            path,
            text,
            linter,
            budget,
            rule=rule,
            applicability=kind,
            take=take,
            keys=keys,
            banned=banned,
        )
        if new == text:
            return text, []
        return new, sorted(k for k in (fixes(text) - fixes(new)).elements() if k)

    @staticmethod
    def _format_patch(ctx: dict[str, Any], path: str, text: str, budget: int) -> tuple[str, str]:
        formatted, why = format_text(ctx, path, text)
        if formatted is None:
            return "", why
        if formatted == text:
            return "", "ruff format leaves the file as it is"
        n = _changed_lines(text, formatted)
        if n > budget:
            return "", f"over the per-file limit ({n} lines in 1 file)"
        lint = ctx.get("lint")
        if isinstance(lint, dict):
            linter = project_linter(lint)
            new = _new(linter(path, text), linter(path, formatted))
            if new:
                return "", f"ruff format would add a finding: {new[0]['code']} {new[0]['message']}"
        return unified_diff(path, text, formatted), ""

    @staticmethod
    def _avoided_patch(ctx: dict[str, Any], diff: str) -> str | None:
        """Why the loop refused or reverted this very change earlier in the run, if it did."""
        reasons = {
            str(a.get("patch_id")): a.get("reason") for a in _avoid(ctx) if a.get("patch_id")
        }
        if not reasons:
            return None
        # The loop keys its ledger by the change itself, without context (gitutil.change_key).
        pid = change_key(diff)
        if pid in reasons:
            return str(reasons[pid] or "refused or reverted earlier in this run")
        return None
