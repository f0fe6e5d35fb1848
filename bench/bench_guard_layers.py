"""Cost of each guard layer per patch on real diffs, and the time to refuse huge patches.

    .venv/bin/python bench/bench_guard_layers.py [REPO] [--commits N] [--reps N] [--baseline REV]

REPO is a git history to take real diffs from (default: a clone of this checkout, in /tmp).
Each changed text file of each of the last N commits is one patch (`git diff parent commit --
path`, see bench_guard.py), checked against the parent checkout with the default policy's
guard rules (gate-config protection off). For each layer, the seconds check_patch records in
`Verdict.layers` (static: parsing, applying in memory, counting and the static rules; secrets:
the secrets scan), over the patches where the layer ran; a patch's figure is its fastest of
--reps checks.

Then the huge cases, each timed as one check_patch call on a fresh repository (the limit the
issue sets is 2 s): a new file of 100,000 lines, a 10 MB patch, a 1.9 MB single added line,
and a 1,000-line rewrite that adds as many lines as it removes. With --baseline REV the huge
cases are also timed with the package at REV (bench_guard.py's export/load). Exits 1 when the
current package takes 2 s or more for any of them, or accepts one.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_guard import HERE, Checker, collect, export, git, load

LIMIT_SECONDS = 2.0


def huge_cases() -> dict[str, str]:
    n = 100_000
    new_file = f"--- /dev/null\n+++ b/big.py\n@@ -0,0 +1,{n} @@\n" + "".join(
        f"+v_{i} = compute({i})  # a line of ordinary length\n" for i in range(n)
    )
    m = 10_000_000 // 56
    ten_mb = f"--- a/a.py\n+++ b/a.py\n@@ -1 +1,{m + 1} @@\n x = 1\n" + "".join(
        f"+z_{i} = 'abcdefghijklmnopqrstuvwxyz0123456789abcd'\n" for i in range(m)
    )
    long_line = "--- a/a.py\n+++ b/a.py\n@@ -1 +1,2 @@\n x = 1\n+y = '" + "ab1" * 633_000 + "'\n"
    rewrite = "--- a/lines.py\n+++ b/lines.py\n@@ -1,1000 +1,1000 @@\n" + "".join(
        f"-v{i} = {i}\n+v{i} = {i}  # changed\n" for i in range(1000)
    )
    short = f"--- /dev/null\n+++ b/big.py\n@@ -0,0 +1,{n} @@\n" + "+x = 1\n" * n
    return {
        f"new file, 100,000 lines ({len(new_file) / 1e6:.1f} MB)": new_file,
        f"new file, 100,000 short lines ({len(short) / 1e6:.1f} MB)": short,
        f"10 MB patch ({len(ten_mb) / 1e6:.1f} MB, {m:,} added lines)": ten_mb,
        f"one added line of {len(long_line) / 1e6:.1f} MB": long_line,
        "1,000-line rewrite, as many lines added as removed": rewrite,
    }


def huge_repo(root: Path) -> Path:
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "a.py").write_text("x = 1\n")
    (root / "lines.py").write_text("".join(f"v{i} = {i}\n" for i in range(1000)))
    git(root, "add", "-A")
    git(root, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "i")
    return root


def time_huge(impls: dict[str, Checker]) -> bool:
    ok = True
    for name, text in huge_cases().items():
        for label, check in impls.items():
            t0 = time.perf_counter()
            verdict = check(text)
            took = time.perf_counter() - t0
            first = verdict.violations[0] if verdict.violations else None
            what = f"[{first.rule}/{first.layer}] {first.message[:70]}" if first else "ACCEPTED"
            print(f"  {name} | {label}: {took:.2f} s {what}")
            if label == "current" and (took >= LIMIT_SECONDS or verdict.accepted):
                ok = False
    return ok


def layer_costs(repo: Path, check: Checker, commits: int, reps: int) -> None:
    patches = collect(repo)
    parents = list(dict.fromkeys(p for p, _, _ in patches))[-commits:]
    patches = [p for p in patches if p[0] in set(parents)]
    per_layer: dict[str, list[float]] = {}
    refused: dict[str, int] = {}
    totals: list[float] = []
    current = None
    for parent, _kind, text in patches:
        if parent != current:
            git(repo, "checkout", "-q", "--detach", parent)
            current = parent
        best: dict[str, float] = {}
        best_total = float("inf")
        verdict: Any = None
        for _ in range(reps):
            t0 = time.perf_counter()
            verdict = check(text)
            best_total = min(best_total, time.perf_counter() - t0)
            for layer in verdict.layers:
                if layer.ran:
                    best[layer.layer] = min(best.get(layer.layer, float("inf")), layer.seconds)
        totals.append(best_total)
        for name, secs in best.items():
            per_layer.setdefault(name, []).append(secs)
        for v in verdict.violations:
            refused[v.layer] = refused.get(v.layer, 0) + 1
        refused["check_patch total"] = refused.get("check_patch total", 0) + (not verdict.accepted)
    git(repo, "checkout", "-q", "main")
    print(f"{len(patches)} per-file patches from {len(parents)} commits, reps {reps}")
    for name, ts in [*per_layer.items(), ("check_patch total", totals)]:
        p95 = sorted(ts)[max(0, int(len(ts) * 0.95) - 1)]
        print(
            f"  {name}: ran on {len(ts)}, median {statistics.median(ts) * 1e3:.2f} ms, "
            f"mean {statistics.fmean(ts) * 1e3:.2f} ms, p95 {p95 * 1e3:.2f} ms, "
            f"{'rejected' if name == 'check_patch total' else 'violations'} {refused.get(name, 0)}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("repo", type=Path, nargs="?")
    ap.add_argument("--commits", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--baseline", help="git revision of this checkout to time the huge cases")
    args = ap.parse_args()
    from harness.policy import load_policy

    guard_cfg = load_policy(HERE / "policies" / "default.toml").guard.model_dump()
    guard_cfg["protect_gate_config"] = False
    with tempfile.TemporaryDirectory(prefix="bench-layers-") as tmp:
        repo = args.repo
        if repo is None:
            repo = Path(tmp) / "history"
            subprocess.run(["git", "clone", "-q", str(HERE), str(repo)], check=True)
            git(repo, "checkout", "-q", "-B", "main")
        layer_costs(repo.resolve(), load(HERE, repo.resolve(), guard_cfg), args.commits, args.reps)
        print("huge patches (one check each):")
        small = huge_repo(Path(tmp) / "huge")
        impls: dict[str, Checker] = {}
        if args.baseline:
            base = Path(tmp) / "baseline"
            base.mkdir()
            export(args.baseline, base)
            impls[f"baseline {args.baseline}"] = load(base, small, guard_cfg)
        impls["current"] = load(HERE, small, guard_cfg)
        ok = time_huge(impls)
    if not ok:
        print(f"FAIL: a huge patch took {LIMIT_SECONDS} s or more, or was accepted")
        sys.exit(1)


if __name__ == "__main__":
    main()
