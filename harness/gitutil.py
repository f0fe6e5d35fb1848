"""Git operations (gitpython). Every mutation happens inside a context manager that restores."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path

import git

from harness import gitplain
from harness.errors import GitError


def open_repo(path: str | Path) -> git.Repo:
    try:
        repo = git.Repo(Path(path), search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise GitError(f"not a git repository: {path}") from exc
    if repo.bare:
        raise GitError(f"bare repository not supported: {path}")
    return repo


def resolve_repo(path: Path | None = None) -> Path:
    """The top level of the git repository enclosing `path` (the cwd when None), so every
    command works from any subdirectory of the repository."""
    return gitplain.toplevel(Path(path) if path is not None else Path.cwd())


def head(repo: git.Repo) -> str:
    try:
        return repo.head.commit.hexsha
    except ValueError as exc:
        raise GitError(f"repository has no commits: {repo.working_tree_dir}") from exc


def is_dirty(repo: git.Repo, keep: Sequence[str] = ()) -> bool:
    """Tracked edits, staged changes or untracked files; the untracked paths in `keep` (the
    harness's own harness.toml and STEPS script, before the user commits them) do not count."""
    if repo.is_dirty(untracked_files=False):
        return True
    return any(p not in keep for p in repo.untracked_files)


def _root(repo: git.Repo) -> Path:
    return Path(str(repo.working_tree_dir))


def tree_hash(repo: git.Repo) -> str:
    """Hash of the working tree as it is (tracked edits and untracked, non-ignored files).

    Always hashed through a throw-away index (the user's is never touched): a shortcut through
    `is_dirty` trusts the user's index, whose assume-unchanged and skip-worktree entries hide
    edits, and a stale PASSED from the cache would follow.
    """
    return gitplain.tree_hash(_root(repo))


def ignored_entries(repo: git.Repo, paths: Sequence[str] = ()) -> list[str]:
    """Paths git ignores under `paths` (all of the tree when empty), repo-relative; a wholly
    ignored directory is one entry ending in "/" so a virtualenv is not listed file by file."""
    return gitplain.ignored_entries(_root(repo), paths)


def _reset_to(repo: git.Repo, sha: str, keep: Sequence[str] = ()) -> None:
    repo.git.reset("--hard", sha)
    # `-e` patterns are anchored with a leading "/" so a kept "harness.toml" spares only the
    # file at the top, not one of that name in a subdirectory.
    repo.git.clean("-fd", *(f"--exclude=/{p}" for p in keep))


@contextmanager
def restore_on_failure(repo: git.Repo, keep: Sequence[str] = ()) -> Iterator[str]:
    """Require a clean tree (the untracked paths in `keep` aside); if the body raises, put HEAD,
    index and tree back exactly, the kept untracked files included."""
    if is_dirty(repo, keep):
        raise GitError(f"working tree has uncommitted changes: {repo.working_tree_dir}")
    start = head(repo)
    try:
        yield start
    except BaseException:
        _reset_to(repo, start, keep)
        raise


def _identity(repo: git.Repo) -> dict[str, str]:
    """Commit as the user when git knows who they are; otherwise as `harness`."""
    reader = repo.config_reader()
    env = {}
    if not (os.environ.get("GIT_AUTHOR_EMAIL") or reader.get_value("user", "email", "")):
        env.update(pinned_git_env())
    return env


def commit_all(repo: git.Repo, message: str, trailers: Mapping[str, str] | None = None) -> str:
    """Stage everything and commit. Returns the new sha."""
    body = message.rstrip() + "\n"
    if trailers:
        body += "\n" + "".join(f"{k}: {v}\n" for k, v in trailers.items())
    repo.git.add("-A")
    repo.git.commit("--no-verify", "--allow-empty", "-m", body, env=_identity(repo))
    return head(repo)


def commit_paths(
    repo: git.Repo,
    paths: Sequence[str],
    message: str,
    trailers: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Stage exactly `paths` (additions, edits and deletions) and commit. Files the working tree
    happens to hold besides them (a test's output file) are never swept into the commit.
    `env` (identity and dates, harness/clock.py) wins over the default identity."""
    body = message.rstrip() + "\n"
    if trailers:
        body += "\n" + "".join(f"{k}: {v}\n" for k, v in trailers.items())
    repo.git.add("-A", "--", *paths)
    repo.git.commit(
        "--no-verify", "--allow-empty", "-m", body, env={**_identity(repo), **(env or {})}
    )
    return head(repo)


def tidy(repo: git.Repo) -> None:
    """Put a harness-owned worktree back to HEAD: what a tool run left behind (reports, caches,
    files a test wrote) must not count as a change. Never call this on the user's checkout."""
    _reset_to(repo, "HEAD")


def revert_commits(
    repo: git.Repo,
    shas: list[str],
    message: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Revert the given commits (newest first) as one commit. A conflict restores the tree and
    raises GitError."""
    try:
        with restore_on_failure(repo):
            for sha in shas:
                repo.git.revert("--no-commit", sha)
            msg = message or "harness: revert " + ", ".join(s[:10] for s in shas)
            repo.git.commit("--no-verify", "-m", msg, env={**_identity(repo), **(env or {})})
            return head(repo)
    except git.GitCommandError as exc:
        first = (exc.stderr or str(exc)).strip().splitlines()
        raise GitError(
            f"cannot revert {shas[0][:10]}: {first[0] if first else 'git failed'}"
        ) from exc


@contextmanager
def applied(repo: git.Repo, base: str, commits: Sequence[str]) -> Iterator[bool]:
    """Detach HEAD at `base` with exactly `commits` cherry-picked on it (in order, committed on
    the detached HEAD, so tools that tidy the tree keep them), for a look; then go back to where
    we were. Yields False when they do not apply without the commits left out (the look's tree
    is then `base` itself)."""
    if is_dirty(repo):
        raise GitError(f"working tree has uncommitted changes: {repo.working_tree_dir}")
    back = repo.active_branch.name if not repo.head.is_detached else head(repo)
    repo.git.checkout("--detach", base)
    clean = True
    try:
        for commit in commits:
            try:
                repo.git.cherry_pick(
                    "--allow-empty", "--keep-redundant-commits", commit, env=_identity(repo)
                )
            except git.GitCommandError:
                clean = False
                with suppress(git.GitCommandError):
                    repo.git.cherry_pick("--abort")
                _reset_to(repo, base)
                break
        yield clean
    finally:
        with suppress(git.GitCommandError):
            repo.git.cherry_pick("--abort")
        _reset_to(repo, "HEAD")
        repo.git.checkout(back)


_LOCK_REASON = "harness pid "


@contextmanager
def worktree(repo: git.Repo, branch: str, base: str, *, reuse: bool = False) -> Iterator[Path]:
    """A separate worktree on a new branch; the user's checkout and index are never touched.

    The branch survives; the worktree directory is removed on exit. The worktree is locked
    with this process's pid, so one left behind by a killed run is known for stale (its pid is
    dead) and pruned when the next one is created. With `reuse` (a resumed run) the branch
    exists already and is set to `base`, its last checkpoint.
    """
    prune_stale_worktrees(repo)
    exists = branch in [h.name for h in repo.heads]
    if exists != reuse:
        raise GitError(f"branch {'already exists' if exists else 'is gone'}: {branch}")
    tmp = Path(tempfile.mkdtemp(prefix="harness-wt-"))
    path = tmp / "work"
    try:
        if reuse:
            repo.git.branch("-f", branch, base)
            repo.git.worktree("add", str(path), branch)
        else:
            repo.git.worktree("add", "-b", branch, str(path), base)
        repo.git.worktree("lock", "--reason", f"{_LOCK_REASON}{os.getpid()}", str(path))
    except git.GitCommandError as exc:
        _remove_worktree(repo, path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise GitError(f"cannot create worktree: {exc.stderr.strip()}") from exc
    try:
        yield path
    finally:
        _remove_worktree(repo, path)


def _remove_worktree(repo: git.Repo, path: Path) -> None:
    """Unlock and remove a harness worktree and its temporary parent; the branch stays."""
    with suppress(git.GitCommandError):  # not locked: a failed `add`, or unlocked already
        repo.git.worktree("unlock", str(path))
    try:
        repo.git.worktree("remove", "--force", str(path))
    except git.GitCommandError:
        shutil.rmtree(path, ignore_errors=True)
        repo.git.worktree("prune")
    if path.parent.name.startswith("harness-wt-"):
        shutil.rmtree(path.parent, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def worktrees(repo: git.Repo) -> list[dict[str, str]]:
    """`git worktree list --porcelain` as one dict per worktree (keys: worktree, HEAD, branch,
    locked, prunable, ...; a bare flag maps to "")."""
    out = str(repo.git.worktree("list", "--porcelain"))
    entries: list[dict[str, str]] = []
    for block in out.strip().split("\n\n"):
        entry: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition(" ")
            entry[key] = value
        if "worktree" in entry:
            entries.append(entry)
    return entries


def prune_stale_worktrees(repo: git.Repo) -> list[Path]:
    """Remove worktrees left by harness runs that died (kill -9): locked by a harness pid that
    is no longer alive. Their branches are kept. Then let git prune registrations whose
    directory is gone. Returns the removed worktrees."""
    removed = []
    for entry in worktrees(repo):
        reason = entry.get("locked", "")
        if not (
            reason.startswith(_LOCK_REASON)
            and entry.get("branch", "").startswith("refs/heads/harness/")
        ):
            continue
        pid = reason.removeprefix(_LOCK_REASON).strip()
        if not pid.isdigit() or _pid_alive(int(pid)):
            continue
        path = Path(entry["worktree"])
        _remove_worktree(repo, path)
        removed.append(path)
    try:
        repo.git.worktree("prune")
    except git.GitCommandError as exc:
        raise GitError(f"cannot prune worktrees: {exc.stderr.strip()}") from exc
    return removed


def checked_out_branches(repo: git.Repo) -> set[str]:
    """Branches checked out in any worktree of the repository, the main checkout included."""
    return {e["branch"].removeprefix("refs/heads/") for e in worktrees(repo) if e.get("branch")}


def commits_beyond(repo: git.Repo, base: str, branch: str) -> list[str]:
    """Subjects of the commits on `branch` that `base` does not have, newest first."""
    try:
        out = str(repo.git.log("--format=%s", f"{base}..{branch}"))
    except git.GitCommandError as exc:
        raise GitError(f"cannot read {branch}: {exc.stderr.strip()}") from exc
    return out.splitlines()


def delete_branch(repo: git.Repo, branch: str) -> str:
    """Delete a harness run branch; returns the sha it pointed at, so it can be restored with
    `git branch <name> <sha>`. Never a branch outside harness/, nor one checked out."""
    if not branch.startswith("harness/"):
        raise GitError(f"not a harness branch, not deleting: {branch}")
    if branch in checked_out_branches(repo):
        raise GitError(f"branch is checked out, not deleting: {branch}")
    try:
        sha = repo.commit(branch).hexsha
        repo.git.branch("-D", branch)
    except (git.GitCommandError, ValueError, git.BadName) as exc:
        raise GitError(f"cannot delete branch {branch}: {exc}") from exc
    return sha


def pinned_git_env() -> dict[str, str]:
    """Deterministic identity for commits the harness makes when the user has none."""
    env = {
        "GIT_AUTHOR_NAME": os.environ.get("GIT_AUTHOR_NAME", "harness"),
        "GIT_AUTHOR_EMAIL": os.environ.get("GIT_AUTHOR_EMAIL", "harness@localhost"),
        "GIT_COMMITTER_NAME": os.environ.get("GIT_COMMITTER_NAME", "harness"),
        "GIT_COMMITTER_EMAIL": os.environ.get("GIT_COMMITTER_EMAIL", "harness@localhost"),
    }
    return env


def left_as_found(repository: git.Repo) -> AbstractContextManager[Callable[[], None]]:
    """Leave the checkout as it was found, whatever the gate runs wrote into it (reports such as
    coverage.xml and htmlcov/ that the target's own addopts ask for, a test's log file).

    Yields `tidy`, which is also called on exit: untracked files and directories that did not
    exist on entry are removed (never one the user had), and tracked files that differ from
    HEAD now but did not on entry are checked out again. A tracked file the user had already
    edited is left alone: there is no copy of the user's version to go back to.
    """
    return gitplain.left_as_found(_root(repository))


def change_key(diff: str) -> str:
    """What a diff changes, without where: per file, its removed and added lines (whitespace
    squeezed), in order. `git patch-id` also hashes context lines, so the same fix proposed on
    a file whose neighbouring lines moved would look new; this key does not."""
    rows: list[str] = []
    path = ""
    for line in diff.splitlines():
        if line.startswith("+++ "):
            name = line[4:].split("\t")[0].strip()
            path = name[2:] if name.startswith("b/") else name
            rows.append(f"@{path}")
        elif line.startswith("--- ") or line.startswith("diff --git "):
            continue
        elif line[:1] in ("+", "-") and path:
            rows.append(line[0] + " ".join(line[1:].split()))
    body = "\n".join(rows)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:20] if rows else ""


def commit_change_key(repo: git.Repo, sha: str) -> str:
    return change_key(repo.git.show(sha, "--format=", "--no-color"))
