"""check_patch: parse, repair, apply in memory, count, and judge. Never touches the repo."""

from __future__ import annotations

import hashlib
import stat
import time
from pathlib import Path

from harness.errors import GitError, PatchError
from harness.guard.locate import apply_hunks
from harness.guard.models import FileStat, LayerRun, Verdict, Violation
from harness.guard.parse import FilePatch, RawSection, parse_patch, prepare_patch
from harness.guard.rules import RULES, SECRET_RULES, FileChange, RepoView, evaluate, path_problem
from harness.guard.textdiff import edits, render_hunks, split_lines
from harness.policy import GuardConfig
from harness.proc import run

_REGULAR = "100644"
_ALLOWED_MODES = (None, "100644", "100755")


def sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


class _Tree:
    """The repository as the patch sees it: disk, overlaid with earlier sections of the patch."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.overlay: dict[str, str | None] = {}
        self.original: dict[str, bytes | None] = {}
        self.modes: dict[str, int] = {}
        self.renames: dict[str, str] = {}  # new path -> old path

    def _disk(self, path: str) -> bytes | None:
        if path in self.original:
            return self.original[path]
        # The path is model input: every file system call on it may fail (a name too long,
        # a byte the OS refuses), and each such failure is a refusal, never a crash.
        try:
            data = self._read_disk(path)
        except FileNotFoundError:
            data = None
        except NotADirectoryError as exc:
            raise _PathRefused(f"{path}: a parent of this path is a file, not a directory") from exc
        except (OSError, ValueError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            raise _PathRefused(f"{path}: cannot be read ({why})") from exc
        self.original[path] = data
        return data

    def _read_disk(self, path: str) -> bytes:
        # A symlink anywhere on the way could point outside the repository.
        cur = self.root
        for part in path.split("/"):
            cur = cur / part
            if cur.is_symlink():
                raise _PathRefused(
                    f"{path}: {cur.relative_to(self.root)} is a symlink; "
                    "patches may not touch symlinks"
                )
        full = self.root / path
        st = full.stat()
        if not stat.S_ISREG(st.st_mode):
            raise _PathRefused(f"{path} is not a regular file")
        self.modes[path] = st.st_mode
        return full.read_bytes()

    def text_before(self, path: str) -> str | None:
        """A file as it is on disk, for rules that look past the patch; None if unreadable."""
        try:
            data = self._disk(path)
        except _PathRefused:
            return None
        return data.decode("utf-8", "replace") if data is not None else None

    def read(self, path: str) -> str | None:
        if path in self.overlay:
            return self.overlay[path]
        data = self._disk(path)
        if data is None:
            return None
        if b"\x00" in data:
            raise _PathRefused(f"{path} is a binary file; patches may only change text files")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _PathRefused(f"{path} is not UTF-8 text; patches may only change text") from exc


class _PathRefused(Exception):
    pass


def _mode_problem(fp: FilePatch) -> str | None:
    for mode in (fp.old_mode, fp.new_mode):
        if mode == "120000":
            return f"{fp.path}: symlinks may not be created or changed by a patch"
        if mode == "160000":
            return f"{fp.path}: submodules may not be changed by a patch"
        if mode not in _ALLOWED_MODES:
            return f"{fp.path}: unsupported file mode {mode}"
    if fp.old_path and fp.new_path and fp.old_mode and fp.new_mode and fp.old_mode != fp.new_mode:
        return f"{fp.path}: changes the file mode {fp.old_mode} -> {fp.new_mode}; leave modes alone"
    if fp.old_path is None and fp.new_mode not in (None, _REGULAR):
        return f"{fp.path}: new files must be regular non-executable files (mode 100644)"
    return None


def _apply_file(fp: FilePatch, tree: _Tree, repairs: list[str]) -> None:
    """Compute the file's new text into tree.overlay; raises PatchError/_PathRefused."""
    if fp.binary:
        raise _PathRefused(f"{fp.path}: binary patches are not accepted")
    if fp.copy:
        raise PatchError(f"{fp.path}: copy patches are not supported; add the file as new")
    problem = _mode_problem(fp)
    if problem:
        raise _PathRefused(problem)
    if fp.old_path is None:
        if fp.new_path is None:
            raise PatchError("a file section has /dev/null on both sides; name the file")
        if tree.read(fp.new_path) is not None:
            raise PatchError(
                f"{fp.new_path} already exists; send a diff against its current content "
                "instead of '--- /dev/null'"
            )
        text = ""
        if fp.hunks:
            if any(g != "+" for h in fp.hunks for g in h.tags):
                raise PatchError(f"{fp.new_path} is a new file, so its hunks may only add lines")
            text, _ = apply_hunks("", fp.hunks, fp.new_path)
        tree.overlay[fp.new_path] = text
        return
    old = tree.read(fp.old_path)
    if old is None:
        raise PatchError(
            f"{fp.old_path} does not exist; to create it use '--- /dev/null' and "
            f"'+++ b/{fp.old_path}'"
        )
    new, placed = apply_hunks(old, fp.hunks, fp.path) if fp.hunks else (old, [])
    repairs.extend(placed)
    if fp.new_path is None:
        if new:
            left = len(split_lines(new))
            raise PatchError(
                f"{fp.old_path}: the deletion leaves {left} line(s); a deleted file's diff "
                "must remove every line"
            )
        tree.overlay[fp.old_path] = None
        return
    if fp.new_path != fp.old_path:
        if tree.read(fp.new_path) is not None:
            raise PatchError(f"cannot rename {fp.old_path} to {fp.new_path}: it exists")
        tree.overlay[fp.old_path] = None
    tree.overlay[fp.new_path] = new


