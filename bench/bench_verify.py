"""Per-patch verification (harness/verify.py) against the full gates, patch by patch, on a real
project: the cost of each and whether their verdicts agree.

    .venv/bin/python bench/bench_verify.py prepare            # click 7.1.2 under /tmp/bench-verify
    .venv/bin/python bench/bench_verify.py run [--patches 60] [--seed 0]
    .venv/bin/python bench/bench_verify.py land REPO PATCH... [--gates pytest,mypy]

`prepare` unpacks the click 7.1.2 sdist into a git repository and makes a venv with pytest,
pytest-cov and coverage for its tests (needs PyPI once). `run` makes the patches from the tree
itself: half are mutations of the package's code (a comparison flipped, a return value dropped,
a constant changed, as mutation testing does: most break a test, some are not caught by any),
half are single findings fixed with ruff's own safe fix (one finding per patch). Each patch is
written on the clean start commit and judged twice, in one run: by the per-patch check as the
loop runs it (ruff on the changed file, then `Verifier.check`) and by the full gates
(`run_gates` on the tree, `compare` against the start's gates, flaky tests re-run). It prints
the wall time of each per patch, their ratio, and every patch whose verdicts differ.

`land` times the landing check of given patch files on any repository with its own policy
(harness.toml; attrs 21.4.0 in docs/results.md): the start's gates and the verifier's start
once, then each patch alone on the clean start commit, checked as `harness run` lands it (the
behaviour layer and the per-patch verifier; one pytest run where the two are folded). It runs
with whichever harness is first on the import path, so the same file times an older harness
(`PYTHONPATH=<its worktree>`).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sdist import TEST_TOOLS, prepare_sdist
from sdist import git as sdist_git

from harness.gates.compare import blocking, compare, make_rerunner, new_findings
from harness.gates.models import Finding, GateStatus
from harness.gates.runner import run_gates
from harness.policy import Policy, parse_policy
from harness.verify import Verifier

ROOT = Path("/tmp/bench-verify")
REPO = ROOT / "click-7.1.2"
VENV = ROOT / "venv"
PACKAGE = "src/click"
GATES = ["ruff", "mypy", "pytest"]
# The harness's own pins for the target's test tools (what setup_oss.sh uses for its newer envs).


def policy() -> Policy:
    return parse_policy(
        f"""
