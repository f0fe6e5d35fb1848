"""Checks a run makes before it creates anything: does the STEPS script fit this repository?"""

from __future__ import annotations

import git

from harness.detect import Detected
from harness.errors import UsageError
from harness.steps import StepsScript, named_paths


def _in_tree(tree: git.Tree, path: str) -> bool:
    try:
        tree.join(path)
    except KeyError:
        return False
    return True


def _exists(tree: git.Tree, path: str, what: str, source_root: str) -> bool:
    path = path.rstrip("/") or "."
    if path == "." or _in_tree(tree, path):
        return True
    if what != "--cov target":
        return False
    # `--cov=pkg.sub` names a module, found under the package root like any import.
    rel = path.replace(".", "/") if "/" not in path else path
    prefix = "" if source_root in ("", ".") else f"{source_root}/"
    return any(_in_tree(tree, f"{prefix}{rel}{ext}") for ext in ("", ".py"))


def check_script_paths(
    script: StepsScript, repo: git.Repo, commit: str, detected: Detected | None
) -> None:
    """Stop (exit 2) when the script's gates name a path the commit the run starts from lacks.

    A gate pointed at a missing path judges code it never looked at, so the run would report
    on nothing; the user is told which path, what the repository has, and how to map it."""
    tree = repo.commit(commit).tree
    root = detected.source_root if detected else "."
    missing: dict[str, str] = {}  # each path once, where the script first names it
    for block, path, what in named_paths(script):
        if path not in missing and not _exists(tree, path, what, root):
            missing[path] = f"block {block} names {what} '{path}'"
    if not missing:
        return
    has = ", ".join(detected.package_paths) if detected and detected.package_paths else "none"
    guess = detected.package_paths[0] if detected and detected.package_paths else "PATH"
    # A config file the repository lacks has no counterpart to guess: dropping it lets the
    # tool read its own settings, as `harness gates` does.
    fix = " ".join(
        f"--path {p}=" if "config" in missing[p] else f"--path {p}={guess}" for p in missing
    )
    raise UsageError(
        f"{script.source}: {', '.join(missing.values())}, which {commit[:10]} of "
        f"{repo.working_tree_dir} does not have (detected packages: {has}); run with {fix} "
        "(SCRIPT_PATH=REPO_PATH maps a path, SCRIPT_PATH= drops it)"
    )