def _change(
    old_path: str | None, new_path: str | None, old: str | None, new: str | None
) -> FileChange:
    a = split_lines(old or "")
    b = split_lines(new or "")
    fc = FileChange(old_path, new_path, old, new, old_lines=a, new_lines=b)
    fc.script = edits(a, b)
    for e in fc.script:
        if e.tag == "change":
            fc.removed_lines.extend((i + 1, a[i].rstrip("\r\n")) for i in range(e.a0, e.a1))
            fc.added_lines.extend((j + 1, b[j].rstrip("\r\n")) for j in range(e.b0, e.b1))
    fc.added, fc.removed = len(fc.added_lines), len(fc.removed_lines)
    return fc


def _render(fc: FileChange, mode: str) -> str:
    old_name, new_name = fc.old_path or fc.new_path, fc.new_path or fc.old_path
    head = [f"diff --git a/{old_name} b/{new_name}\n"]
    if fc.old_path is None:
        head.append(f"new file mode {_REGULAR}\n")
    elif fc.new_path is None:
        head.append(f"deleted file mode {mode}\n")
    elif fc.old_path != fc.new_path:
        head.extend((f"rename from {fc.old_path}\n", f"rename to {fc.new_path}\n"))
    hunks = render_hunks(fc.old_lines, fc.new_lines, script=fc.script)
    if hunks:
        head.append(f"--- {'a/' + fc.old_path if fc.old_path else '/dev/null'}\n")
        head.append(f"+++ {'b/' + fc.new_path if fc.new_path else '/dev/null'}\n")
    return "".join(head + hunks)


def _changes(tree: _Tree) -> list[FileChange]:
    """One FileChange per touched path, pairing a rename's source and target."""
    out: list[FileChange] = []
    renamed_from = tree.renames
    used: set[str] = set()
    for path, new in tree.overlay.items():
        if path in used:
            continue
        data = tree.original.get(path)
        old = data.decode("utf-8") if data is not None else None
        src = renamed_from.get(path)
        if src is not None and new is not None:
            used.add(src)
            if old is not None:
                # The rename lands on a file the patch deleted: that deletion is a change of
                # its own, or the file's removal would count as +0 -0.
                out.append(_change(path, None, old, None))
            src_data = tree.original.get(src)
            out.append(_change(src, path, src_data.decode("utf-8") if src_data else "", new))
            continue
        if path in renamed_from.values() and new is None:
            continue
        if old == new:
            continue
        old_p = path if old is not None else None
        out.append(_change(old_p, path if new is not None else None, old, new))
    return out


def _stub_problems(changes: list[FileChange], tree: _Tree, cfg: GuardConfig) -> list[Violation]:
    """A new .pyi beside a .py makes mypy read the stub instead of the module."""
    if not cfg.protect_gate_config:
        return []
    out: list[Violation] = []
    for fc in changes:
        new = fc.new_path
        if not new or not new.endswith(".pyi") or fc.old_path == new:
            continue
        module = new[:-1]
        try:
            exists = tree.read(module) is not None
        except _PathRefused:
            exists = True
        if exists:
            out.append(
                Violation(
                    rule="gate_config",
                    path=new,
                    message=f"{new} would hide {module} from mypy (a stub wins over the "
                    "module); add type annotations to the module instead",
                )
            )
    return out