[gates]
python = "{VENV / "bin" / "python"}"
pythonpath = ["src"]
[gates.ruff]
paths = ["{PACKAGE}"]
[gates.mypy]
paths = ["{PACKAGE}"]
[gates.pytest]
paths = ["tests"]
cov = ["click"]
args = ["-q"]
# The whole suite takes about 20 s on a loaded machine; a mutant can loop forever.
timeout = 120
[gates.bandit]
paths = ["{PACKAGE}"]
[gates.imports]
enabled = false
[gates.secrets]
enabled = false
"""
    )


def git(*args: str) -> str:
    return sdist_git(REPO, *args)


# ---------------------------------------------------------------------------- prepare
def prepare() -> None:
    prepare_sdist("click", "7.1.2", REPO, VENV, tools=TEST_TOOLS, editable=False)
    print(f"{REPO} at {git('rev-parse', 'HEAD').strip()}, venv {VENV}")


# ---------------------------------------------------------------------------- patches
@dataclass
class Patch:
    name: str
    kind: str  # mutation | ruff-fix
    path: str
    text: str  # the whole new file


_FLIP = {
    ast.Eq: "!=",
    ast.NotEq: "==",
    ast.Lt: ">=",
    ast.GtE: "<",
    ast.Gt: "<=",
    ast.LtE: ">",
    ast.Is: "is not",
    ast.IsNot: "is",
    ast.In: "not in",
    ast.NotIn: "in",
}
_OP_TEXT = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.GtE: ">=",
    ast.Gt: ">",
    ast.LtE: "<=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}


def mutations(path: str, text: str) -> list[Patch]:
    """Single-line mutants: a comparison flipped, a return value dropped, a constant changed."""
    lines = text.splitlines(keepends=True)
    out: list[Patch] = []

    def replace(line: int, col: int, end: int, new: str, what: str) -> None:
        old = lines[line - 1]
        # ast columns are UTF-8 byte offsets; click's sources are ASCII on these lines.
        if not old.isascii():
            return
        mutated = old[:col] + new + old[end:]
        body = "".join(lines[: line - 1]) + mutated + "".join(lines[line:])
        out.append(Patch(f"{path}:{line} {what}", "mutation", path, body))

    for node in ast.walk(ast.parse(text)):
        if getattr(node, "lineno", None) != getattr(node, "end_lineno", -1):
            continue
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _FLIP:
            op = type(node.ops[0])
            seg = lines[node.lineno - 1][node.left.end_col_offset : node.comparators[0].col_offset]
            if seg.strip() == _OP_TEXT[op]:
                start = node.left.end_col_offset + seg.index(_OP_TEXT[op])
                replace(
                    node.lineno,
                    start,
                    start + len(_OP_TEXT[op]),
                    _FLIP[op],
                    f"flip {_OP_TEXT[op]} to {_FLIP[op]}",
                )
        elif isinstance(node, ast.Return) and node.value is not None:
            if not (isinstance(node.value, ast.Constant) and node.value.value is None):
                replace(
                    node.lineno,
                    node.value.col_offset,
                    node.value.end_col_offset,
                    "None",
                    "drop the return value",
                )
        elif isinstance(node, ast.Constant) and type(node.value) in (int, bool):
            new = str(not node.value) if isinstance(node.value, bool) else str(node.value + 1)
            replace(node.lineno, node.col_offset, node.end_col_offset, new, f"constant -> {new}")
    return out


def ruff_fixes(path: str, text: str) -> list[Patch]:
    """One patch per finding that ruff fixes safely, with ruff's own edits."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--isolated",
            "--select",
            "UP,SIM,C4,RUF,PIE,RET,F,I,E,W,B,PERF",
            "--output-format",
            "json",
            "--exit-zero",
            "--stdin-filename",
            path,
            "-",
        ],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    out = []
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    for f in json.loads(proc.stdout):
        fix = f.get("fix")
        if not fix or fix.get("applicability") != "safe":
            continue
        new = text
        for edit in sorted(
            fix["edits"],
            key=lambda e: (e["location"]["row"], e["location"]["column"]),
            reverse=True,
        ):
            a = offsets[edit["location"]["row"] - 1] + edit["location"]["column"] - 1
            b = offsets[edit["end_location"]["row"] - 1] + edit["end_location"]["column"] - 1
            new = new[:a] + edit["content"] + new[b:]
        if new != text:
            out.append(
                Patch(f"{path}:{f['location']['row']} ruff {f['code']}", "ruff-fix", path, new)
            )
    return out


def make_patches(count: int, seed: int) -> list[Patch]:
    rng = random.Random(seed)
    mutants: list[Patch] = []
    fixes: dict[str, list[Patch]] = {}
    for file in sorted((REPO / PACKAGE).glob("*.py")):
        rel = file.relative_to(REPO).as_posix()
        text = file.read_text(encoding="utf-8")
        mutants += mutations(rel, text)
        for p in ruff_fixes(rel, text):
            fixes.setdefault(p.name.split(" ruff ")[1], []).append(p)
    half = count // 2
    picked = rng.sample(mutants, min(half, len(mutants)))
    # Round-robin over rules, so the fixes are not all one rule.
    rules = sorted(fixes)
    for rule in rules:
        rng.shuffle(fixes[rule])
    while len(picked) < count and any(fixes.values()):
        for rule in rules:
            if fixes[rule] and len(picked) < count:
                picked.append(fixes[rule].pop())
    return picked


# ---------------------------------------------------------------------------- run
def ruff_findings(pol: Policy, path: str) -> list[Finding]:
    """What the loop's quick check does: ruff on the changed file only."""
    one = pol.model_copy(deep=True)
    one.gates.ruff.paths = [path]
    result = run_gates(REPO, one, only=["ruff"]).results["ruff"]
    if result.status == GateStatus.ERROR:
        raise SystemExit(f"ruff could not run: {result.reason}")
    return result.findings


