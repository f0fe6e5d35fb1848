"""apply_verdict: write an accepted verdict's contents atomically and commit them."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from harness import gitutil
from harness.errors import PatchError, PatchRejected
from harness.guard.models import Verdict
from harness.guard.rules import path_problem


def _current(root: Path, path: str) -> str | None:
    full = root / path
    if not full.is_file() or full.is_symlink():
        return None
    return hashlib.sha256(full.read_bytes()).hexdigest()


def _write_atomic(full: Path, data: bytes) -> None:
    full.parent.mkdir(parents=True, exist_ok=True)
    mode = full.stat().st_mode & 0o777 if full.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=".harness-", dir=full.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if mode is not None:
            Path(tmp).chmod(mode)
        Path(tmp).replace(full)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise


def write_contents(root: Path, verdict: Verdict) -> None:
    """Write an accepted verdict's files into the working tree (no commit).

    The caller holds `gitutil.restore_on_failure`, so a failure part-way is rolled back.
    """
    if not verdict.accepted:
        raise PatchRejected(verdict.summary(), verdict.violations)
    if not verdict.contents:
        raise PatchError("the verdict carries no file contents (was it loaded from JSON?)")
    for path in verdict.contents:
        problem = path_problem(path)
        if problem:
            raise PatchError(problem)
    for path, expected in verdict.base.items():
        if _current(root, path) != expected:
            raise PatchError(f"{path} changed since the patch was checked; check it again")
    for path, data in verdict.contents.items():
        full = root / path
        if data is None:
            if full.exists():
                full.unlink()
        else:
            _write_atomic(full, data)


def apply_verdict(
    repo: Path, verdict: Verdict, message: str, trailers: dict[str, str] | None = None
) -> str:
    """Write the verdict's files and commit them as one commit; returns the new sha.

    Refuses a dirty tree, a rejected verdict, and a tree that changed since the check.
    On any failure HEAD, index and working tree are restored.
    """
    if not verdict.accepted:
        raise PatchRejected(verdict.summary(), verdict.violations)
    root = Path(repo).resolve()
    repository = gitutil.open_repo(root)
    with gitutil.restore_on_failure(repository):
        write_contents(root, verdict)
        return gitutil.commit_paths(repository, sorted(verdict.contents), message, trailers)