def _ignored_problems(changes: list[FileChange], root: Path) -> list[Violation]:
    """A new file that git ignores is invisible to the gates and to the commit."""
    new_paths = [fc.new_path for fc in changes if fc.new_path and fc.old_path != fc.new_path]
    if not new_paths:
        return []
    res = run(
        ["git", "check-ignore", "--no-index", "--stdin", "-z"],
        root,
        stdin="\0".join(new_paths) + "\0",
        timeout=60,
    )
    if res.returncode not in (0, 1):
        raise GitError(f"git check-ignore failed in {root}: {res.tail or res.returncode}")
    ignored = [p for p in res.stdout.split("\0") if p]
    return [
        Violation(
            rule="paths",
            path=p,
            message=f"{p} is ignored by git (.gitignore), so the gates and the commit would "
            "not see it; put the file somewhere that is not ignored",
        )
        for p in ignored
    ]


# Caps on the diff as written, checked before it is parsed. A changed line counts as one
# line whatever its length, and a hunk may remove and re-add lines that do not change, so
# neither the line limit nor the final counts bound the work of reading a patch: these do.
# The secrets layer reads every added character (about 4 us each in detect-secrets, more on
# long lines), so the added text is bounded as a whole and per line.
MAX_PATCH_CHARS = 2_000_000
MAX_ADDED_CHARS = 250_000
MAX_LINE_CHARS = 5_000
RAW_LINES_PER_LIMIT = 50  # '+'/'-' lines per file: 50 x the limit, and at least 1,000
_MIN_RAW_LINES = 1_000


def _raw_size_problems(sections: list[RawSection], cfg: GuardConfig) -> list[Violation]:
    """Refusals decided from the diff's own line counts, before it is parsed or applied.

    A file's line count changes by exactly (lines added - lines removed) however the hunks
    land, and both ways of counting changed lines are at least that difference; so a file
    whose difference is over the limit is refused here for the price of counting lines,
    before parsing, applying, diffing and every other rule. Sections of one file (the same
    path, or linked by a rename) count together.
    """
    limit = cfg.max_changed_lines_per_file
    group: dict[str, int] = {}
    totals: dict[int, RawSection] = {}
    for idx, sec in enumerate(sections):
        paths = [p for p in (sec.old_path, sec.new_path) if p]
        g = next((group[p] for p in paths if p in group), idx)
        for p in paths:
            group[p] = g
        tot = totals.setdefault(g, RawSection(sec.old_path, sec.new_path))
        tot.new_path = sec.new_path or sec.old_path or tot.new_path
        tot.added += sec.added
        tot.removed += sec.removed
        tot.longest = max(tot.longest, sec.longest)
        tot.added_chars += sec.added_chars
    raw_cap = max(_MIN_RAW_LINES, RAW_LINES_PER_LIMIT * limit)
    out: list[Violation] = []
    for tot in totals.values():
        path = tot.new_path or tot.old_path or "?"
        net = tot.added - tot.removed
        if abs(net) > limit:
            how = "added + removed" if cfg.count_method == "numstat" else "max(added, removed)"
            more = f"adds {net} more lines than it removes" if net > 0 else ""
            more = more or f"removes {-net} more lines than it adds"
            out.append(
                Violation(
                    rule="size",
                    path=path,
                    message=f"{path}: at least {abs(net)} changed lines ({how}; the diff {more}), "
                    f"the limit is {limit} per file; make a smaller change and do the rest in a "
                    "later patch",
                )
            )
            continue
        if tot.added + tot.removed > raw_cap:
            more = f"has {tot.added} '+' and {tot.removed} '-' lines"
            why = f"the guard reads at most {raw_cap} per file; send only the lines that change"
        elif tot.longest > MAX_LINE_CHARS:
            more = f"adds a line of {tot.longest:,} characters"
            why = f"the guard accepts lines of up to {MAX_LINE_CHARS:,}"
        else:
            continue
        out.append(
            Violation(
                rule="size",
                path=path,
                message=f"{path}: the diff {more}, {why}; make a smaller change and do the "
                "rest in a later patch",
            )
        )
    added = sum(t.added_chars for t in totals.values())
    if not out and added > MAX_ADDED_CHARS:
        out.append(
            Violation(
                rule="size",
                message=f"the patch adds {added:,} characters, over the guard's "
                f"{MAX_ADDED_CHARS:,}; split it into smaller patches",
            )
        )
    return out