def bench(count: int, seed: int, out: Path | None = None) -> None:
    os.environ.setdefault("HARNESS_CACHE_DIR", tempfile.mkdtemp(prefix="bench-verify-cache-"))
    git("reset", "-q", "--hard")
    git("clean", "-qfdx", "-e", "*.egg-info")
    pol = policy()
    patches = make_patches(count, seed)
    t0 = time.monotonic()
    baseline = run_gates(REPO, pol)
    base_secs = time.monotonic() - t0
    bad = [n for n, r in baseline.results.items() if r.status == GateStatus.ERROR]
    if bad:
        raise SystemExit(
            f"gates could not run at the start: {bad}: {baseline.results[bad[0]].reason}"
        )
    counts = baseline.results["pytest"].counts()
    print(f"start: {len(patches)} patches; gates {base_secs:.1f}s; tests {counts}")
    rows = []
    with Verifier(REPO, pol, GATES, baseline) as verifier:
        t0 = time.monotonic()
        verifier.start()
        start_secs = time.monotonic() - t0
        print(
            f"verifier start (coverage map + mypy daemon): {start_secs:.1f}s; "
            f"map: {'ok' if verifier.map else verifier.map_problem}; "
            f"mypy: {verifier.mypy_problem or 'daemon up'}"
        )
        ruff_before: dict[str, list[Finding]] = {}
        for i, patch in enumerate(patches, 1):
            git("reset", "-q", "--hard")
            if patch.path not in ruff_before:
                ruff_before[patch.path] = ruff_findings(pol, patch.path)
            (REPO / patch.path).write_text(patch.text, encoding="utf-8")
            # The per-patch check, as the loop runs it.
            t0 = time.monotonic()
            lint = new_findings(ruff_before[patch.path], ruff_findings(pol, patch.path))
            # As in the loop, a patch ruff refuses goes no further.
            check = None if lint else verifier.check([patch.path])
            quick_secs = time.monotonic() - t0
            quick_ok = check is not None and check.ok
            quick_why = [f"ruff {f.code} {f.message}" for f in lint] + (
                check.reasons if check else []
            )
            # The full gates on the same tree, against the start.
            t0 = time.monotonic()
            after = run_gates(REPO, pol)
            regs = blocking(
                compare(baseline, after, pol.regression, rerun=make_rerunner(REPO, pol))
            )
            full_secs = time.monotonic() - t0
            row = {
                "patch": patch.name,
                "kind": patch.kind,
                "quick_ok": quick_ok,
                "full_ok": not regs,
                "quick_s": quick_secs,
                "full_s": full_secs,
                "selection": check.selection if check else "ruff",
                "tests_run": len(check.tests_run) if check else 0,
                "quick_why": quick_why[:3],
                "full_why": [r.message for r in regs[:3]],
                "why": check.why if check else "refused by ruff",
            }
            rows.append(row)
            print(
                f"[{i:2}/{len(patches)}] {patch.kind:8} quick {'ok ' if quick_ok else 'BAD'} "
                f"{quick_secs:5.1f}s ({row['selection']}, {row['tests_run']} tests)  "
                f"full {'ok ' if not regs else 'BAD'} {full_secs:5.1f}s  {patch.name}",
                flush=True,
            )
    git("reset", "-q", "--hard")
    if out is not None:
        out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    report(rows, start_secs, base_secs)


