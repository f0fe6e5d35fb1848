"""Git through its command line alone, for what every `harness gates` does (find the
repository, hash its working tree, list and tidy what a run left behind).

GitPython costs ~0.04 s of CPU to import and starts `git version` twice before its first
command; the gates need none of its object model. `harness.gitutil` keeps GitPython for the
loop's commits, reverts and worktrees, and hands these same operations a `Repo`'s directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from harness.errors import GitError


class GitFailed(Exception):
    """A git command exited non-zero; `stderr` says why in git's words."""

    def __init__(self, stderr: str, returncode: int, stdout: str = "") -> None:
        super().__init__(stderr)
        self.stderr = stderr
        self.returncode = returncode
        self.stdout = stdout


@lru_cache(maxsize=1)
def _executable() -> str:
    # The git on PATH, as GitPython finds it.
    found = shutil.which("git")
    if found is None:
        raise GitFailed("git: executable not found on PATH", 127)
    return found


def git(root: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """`git ARGS` in `root`: its stdout, or GitFailed. Paths come back as the filesystem
    names them (undecodable bytes survive as surrogates)."""
    full = {**os.environ, **env} if env else None
    try:
        proc = subprocess.run(
            [_executable(), *args],
            cwd=root,
            env=full,
            capture_output=True,
            encoding="utf-8",
            errors="surrogateescape",
            check=False,
        )
    except OSError as exc:  # no such directory, or no git at all
        raise GitFailed(str(exc), -1) from exc
    if proc.returncode != 0:
        raise GitFailed(proc.stderr.strip(), proc.returncode, proc.stdout)
    return proc.stdout


def _ask(where: Path) -> tuple[Path | None, bool, Path | None]:
    """(top level of the work tree enclosing `where` or None, whether it is a bare repository,
    its git common dir or None): one `git rev-parse`."""
    try:
        out = git(where, "rev-parse", "--is-bare-repository", "--show-toplevel", "--git-common-dir")
    except GitFailed as exc:
        # In a bare repository git answers the first question, then refuses the second.
        return None, exc.stdout.splitlines()[:1] == ["true"], None
    lines = out.splitlines()
    if len(lines) < 3:
        return None, lines[:1] == ["true"], None
    return Path(lines[1]), lines[0] == "true", (where / lines[2]).resolve()


def toplevel(where: Path) -> Path:
    """The top level of the repository enclosing `where`, resolved."""
    top, bare, _ = _ask(where)
    if bare:
        raise GitError(f"bare repository not supported: {where}")
    if top is None:
        raise GitError(f"not a git repository (nor inside one): {where}")
    return top.resolve()


def _at_root(path: Path) -> Path:
    """`path`'s git common dir, if `path` is the top level of a work tree (not a directory
    inside one: GitPython's `Repo(path)` refuses that too)."""
    top, bare, common = _ask(path)
    if bare:
        raise GitError(f"bare repository not supported: {path}")
    if top is None or common is None or top.resolve() != path.resolve():
        raise GitError(f"not a git repository: {path}")
    return common


def repo_root(path: Path) -> Path:
    """`path` resolved, if it is the top level of a work tree."""
    _at_root(path)
    return path.resolve()


def common_dir(root: Path) -> Path:
    """The git common dir (shared by the worktrees) of the work tree whose top level is
    `root`, resolved."""
    return _at_root(root)


def has_head(root: Path) -> bool:
    """Whether HEAD names a commit (not so on an unborn branch)."""
    try:
        git(root, "rev-parse", "-q", "--verify", "HEAD^{commit}")
    except GitFailed:
        return False
    return True


def tree_hash(root: Path) -> str:
    """See `harness.gitutil.tree_hash`."""
    with tempfile.TemporaryDirectory(prefix="harness-idx-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        try:
            if has_head(root):
                git(root, "read-tree", "HEAD", env=env)
            git(root, "add", "-A", env=env)
            return git(root, "write-tree", env=env).strip()
        except GitFailed as exc:
            raise GitError(f"cannot hash working tree: {exc.stderr}") from exc


def ls_files(root: Path, *args: str, what: str) -> list[str]:
    """`git ls-files -z ARGS` as a list; `what` names the failure."""
    try:
        out = git(root, "ls-files", "-z", *args)
    except GitFailed as exc:
        raise GitError(f"{what}: {exc.stderr}") from exc
    return [p for p in out.split("\0") if p]


def ignored_entries(root: Path, paths: Sequence[str] = ()) -> list[str]:
    """See `harness.gitutil.ignored_entries`."""
    spec = ["--", *paths] if paths else []
    args = ["--others", "--ignored", "--exclude-standard", "--directory", *spec]
    return ls_files(root, *args, what="cannot list ignored files")


def _untracked(root: Path, *, collapsed: bool) -> set[str]:
    """Untracked paths, ignored ones included. `collapsed`: a wholly untracked directory is one
    entry ("out/"); otherwise every file, so a file new inside an old directory shows."""
    args = ["--others"] + (["--directory"] if collapsed else [])
    return set(ls_files(root, *args, what="cannot list untracked files"))


def _changed_tracked(root: Path) -> set[str]:
    if not has_head(root):
        return set()
    try:
        out = git(root, "diff", "--name-only", "-z", "HEAD")
    except GitFailed as exc:
        raise GitError(f"cannot list changed files: {exc.stderr}") from exc
    return {p for p in out.split("\0") if p}


@contextmanager
def left_as_found(root: Path) -> Iterator[Callable[[], None]]:
    """See `harness.gitutil.left_as_found`."""
    had_entries = _untracked(root, collapsed=True)
    had_files = _untracked(root, collapsed=False)
    had_changed = _changed_tracked(root)

    def tidy() -> None:
        try:
            for rel in sorted(_untracked(root, collapsed=True) - had_entries):
                _remove(root / rel)
            for rel in sorted(_untracked(root, collapsed=False) - had_files):
                _remove(root / rel)
            changed = sorted(_changed_tracked(root) - had_changed)
            if changed:
                git(root, "checkout", "HEAD", "--", *changed)
        except (OSError, GitFailed, GitError) as exc:
            raise GitError(f"cannot remove what the gate run left in {root}: {exc}") from exc

    try:
        yield tidy
    finally:
        tidy()


def _remove(full: Path) -> None:
    if full.is_dir() and not full.is_symlink():
        shutil.rmtree(full)
    else:
        full.unlink(missing_ok=True)