def _too_long(text: str) -> list[Violation]:
    if len(text) <= MAX_PATCH_CHARS:
        return []
    return [
        Violation(
            rule="size",
            message=f"the patch is {len(text):,} characters long, over the guard's "
            f"{MAX_PATCH_CHARS:,}; split it into smaller patches",
        )
    ]


def check_patch(text: str, repo: Path, cfg: GuardConfig) -> Verdict:
    """Judge a model's diff against the repository's working tree and the policy."""
    root = Path(repo).resolve()
    if not (root / ".git").exists():
        raise GitError(f"not a git repository: {repo}")
    started = time.monotonic()
    try:
        prepared = None if len(text) > MAX_PATCH_CHARS else prepare_patch(text)
        too_big = _raw_size_problems(prepared.sections, cfg) if prepared else _too_long(text)
        if too_big or prepared is None:
            return Verdict(
                accepted=False,
                violations=too_big,
                layers=[
                    LayerRun(
                        layer="static",
                        ran=True,
                        why="refused on the diff's line counts, before applying it",
                        seconds=time.monotonic() - started,
                    ),
                    LayerRun(layer="secrets", ran=False, why="the static layer refused"),
                ],
            )
        parsed = parse_patch(prepared)
    except PatchError as exc:
        return Verdict(accepted=False, violations=[Violation(rule="parse", message=str(exc))])
    repairs = list(parsed.repairs)
    violations: list[Violation] = []
    tree = _Tree(root)
    for fp in parsed.files:
        bad = [p for p in (fp.old_path, fp.new_path) if p is not None and path_problem(p)]
        if bad:
            msg = str(path_problem(bad[0]))
            violations.append(Violation(rule="paths", path=bad[0], message=msg))
            continue
        try:
            _apply_file(fp, tree, repairs)
        except _PathRefused as exc:
            violations.append(Violation(rule="paths", path=fp.path, message=str(exc)))
        except PatchError as exc:
            violations.append(Violation(rule="locate", path=fp.path, message=str(exc)))
        else:
            if fp.old_path and fp.new_path and fp.old_path != fp.new_path:
                tree.renames[fp.new_path] = fp.old_path
    changes = _changes(tree)
    if not changes and not violations:
        violations.append(Violation(rule="parse", message="the patch changes nothing"))
    # The size rule first: the other rules parse and tokenize whole files, and a patch the
    # size rule refuses gets no verdict from them worth that cost.
    size_only = {name: rule for name, rule in RULES.items() if name == "size"}
    violations.extend(evaluate(changes, cfg, size_only))
    static_why = ""
    if any(v.rule == "size" for v in violations):
        static_why = "the size rule refused; the other static rules did not run"
    else:
        rest = {name: rule for name, rule in RULES.items() if name not in size_only}
        violations.extend(evaluate(changes, cfg, rest, repo=RepoView(root, tree.text_before)))
        violations.extend(_stub_problems(changes, tree, cfg))
        violations.extend(_ignored_problems(changes, root))
    layers = [
        LayerRun(layer="static", ran=True, why=static_why, seconds=time.monotonic() - started)
    ]
    if violations:
        layers.append(LayerRun(layer="secrets", ran=False, why="the static layer refused"))
    else:
        started = time.monotonic()
        found = evaluate(changes, cfg, SECRET_RULES)
        for v in found:
            v.layer = "secrets"
        violations.extend(found)
        layers.append(LayerRun(layer="secrets", ran=True, seconds=time.monotonic() - started))
    stats = [FileStat(path=fc.path, added=fc.added, removed=fc.removed) for fc in changes]
    diff = "".join(
        _render(fc, f"{tree.modes.get(fc.old_path or '', 0o100644) & 0o777 | 0o100000:o}")
        for fc in changes
    )
    contents: dict[str, bytes | None] = {}
    base: dict[str, str | None] = {}
    for fc in changes:
        for p in fc.paths:
            base[p] = sha256(tree.original.get(p))
        if fc.old_path and fc.old_path != fc.new_path:
            contents[fc.old_path] = None
        if fc.new_path:
            contents[fc.new_path] = (fc.new_text or "").encode("utf-8")
    return Verdict(
        accepted=not violations,
        repaired=bool(repairs),
        repairs=repairs,
        files=stats,
        violations=violations,
        layers=layers,
        diff=diff,
        contents=contents,
        base=base,
    )
