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
    for block, path, what in named_paths(script):
        if _exists(tree, path, what, root):
            continue
        has = ", ".join(detected.package_paths) if detected and detected.package_paths else "none"
        guess = detected.package_paths[0] if detected and detected.package_paths else "PATH"
        hint = f"--path {path}={guess}" if "config" not in what else f"--path {path}="
        raise UsageError(
            f"{script.source}: block {block} names {what} '{path}', which {commit[:10]} of "
            f"{repo.working_tree_dir} does not have (detected packages: {has}); map it with "
            f"{hint}, or drop it with --path {path}="
        )
