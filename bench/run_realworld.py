"""Reproduce docs/run-realworld.md: `harness run --provider builtin` on python-dateutil 2.8.2.

    .venv/bin/python bench/run_realworld.py            # setup (needs PyPI) + run + measure
    .venv/bin/python bench/run_realworld.py --no-setup # reuse /tmp/rw from a previous setup

Everything lives under --root (default /tmp/rw): the sdist, the target git repo, its own venv,
the run records and results.json. Nothing there is committed here.

The numbers are measured independently of the harness: ruff, pytest and coverage are re-run
here on an export of the base commit and of the branch head; every commit on the branch is
checked with `git log --numstat`; the user's checkout is compared before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess  # nosec B404 - a bench script that drives git, pip and the harness CLI
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sdist import PINNED_GIT

HERE = Path(__file__).resolve().parent
MAIN = HERE.parent
NAME, VERSION = "python-dateutil", "2.8.2"
TOOLS = [
    "ruff==0.17.6",
    "bandit==1.9.4",
    "detect-secrets==1.5.0",
    # 2.8.2's tests pass parametrize a generator, which pytest 9 makes a collection error.
    "pytest==7.4.0",
    "pytest-cov==4.1.0",
    "coverage==7.2.7",
    "hypothesis==6.170.15",
    "freezegun==1.5.5",
    "six==1.17.0",
]
RUFF_ARGS = [
    "--select",
    "E,F,W,I,UP,B,C4,SIM",
    "--target-version",
    "py38",
    "--extend-exclude",
    "dateutil/test",
]
GIT_ENV = PINNED_GIT


def sh(argv: list[str], cwd: Path | None = None, check: bool = True, **env: str) -> str:
    proc = subprocess.run(  # nosec B603 - fixed argv, no shell
        argv,
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if check and proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def git(repo: Path, *args: str) -> str:
    return sh(["git", "-C", str(repo), *args])


def setup(root: Path) -> Path:
    dl = root / "dl"
    dl.mkdir(parents=True, exist_ok=True)
    sdist = dl / f"{NAME}-{VERSION}.tar.gz"
    if not sdist.is_file():
        sh([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
            f"{NAME}=={VERSION}", "-d", str(dl)])  # fmt: skip
    repo = root / f"{NAME}-{VERSION}"
    if repo.exists():
        for line in git(repo, "worktree", "list", "--porcelain").splitlines()[1:]:
            if line.startswith("worktree "):
                git(repo, "worktree", "remove", "--force", line.split(" ", 1)[1])
        shutil.rmtree(repo)
    with tarfile.open(sdist) as tar:
        tar.extractall(root, filter="data")
    git(repo, "init", "-q", "-b", "main")
    # The sdist ships dateutil/_version.py although its .gitignore lists it: keep the release's
    # files exactly (minus the egg-info that the sdist's own .gitignore leaves out).
    git(repo, "add", "-A")
    git(repo, "add", "-f", "dateutil/_version.py")
    sh(["git", "-C", str(repo), "commit", "-qm", f"sdist {NAME} {VERSION}"], **GIT_ENV)

    venv = root / "venv"
    if not (venv / "bin" / "python").is_file():
        sh(["python3.11", "-m", "venv", str(venv)])
        sh([str(venv / "bin/python"), "-m", "pip", "install", "-q", *TOOLS])
        # freezegun pulls in a newer python-dateutil; the tests must import the worktree's.
        sh([str(venv / "bin/python"), "-m", "pip", "uninstall", "-y", "-q", NAME])
    return repo


# ---------------------------------------------------------------------------- measuring


def export(repo: Path, rev: str, dest: Path) -> Path:
    dest.mkdir(parents=True)
    archive = dest.with_suffix(".tar")
    git(repo, "archive", "--format=tar", "-o", str(archive), rev)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    archive.unlink()
    # ruff honours .gitignore only inside a git repo (2.8.2 ignores its own dateutil/_version.py),
    # so the export is one too, to count exactly what the gate counts.
    sh(["git", "init", "-q", str(dest)])
    return dest


def measure(root: Path, repo: Path, rev: str) -> dict[str, Any]:
    """ruff, pytest and coverage on a clean export of `rev`, run here, not by the harness."""
    py = str(root / "venv" / "bin" / "python")
    with tempfile.TemporaryDirectory(prefix="rw-measure-") as tmp:
        tree = export(repo, rev, Path(tmp) / "tree")
        out = sh([py, "-m", "ruff", "check", "--no-cache", "--output-format", "json",
                  "--exit-zero", *RUFF_ARGS, "dateutil"], cwd=tree)  # fmt: skip
        findings = json.loads(out)
        safe = [f for f in findings if (f.get("fix") or {}).get("applicability") == "safe"]
        junit, cov = Path(tmp) / "junit.xml", Path(tmp) / "cov.json"
        sh([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-seed=0",
            f"--junitxml={junit}", "-o", "junit_family=xunit1", "--cov=dateutil",
            f"--cov-report=json:{cov}", "dateutil/test"],
           cwd=tree, check=False, COVERAGE_FILE=str(Path(tmp) / ".coverage"),
           PYTHONDONTWRITEBYTECODE="1")  # fmt: skip
        outcomes = junit_outcomes(junit)
        report = json.loads(cov.read_text())
        totals = report["totals"]
        missing = {p: f["summary"]["missing_lines"] for p, f in report["files"].items()}
    return {
        "rev": rev,
        "ruff": len(findings),
        "ruff_safe_fixable": len(safe),
        "ruff_by_code": dict(Counter(f["code"] for f in findings).most_common()),
        "tests": dict(Counter(outcomes.values())),
        "failing": sorted(t for t, o in outcomes.items() if o in ("failed", "error")),
        "coverage": round(totals["percent_covered"], 2),
        "covered_lines": totals["covered_lines"],
        "statements": totals["num_statements"],
        "missing_by_file": missing,
    }


def junit_outcomes(path: Path) -> dict[str, str]:
    import defusedxml.ElementTree as SafeET  # the harness venv has it

    outcomes: dict[str, str] = {}
    for case in SafeET.parse(path).getroot().iter("testcase"):
        tid = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        outcome = "passed"
        for tag in ("error", "failure", "skipped"):
            if tag in kinds:
                outcome = {"failure": "failed"}.get(tag, tag)
                break
        outcomes[tid] = outcome
    return outcomes


def numstat(repo: Path, base: str, branch: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    sha = subject = ""
    log = git(repo, "log", "--numstat", "--format=@%H %s", f"{base}..{branch}")
    for line in log.splitlines():
        if line.startswith("@"):
            sha, subject = line[1:].split(" ", 1)
        elif line.strip():
            added, removed, path = line.split("\t", 2)
            lines = None if added == "-" else int(added) + int(removed)
            rows.append({"sha": sha, "subject": subject, "path": path, "lines": lines})
    return rows


def checkout_state(repo: Path) -> dict[str, str]:
    return {
        "head": git(repo, "rev-parse", "HEAD").strip(),
        "branch": git(repo, "symbolic-ref", "--short", "HEAD").strip(),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all", "--ignored"),
        "index": git(repo, "ls-files", "--stage"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
    }


def events_report(run_dir: Path) -> dict[str, Any]:
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    kinds = Counter(e["kind"] for e in events)
    rejected = [e for e in events if e["kind"] == "verdict" and not e.get("accepted")]
    quick = [e for e in events if e["kind"] == "quick_check" and not e.get("ok")]
    return {
        "event_counts": dict(kinds),
        "guard_rejections": [
            {"item": e.get("item"), "patch": e.get("patch"), "violations": e.get("violations")}
            for e in rejected
        ],
        "quick_check_rejections": [e.get("reasons") for e in quick],
        "reverted": [e.get("sha") for e in events if e["kind"] == "reverted"],
        "regressions": [e.get("items") for e in events if e["kind"] == "regressions"],
        "stuck": [e for e in events if e["kind"] == "stuck"],
        "skipped": [e for e in events if e["kind"] == "item_skipped"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("/tmp/rw"))
    ap.add_argument("--no-setup", action="store_true")
    args = ap.parse_args()
    root: Path = args.root.resolve()
    repo = setup(root) if not args.no_setup else root / f"{NAME}-{VERSION}"
    base = git(repo, "rev-parse", "HEAD").strip()
    user_before = checkout_state(repo)

    runs = root / "runs"
    cmd = [str(MAIN / ".venv/bin/harness"), "run", str(HERE / "steps/dateutil.md"),
           "--repo", str(repo), "--policy", str(HERE / "policies/dateutil.toml"),
           "--provider", "builtin", "--runs-dir", str(runs), "--json"]  # fmt: skip
    print("$", " ".join(cmd), file=sys.stderr)
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # nosec B603
    wall = time.monotonic() - started
    (root / "harness-stderr.txt").write_text(proc.stderr)
    if proc.returncode not in (0, 1):
        sys.exit(f"harness run exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout)
    branch = summary["branch"]

    user_after = checkout_state(repo)
    rows = numstat(repo, base, branch)
    over = [r for r in rows if r["lines"] is None or r["lines"] > 20]
    subjects = git(repo, "log", "--format=%s", f"{base}..{branch}").splitlines()
    before, after = measure(root, repo, base), measure(root, repo, branch)
    results = {
        "project": f"{NAME} {VERSION}",
        "command": cmd,
        "exit_code": proc.returncode,
        "wall_seconds": round(wall, 1),
        "run_id": summary["run_id"],
        "branch": branch,
        "base": base,
        "blocks": [
            {k: b[k] for k in ("number", "title", "status", "iterations", "rejected", "cannot_do")}
            | {"kept": len(b["commits"]), "reverted": len(b["reverted"])}
            for b in summary["blocks"]
        ],
        "commits": len(subjects),
        "commit_kinds": dict(
            Counter(
                "revert"
                if s.startswith("harness: revert")
                else "progress log"
                if s.startswith("harness: progress log")
                else "patch"
                for s in subjects
            )
        ),
        "max_lines_per_file_per_commit": max((r["lines"] or 0) for r in rows) if rows else 0,
        "over_limit": over,
        "files_touched": len({r["path"] for r in rows}),
        "before": before,
        "after": after,
        "new_failing": sorted(set(after["failing"]) - set(before["failing"])),
        # Statements that lost coverage show up as more missing lines in some file.
        "files_with_more_missing_lines": {
            p: [before["missing_by_file"].get(p, 0), n]
            for p, n in after["missing_by_file"].items()
            if n > before["missing_by_file"].get(p, 0)
        },
        "user_checkout_untouched": user_before == user_after,
        "events": events_report(Path(summary["run_dir"])),
    }
    (root / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    brief = {k: v for k, v in results.items() if k not in ("events", "before", "after")}
    for side in ("before", "after"):
        brief[side] = {
            k: v for k, v in results[side].items() if k not in ("ruff_by_code", "missing_by_file")
        }
    print(json.dumps(brief, indent=2))
    print(f"full results: {root / 'results.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