def report(rows: list[dict[str, object]], start_secs: float, base_secs: float) -> None:
    quick = [float(str(r["quick_s"])) for r in rows]
    full = [float(str(r["full_s"])) for r in rows]
    print()
    print(
        f"patches: {len(rows)} ({sum(r['kind'] == 'mutation' for r in rows)} mutations, "
        f"{sum(r['kind'] == 'ruff-fix' for r in rows)} ruff fixes)"
    )
    print(
        f"refused by the full gates: {sum(not r['full_ok'] for r in rows)}; "
        f"by the per-patch check: {sum(not r['quick_ok'] for r in rows)}"
    )
    for sel in ("selected", "all", "none", "ruff"):
        print(f"  selection {sel}: {sum(r['selection'] == sel for r in rows)}")
    print(
        f"per patch, wall: per-patch check mean {statistics.mean(quick):.2f}s "
        f"(median {statistics.median(quick):.2f}s); full gates mean {statistics.mean(full):.2f}s "
        f"(median {statistics.median(full):.2f}s)"
    )
    print(f"ratio full/per-patch (mean): {statistics.mean(full) / statistics.mean(quick):.1f}x")
    print(
        f"once per block: verifier start {start_secs:.1f}s "
        f"(the start's gates took {base_secs:.1f}s)"
    )
    differ = [r for r in rows if r["quick_ok"] != r["full_ok"]]
    print(f"verdicts disagree on {len(differ)} of {len(rows)} patches")
    for r in differ:
        print(
            f"  {r['patch']}: per-patch {'ok' if r['quick_ok'] else 'refused'} "
            f"({r['selection']}: {r['why']}; {r['quick_why']}), "
            f"full {'ok' if r['full_ok'] else 'refused'} ({r['full_why']})"
        )


def land(repo: Path, patches: list[Path], gates: list[str]) -> None:
    """See the module docstring: each patch's landing check, timed."""
    from harness.guard import behaviour
    from harness.policy import resolve_policy

    os.environ.setdefault("HARNESS_CACHE_DIR", tempfile.mkdtemp(prefix="bench-verify-cache-"))
    pol = resolve_policy(repo).policy
    sdist_git(repo, "reset", "-q", "--hard")
    t0 = time.monotonic()
    baseline = run_gates(repo, pol, only=gates, use_cache=False)
    print(f"start gates {gates}: {time.monotonic() - t0:.1f}s")
    with Verifier(repo, pol, gates, baseline) as verifier:
        t0 = time.monotonic()
        verifier.start()
        print(
            f"verifier start: {time.monotonic() - t0:.1f}s; map: "
            f"{'ok' if verifier.map else verifier.map_problem}; mypy: "
            f"{verifier.mypy_problem or 'daemon up'}"
        )
        for patch in patches:
            sdist_git(repo, "reset", "-q", "--hard")
            sdist_git(repo, "apply", str(patch))
            paths = [
                line[len("+++ b/") :].strip()
                for line in patch.read_text(encoding="utf-8").splitlines()
                if line.startswith("+++ b/")
            ]
            before = baseline.results.get("pytest")
            t0 = time.monotonic()
            folded = getattr(behaviour, "check_with_verifier", None)
            if folded is not None:
                layer, check = folded(repo, pol, paths, before, verifier)
                runs = check.pytest_runs + layer.pytest_runs
            else:  # the harness before the fold: the layer's run, then the verifier's
                selected = behaviour.tests_selected(verifier, paths)
                layer = behaviour.check_behaviour(repo, pol, paths, before, None, selected)
                check = verifier.check(paths)
                runs = -1  # not counted then
            secs = time.monotonic() - t0
            print(
                f"{patch.name}: {secs:6.1f}s ok={check.ok and layer.ok} "
                f"selection={check.selection} tests={len(check.tests_run)} "
                f"pytest_runs={runs} layer_ran={layer.layer.ran} | {check.why[:160]}",
                flush=True,
            )
    sdist_git(repo, "reset", "-q", "--hard")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("prepare")
    r = sub.add_parser("run")
    r.add_argument("--patches", type=int, default=60)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", type=Path, help="write each patch's row here as JSON")
    lp = sub.add_parser("land")
    lp.add_argument("repo", type=Path)
    lp.add_argument("patches", type=Path, nargs="+")
    lp.add_argument("--gates", default="pytest,mypy")
    args = parser.parse_args()
    if args.cmd == "prepare":
        prepare()
    elif args.cmd == "land":
        land(args.repo.resolve(), args.patches, args.gates.split(","))
    else:
        bench(args.patches, args.seed, args.out)


if __name__ == "__main__":
    main()
