"""Validation throughput of check_patch on real diffs.

    .venv/bin/python bench/bench_guard.py /tmp/guard-history/repo

Each changed text file of each commit becomes one patch (`git diff parent commit -- path`),
checked against the parent checkout with the default policy guard rules (all rules on,
limits raised so that real diffs are judged in full rather than stopped at the size rule).
"Small" patches are those with at most 20 changed lines, the T4 per-file limit.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness.guard import check_patch
from harness.policy import load_policy


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True).stdout.decode(
        "utf-8", "replace"
    )


def main() -> None:
    repo = Path(sys.argv[1])
    cfg = load_policy().guard.model_copy(update={"protect_gate_config": False})
    commits = git(repo, "rev-list", "--reverse", "HEAD").split()[1:]
    # Warm-up outside the timing: the first call imports detect-secrets' plugins.
    check_patch("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n", repo, cfg)
    small: list[float] = []
    large: list[float] = []
    accepted = 0
    for sha in commits:
        parent = f"{sha}~1"
        stats = git(repo, "diff", "--no-renames", "--numstat", parent, sha).splitlines()
        patches = []
        for line in stats:
            a, r, path = line.split("\t", 2)
            if a == "-":
                continue
            patches.append(
                (int(a) + int(r), git(repo, "diff", "--no-renames", parent, sha, "--", path))
            )
        git(repo, "checkout", "-q", "--detach", parent)
        for n, text in patches:
            t0 = time.perf_counter()
            v = check_patch(text, repo, cfg)
            dt = time.perf_counter() - t0
            accepted += v.accepted
            (small if n <= 20 else large).append(dt)
    git(repo, "checkout", "-q", "main")

    def line(name: str, xs: list[float]) -> str:
        if not xs:
            return f"{name}: none"
        return (
            f"{name}: {len(xs)} patches, {len(xs) / sum(xs):,.0f} patches/s, "
            f"median {statistics.median(xs) * 1e3:.2f} ms, "
            f"p95 {sorted(xs)[int(len(xs) * 0.95) - 1] * 1e3:.2f} ms"
        )

    print(f"commits: {len(commits)}, accepted: {accepted}/{len(small) + len(large)}")
    print(line("small (<=20 changed lines)", small))
    print(line("larger", large))
    print(line("all", small + large))


if __name__ == "__main__":
    main()
