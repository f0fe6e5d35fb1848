"""Per-file counts vs real `git diff --numstat` over every commit of a history.

    .venv/bin/python bench/real_numstat.py /tmp/guard-history/repo

For each commit: (1) `count_changes` of each changed text file's two blobs, and
(2) check_patch's FileStat counts for the commit's own `git diff` of its text files, applied
to the parent checkout, must both equal git's numstat. Prints totals and every mismatch.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.guard import check_patch
from harness.guard.textdiff import count_changes, split_lines
from harness.policy import GuardConfig

CFG = GuardConfig(
    max_changed_lines_per_file=10**9,
    protect_gate_config=False,
    protect_tests=False,
    secrets=False,
    suppressions={"budget": 10**6, "require_justification": False},
)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True).stdout.decode(
        "utf-8", "surrogateescape"
    )


def blob(repo: Path, rev: str, path: str) -> bytes:
    return subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=repo, check=True, capture_output=True
    ).stdout


def main() -> None:
    repo = Path(sys.argv[1])
    commits = git(repo, "rev-list", "--reverse", "HEAD").split()[1:]
    files = commit_checks = blob_mismatch = patch_mismatch = skipped = rejected = 0
    for sha in commits:
        parent = f"{sha}~1"
        numstat: dict[str, tuple[int, int]] = {}
        for line in git(repo, "diff", "--no-renames", "--numstat", parent, sha).splitlines():
            a, r, path = line.split("\t", 2)
            if a == "-":
                continue  # binary: the guard refuses those anyway
            numstat[path] = (int(a), int(r))
        texts_ok = True
        for path, want in numstat.items():
            try:
                old = blob(repo, parent, path).decode()
            except subprocess.CalledProcessError:
                old = ""
            except UnicodeDecodeError:
                texts_ok = False
                skipped += 1
                continue
            try:
                new = blob(repo, sha, path).decode()
            except subprocess.CalledProcessError:
                new = ""
            except UnicodeDecodeError:
                texts_ok = False
                skipped += 1
                continue
            files += 1
            got = count_changes(split_lines(old), split_lines(new))
            if got != want:
                blob_mismatch += 1
                print(f"blob mismatch {sha[:10]} {path}: ours {got} git {want}")
        if not texts_ok or not numstat:
            continue
        git(repo, "checkout", "-q", "--detach", parent)
        # Only the text files: the guard refuses binary changes by design (tested elsewhere),
        # and one binary file would make the whole commit's patch a rejection.
        diff = git(repo, "diff", "--no-renames", parent, sha, "--", *numstat)
        verdict = check_patch(diff, repo, CFG)
        commit_checks += 1
        if not verdict.accepted:
            rejected += 1
            print(f"rejected {sha[:10]}: {verdict.violations[0].message[:160]}")
            continue
        ours = {f.path: (f.added, f.removed) for f in verdict.files}
        if ours != numstat:
            patch_mismatch += 1
            diffs = {
                p: (ours.get(p), numstat.get(p))
                for p in set(ours) | set(numstat)
                if ours.get(p) != numstat.get(p)
            }
            print(f"patch mismatch {sha[:10]}: {diffs}")
    git(repo, "checkout", "-q", "main")
    print(
        f"commits={len(commits)} text_files={files} blob_mismatches={blob_mismatch} "
        f"patches_checked={commit_checks} patch_mismatches={patch_mismatch} "
        f"rejected={rejected} skipped_non_utf8={skipped}"
    )


if __name__ == "__main__":
    main()
