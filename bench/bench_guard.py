"""Validation throughput of check_patch on real diffs, optionally against a baseline revision.

    .venv/bin/python bench/bench_guard.py REPO [--baseline REV] [--reps N]

REPO is a history built by bench/fetch_history.py (use a clone: it checks out commits).
Each changed text file of each commit becomes one patch (`git diff parent commit -- path`),
checked against the parent checkout with this checkout's default policy's guard rules (all
rules on, gate-config protection off so that real pyproject edits are judged in full); every
implementation gets the same configuration.

Patch classes: "small code" = a .py file with 1-20 changed lines (the T4 per-file limit,
the kind of patch a model writes); "small other" = any other text file with 1-20 changed
lines; "larger" = more than 20.

With --baseline, `git archive REV harness policies` of this checkout is imported as a
second copy of the package in the same process, and every patch is checked N times by each
implementation, alternating, so both see the same machine load. A patch's time is the
fastest of its N checks (the machine is shared; the minimum is the least disturbed figure);
throughput is patches / summed times. The verdicts of the implementations (whole JSON dump
plus the new file contents) must be identical, or the run fails.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
CLASSES = ("small code", "small other", "larger")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True).stdout.decode(
        "utf-8", "replace"
    )


def collect(repo: Path) -> list[tuple[str, str, str]]:
    """(parent sha, class, patch text) for every changed text file of every commit."""
    patches: list[tuple[str, str, str]] = []
    for sha in git(repo, "rev-list", "--reverse", "HEAD").split()[1:]:
        parent = git(repo, "rev-parse", f"{sha}~1").strip()
        for line in git(repo, "diff", "--no-renames", "--numstat", parent, sha).splitlines():
            a, r, path = line.split("\t", 2)
            if a == "-":
                continue
            n = int(a) + int(r)
            kind = "larger" if n > 20 else "small code" if path.endswith(".py") else "small other"
            patches.append(
                (parent, kind, git(repo, "diff", "--no-renames", parent, sha, "--", path))
            )
    return patches


Checker = Callable[[str], Any]


def load(src: Path, repo: Path, guard_cfg: dict[str, Any]) -> Checker:
    """check_patch from the harness package under `src`, bound to repo and the guard config."""
    for name in [m for m in sys.modules if m == "harness" or m.startswith("harness.")]:
        del sys.modules[name]
    sys.path.insert(0, str(src))
    try:
        guard = importlib.import_module("harness.guard")
        policy = importlib.import_module("harness.policy")
    finally:
        sys.path.remove(str(src))
    module_file = Path(guard.__file__ or "").resolve()
    if not module_file.is_relative_to(src.resolve()):
        raise SystemExit(f"imported {module_file}, expected a module under {src}")
    cfg = policy.GuardConfig.model_validate(guard_cfg)
    check = guard.check_patch

    def run(text: str) -> Any:
        return check(text, repo, cfg)

    # Warm-up outside the timing: the first call imports detect-secrets' plugins.
    run("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n")
    return run


def digest(verdict: Any) -> str:
    """The verdict without the layers' durations, which no two checks share."""
    dumped = verdict.model_dump(mode="json")
    for layer in dumped.get("layers", []):
        layer.pop("seconds", None)
    h = hashlib.sha256(json.dumps(dumped, sort_keys=True).encode())
    for path, data in sorted(verdict.contents.items()):
        h.update(path.encode() + b"\0" + (b"<deleted>" if data is None else data))
    return h.hexdigest()


def export(rev: str, dest: Path) -> None:
    archive = dest / "src.tar"
    with archive.open("wb") as fh:
        subprocess.run(
            ["git", "archive", rev, "harness", "policies"], cwd=HERE, check=True, stdout=fh
        )
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    archive.unlink()


def measure(
    repo: Path, patches: list[tuple[str, str, str]], impls: dict[str, Checker], reps: int
) -> tuple[dict[str, list[float]], dict[str, int], int]:
    """Fastest time per patch per implementation, accepted counts, verdict mismatches."""
    best: dict[str, list[float]] = {label: [] for label in impls}
    accepted = dict.fromkeys(impls, 0)
    mismatches = 0
    current = None
    labels = list(impls)
    for parent, _kind, text in patches:
        if parent != current:
            git(repo, "checkout", "-q", "--detach", parent)
            current = parent
        times: dict[str, list[float]] = {label: [] for label in labels}
        seen: dict[str, str] = {}
        for rep in range(reps):
            for label in labels if rep % 2 == 0 else labels[::-1]:
                t0 = time.perf_counter()
                verdict = impls[label](text)
                times[label].append(time.perf_counter() - t0)
                if rep == 0:
                    accepted[label] += verdict.accepted
                    seen[label] = digest(verdict)
        if len(set(seen.values())) > 1:
            mismatches += 1
            print(f"verdicts differ: {text.splitlines()[0][:100]} (parent {parent[:10]})")
        for label in labels:
            best[label].append(min(times[label]))
    git(repo, "checkout", "-q", "main")
    return best, accepted, mismatches


def summary(kinds: list[str], times: list[float]) -> list[str]:
    lines = []
    for cls in (*CLASSES, "all"):
        ts = [t for k, t in zip(kinds, times, strict=True) if cls in ("all", k)]
        if not ts:
            continue
        p95 = sorted(ts)[max(0, int(len(ts) * 0.95) - 1)]
        lines.append(
            f"  {cls}: {len(ts)} patches, {len(ts) / sum(ts):,.0f} patches/s, "
            f"median {statistics.median(ts) * 1e3:.2f} ms, p95 {p95 * 1e3:.2f} ms"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("repo", type=Path)
    ap.add_argument("--baseline", help="git revision of this checkout to compare against")
    ap.add_argument("--reps", type=int, default=3, help="checks per patch per implementation")
    ap.add_argument(
        "--expect-changes",
        action="store_true",
        help="report, but do not fail on, verdicts that differ from the baseline's",
    )
    args = ap.parse_args()
    repo = args.repo.resolve()
    patches = collect(repo)
    kinds = [k for _, k, _ in patches]
    # One guard configuration for every implementation: this checkout's default policy.
    from harness.policy import load_policy

    guard_cfg = load_policy(HERE / "policies" / "default.toml").guard.model_dump()
    guard_cfg["protect_gate_config"] = False
    with tempfile.TemporaryDirectory(prefix="bench-guard-") as tmp:
        impls: dict[str, Checker] = {}
        if args.baseline:
            base = Path(tmp) / "baseline"
            base.mkdir()
            export(args.baseline, base)
            impls[f"baseline {args.baseline}"] = load(base, repo, guard_cfg)
        impls["current"] = load(HERE, repo, guard_cfg)
        best, accepted, mismatches = measure(repo, patches, impls, args.reps)
    commits = len({p for p, _, _ in patches})
    print(f"{commits} commits with text changes, {len(patches)} per-file patches, reps {args.reps}")
    for label, times in best.items():
        print(f"{label}: accepted {accepted[label]}/{len(patches)}")
        print("\n".join(summary(kinds, times)))
    if len(impls) > 1:
        print(f"patches whose verdicts differ between implementations: {mismatches}")
    if mismatches and not args.expect_changes:
        sys.exit(1)


if __name__ == "__main__":
    main()
