"""`harness gates` on a real project: its counts against the tools run by hand, and its time.

    .venv/bin/python bench/bench_gates.py verify [REPO] [POLICY]
    .venv/bin/python bench/bench_gates.py time   [REPO] [POLICY] [--rounds N] [--baseline PY]
                                                  [--side-by-side]
    .venv/bin/python bench/bench_gates.py cpu    [REPO] [POLICY] [--rounds N] [--baseline PY]
    .venv/bin/python bench/bench_gates.py prepare-click7   # /tmp/oss/click-7.1.2, its venv
    .venv/bin/python bench/bench_gates.py cached [REPO] [POLICY]
    .venv/bin/python bench/bench_gates.py shift  [REPO] [POLICY]
    .venv/bin/python bench/bench_gates.py ids    [REPO] [POLICY]

Defaults: /tmp/oss/click-8.1.7 with bench/policies/click.toml (made by bench/setup_oss.sh).

The "by hand" commands are written here from the tools' own CLIs and their ordinary outputs (ruff's
JSON list, mypy's text lines and "Found N errors", pytest's closing summary line, `coverage
report`, bandit's JSON, `lint-imports`' "Contracts: N kept, M broken", `detect-secrets scan` of the
git files), with the policy's interpreter, paths, args and config files. They do not reuse the
gates' code, so `verify` is a cross-check rather than the gates agreeing with themselves. `time`
runs those same commands one after another against `harness gates --no-cache` (concurrent), each
side with cold tool caches, in alternating order, and prints the ratio; `--side-by-side` adds the
by-hand commands all started at once, which tells what running the tools concurrently costs on the
machine from what the harness adds. `cpu` charges every process of one `harness gates --no-cache`
its own CPU (the tools, the probes, git, the harness's own process) beside each tool run by hand;
with `--baseline` another harness install takes its turn in each round too. `shift` checks, in a
clone, that findings moved by a line added at the top of their files keep their fingerprints. `ids`
checks that the pytest gate's test ids are exactly the node ids `pytest --collect-only -q` lists
(re-runs hand those ids back to pytest).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdist import TEST_TOOLS, prepare_sdist
from sdist import git as sdist_git

from harness.policy import Policy, resolve_policy

HERE = Path(__file__).resolve().parent
DEFAULT_REPO = Path("/tmp/oss/click-8.1.7")
DEFAULT_POLICY = HERE / "policies" / "click.toml"
HARNESS = [sys.executable, "-m", "harness"]
TIMEOUT = 1800
# As the gates do: no bytecode written into the target, no colour in parsed output.
HAND_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"}


@dataclass
class Hand:
    """What the tools said when run by hand: numbers to compare, and the commands run."""

    numbers: dict[str, Any] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu: float = 0.0
    # False on the side-by-side run: `coverage report` is not a tool run, and there its CPU
    # could not be told apart from the tools' (children are charged as they are reaped).
    extras: bool = True


def children_cpu() -> float:
    """user+sys seconds of all waited-for descendants: the work done, whatever the load."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def sh(
    argv: list[str], repo: Path, hand: Hand, env: dict[str, str] | None = None, timed: bool = True
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **HAND_ENV, **(env or {})}
    start, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.run(
        argv, cwd=repo, env=full, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    if timed:
        hand.seconds += time.perf_counter() - start
        hand.cpu += children_cpu() - cpu
    shown = " ".join(a if " " not in a else repr(a) for a in argv)
    hand.commands.append(f"{' '.join(f'{k}={v}' for k, v in (env or {}).items())} {shown}".strip())
    return proc


def tool(py: str, name: str) -> list[str]:
    """The tool as its console script in the target env (what a person types)."""
    return [str(Path(py).parent / name)]


def pythonpath(repo: Path, pol: Policy) -> dict[str, str]:
    """The policy's `pythonpath` dirs on PYTHONPATH, as the gates that import the target set it
    (lint-imports from the harness's env finds a src/ layout's packages only so)."""
    dirs = [str(repo / d) for d in pol.gates.pythonpath]
    return {"PYTHONPATH": os.pathsep.join(dirs)} if dirs else {}


def static_tool(name: str) -> list[str]:
    """A static tool as its console script in the harness's env: the gates run ruff, mypy,
    bandit, lint-imports and detect-secrets from there, so the by-hand side runs the very same
    installation (the target env need not have them)."""
    return [str(Path(sys.executable).parent / name)]


def hand_ruff(py: str, repo: Path, pol: Policy, tmp: Path, hand: Hand) -> None:
    cfg = pol.gates.ruff
    argv = [*static_tool("ruff"), "check", "--output-format", "json", "--no-cache"]
    argv += ["--config", cfg.config] if cfg.config else []
    proc = sh([*argv, *cfg.args, *(cfg.paths or ["."])], repo, hand)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"ruff exited {proc.returncode}: {proc.stderr[-300:]}")
    items = json.loads(proc.stdout)
    hand.numbers["ruff"] = {
        "findings": len(items),
        "by_code": dict(Counter(str(i["code"] or "invalid-syntax") for i in items)),
    }


_MYPY_ERROR = re.compile(r"^\S.*?:\d+(?::\d+)?: error: .*?(?:  \[(?P<code>[a-z0-9-]+)\])?$")
_MYPY_FOUND = re.compile(r"^Found (\d+) errors? in \d+ files?")


def hand_mypy(py: str, repo: Path, pol: Policy, tmp: Path, hand: Hand) -> None:
    cfg = pol.gates.mypy
    argv = [*static_tool("mypy"), "--cache-dir", str(tmp / "mypy-cache")]
    # The target env decides what imports resolve to, as in the gate.
    argv += ["--python-executable", py] if py != sys.executable else []
    argv += ["--config-file", cfg.config] if cfg.config else []
    proc = sh([*argv, *cfg.args, *(cfg.paths or ["."])], repo, hand)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"mypy exited {proc.returncode}: {proc.stdout[-300:]}{proc.stderr[-300:]}")
    codes = [m["code"] or "misc" for m in map(_MYPY_ERROR.match, proc.stdout.splitlines()) if m]
    found = [m for m in map(_MYPY_FOUND.match, proc.stdout.splitlines()) if m]
    summary = int(found[0].group(1)) if found else 0
    if summary != len(codes):
        raise SystemExit(f"mypy: {len(codes)} error lines but its summary says {summary}")
    hand.numbers["mypy"] = {"findings": summary, "by_code": dict(Counter(codes))}


_PYTEST_SUMMARY = re.compile(r"^=*\s*(\d+ [a-z]+.*) in [\d.]+s")


def hand_pytest(py: str, repo: Path, pol: Policy, tmp: Path, hand: Hand) -> None:
    cfg = pol.gates.pytest
    env = {"COVERAGE_FILE": str(tmp / ".coverage"), **pythonpath(repo, pol)}
    # no:cacheprovider only keeps .pytest_cache out of the tree; it changes no count.
    argv = [*tool(py, "pytest"), "-p", "no:cacheprovider"]
    argv += [f"--cov={c}" for c in cfg.cov]
    argv += [f"--cov-config={cfg.config}"] if cfg.config else []
    proc = sh([*argv, *cfg.args, *cfg.paths], repo, hand, env)
    lines = [m for m in map(_PYTEST_SUMMARY.match, proc.stdout.splitlines()) if m]
    if not lines:
        raise SystemExit(f"pytest printed no summary line (exit {proc.returncode})")
    said = {
        word: int(n)
        for n, word in re.findall(r"(\d+) ([a-z]+(?: [a-z]+)?)", lines[-1].group(1))
        if not word.startswith("warning")
    }
    said = {("errors" if k == "error" else k): v for k, v in said.items()}
    hand.numbers["pytest"] = {"summary": lines[-1].group(0).strip("= "), "said": said}
    if cfg.cov and hand.extras:
        rc = ["--rcfile", cfg.config] if cfg.config else []
        rep = sh([*tool(py, "coverage"), "report", "--precision=2", *rc], repo, hand, env, False)
        total = [ln for ln in rep.stdout.splitlines() if ln.startswith("TOTAL")]
        if not total:
            raise SystemExit(f"coverage report has no TOTAL line: {rep.stdout[-300:]}")
        hand.numbers["coverage"] = {"percent": float(total[0].split()[-1].rstrip("%"))}


def hand_bandit(py: str, repo: Path, pol: Policy, tmp: Path, hand: Hand) -> None:
    cfg = pol.gates.bandit
    out = tmp / "bandit.json"
    argv = [*static_tool("bandit"), "-r", "-f", "json", "-o", str(out)]
    argv += ["-c", cfg.config] if cfg.config else []
    proc = sh([*argv, *cfg.args, *(cfg.paths or ["."])], repo, hand)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"bandit exited {proc.returncode}: {proc.stderr[-300:]}")
    data = json.loads(out.read_text(encoding="utf-8"))
    res = data["results"]
    hand.numbers["bandit"] = {
        "findings": len(res),
        "by_severity": dict(Counter(r["issue_severity"] for r in res)),
        "by_confidence": dict(Counter(r["issue_confidence"] for r in res)),
        "scan_errors": len(data.get("errors") or []),
    }


_CONTRACTS = re.compile(r"^Contracts: (\d+) kept, (\d+) broken\.", re.MULTILINE)


def hand_imports(py: str, repo: Path, pol: Policy, tmp: Path, hand: Hand) -> None:
    cfg = pol.gates.imports
    argv = [*static_tool("lint-imports"), "--no-cache"]
    argv += ["--config", cfg.config] if cfg.config else []
    proc = sh([*argv, *cfg.args], repo, hand, pythonpath(repo, pol))
    m = _CONTRACTS.search(proc.stdout)
    if m is None:
        raise SystemExit(f"lint-imports printed no contract summary: {proc.stdout[-300:]}")
    hand.numbers["imports"] = {"kept": int(m.group(1)), "broken": int(m.group(2))}


def hand_secrets(py: str, repo: Path, pol: Policy, tmp: Path, hand: Hand) -> None:
    cfg = pol.gates.secrets
    if cfg.config or cfg.paths or cfg.tool == "gitleaks":
        raise SystemExit("by-hand secrets scan covers detect-secrets over the whole repo only")
    # With no file arguments detect-secrets scans what `git ls-files` lists, by itself.
    proc = sh([*static_tool("detect-secrets"), "scan", *cfg.args], repo, hand)
    if proc.returncode != 0:
        raise SystemExit(f"detect-secrets exited {proc.returncode}: {proc.stderr[-300:]}")
    results = json.loads(proc.stdout)["results"]
    hand.numbers["secrets"] = {"findings": sum(len(v) for v in results.values())}


HAND: dict[str, Callable[[str, Path, Policy, Path, Hand], None]] = {
    "ruff": hand_ruff,
    "mypy": hand_mypy,
    "pytest": hand_pytest,
    "bandit": hand_bandit,
    "imports": hand_imports,
    "secrets": hand_secrets,
}


def load(repo: Path, policy: Path) -> Policy:
    """The policy as `harness gates` resolves it: what the file leaves unset (pythonpath, paths)
    is detected from the repository, so the by-hand side runs with the same settings."""
    return resolve_policy(repo, policy).policy


def run_by_hand(repo: Path, pol: Policy) -> Hand:
    py = pol.gates.python or sys.executable
    hand = Hand()
    with tempfile.TemporaryDirectory(prefix="bench-hand-") as tmp:
        for name, fn in HAND.items():
            if getattr(pol.gates, name).enabled:
                fn(py, repo, pol, Path(tmp), hand)
    return hand


def run_by_hand_side_by_side(repo: Path, pol: Policy) -> tuple[float, float]:
    """Wall and CPU seconds of the same by-hand commands all started at once (as `a & b & c;
    wait` would): what running the tools side by side costs on this machine with no harness in
    between, so the harness's own share of its overhead can be told from the concurrency's."""
    from concurrent.futures import ThreadPoolExecutor

    py = pol.gates.python or sys.executable
    hand = Hand(extras=False)
    names = [name for name in HAND if getattr(pol.gates, name).enabled]
    with tempfile.TemporaryDirectory(prefix="bench-hand-") as tmp:
        start, cpu = time.perf_counter(), children_cpu()
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            jobs = [pool.submit(HAND[name], py, repo, pol, Path(tmp), hand) for name in names]
            for job in jobs:
                job.result()
        return time.perf_counter() - start, children_cpu() - cpu


def run_harness(
    repo: Path, policy: Path, cache_dir: Path, *, no_cache: bool, python: str | None = None
) -> tuple[dict[str, Any], float, float]:
    """The gate JSON, wall seconds and CPU seconds of one `harness gates` call (by the harness
    installed for `python`, by default this one)."""
    harness = [python, "-m", "harness"] if python else HARNESS
    argv = [*harness, "gates", "--repo", str(repo), "--policy", str(policy), "--json"]
    argv += ["--no-cache"] if no_cache else []
    env = {**os.environ, "HARNESS_CACHE_DIR": str(cache_dir)}
    start, cpu = time.perf_counter(), children_cpu()
    # cwd outside any checkout: `-m harness` would import ./harness ahead of the install.
    proc = subprocess.run(
        argv, cwd=cache_dir, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    seconds, cpu = time.perf_counter() - start, children_cpu() - cpu
    if proc.returncode not in (0, 1):
        raise SystemExit(f"harness gates exited {proc.returncode}: {proc.stderr[-500:]}")
    return json.loads(proc.stdout), seconds, cpu


def harness_numbers(out: dict[str, Any]) -> dict[str, Any]:
    """The gate JSON reduced to the numbers the hand run gives."""
    g = out["gates"]
    nums: dict[str, Any] = {}
    for name in ("ruff", "mypy"):
        if name in g:
            nums[name] = {
                "findings": g[name]["findings"],
                "by_code": g[name]["details"].get("by_code", {}),
            }
    if "pytest" in g:
        nums["pytest"] = dict(g["pytest"]["findings"])
    if "coverage" in g:
        nums["coverage"] = {"percent": round(g["coverage"]["findings"]["percent"], 2)}
    if "bandit" in g:
        d = g["bandit"]["details"]
        nums["bandit"] = {
            "findings": g["bandit"]["findings"],
            "by_severity": d.get("by_severity", {}),
            "by_confidence": d.get("by_confidence", {}),
            "scan_errors": 0 if g["bandit"]["status"] != "error" else "error",
        }
    if "imports" in g:
        d = g["imports"]["details"]
        nums["imports"] = {"kept": len(d.get("kept", [])), "broken": len(d.get("broken", []))}
    if "secrets" in g:
        nums["secrets"] = {"findings": g["secrets"]["findings"]}
    return nums


def pytest_expected(said: dict[str, int]) -> dict[str, int]:
    """pytest's summary words in the gate's buckets (passed, failed, errors, skipped, xfailed,
    xpassed: pytest's own counts, kept apart).

    A non-strict xpass leaves no trace in JUnit (it reads passed there), so the gate counts it
    as passed; subtests are not test items. Anything else unexpected is kept, so it shows up as
    a mismatch.
    """
    out = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "xfailed": 0, "xpassed": 0}
    bucket = {word: word for word in out} | {"xpassed": "passed", "deselected": ""}
    for word, n in said.items():
        if word.startswith("subtests"):
            continue
        key = bucket.get(word, word)
        if key:
            out[key] = out.get(key, 0) + n
    return out


def verify(repo: Path, policy: Path) -> int:
    pol = load(repo, policy)
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
        out, gate_secs, _ = run_harness(repo, policy, Path(cache), no_cache=True)
    errors = {n: r["reason"] for n, r in out["gates"].items() if r["status"] == "error"}
    hand = run_by_hand(repo, pol)
    got = harness_numbers(out)
    want = dict(hand.numbers)
    if "pytest" in want:
        want["pytest"] = pytest_expected(want["pytest"]["said"])
    print(f"repo {repo} @ tree {out['tree'][:12]}  policy {policy}")
    print(f"harness gates {gate_secs:.1f}s; by hand, one after another, {hand.seconds:.1f}s\n")
    print("| gate | harness gates | by hand | match |")
    print("| --- | --- | --- | --- |")
    bad = 0
    order = ["ruff", "mypy", "pytest", "coverage", "bandit", "imports", "secrets"]
    for name in [n for n in order if n in got or n in want]:
        g, w = got.get(name), want.get(name)
        ok = g == w
        bad += not ok
        shown_w = w
        if name == "pytest":
            shown_w = f"{hand.numbers['pytest']['summary']} -> {w}"
        print(f"| {name} | {_short(g)} | {_short(shown_w)} | {'yes' if ok else '**NO**'} |")
    for name, why in errors.items():
        print(f"\ngate {name} is an ERROR: {why}")
    print("\nby-hand commands (cwd = repo):")
    for c in hand.commands:
        print(f"  {c}")
    return 1 if bad or errors else 0


def _short(v: Any) -> str:
    return json.dumps(v, sort_keys=True).replace("|", "\\|") if v is not None else "-"


def load_now() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


def timing(
    repo: Path, policy: Path, rounds: int, baseline: str | None = None, side_by_side: bool = False
) -> int:
    """`harness gates --no-cache` against the tools one after another, taking turns; with
    `baseline` (the python of another harness install) that harness takes its turn too, so a
    change is measured against its starting point in the same run, under the same load."""
    pol = load(repo, policy)
    sides = ["conc", "seq"] + (["base"] if baseline else []) + (["par"] if side_by_side else [])
    wall: dict[str, list[float]] = {side: [] for side in sides}
    cpu: dict[str, list[float]] = {side: [] for side in sides}
    print(f"repo {repo}  policy {policy}  rounds {rounds}")
    print(f"harness: {_which_harness(sys.executable)}")
    if baseline:
        print(f"baseline: {_which_harness(baseline)}")
    print(f"{load_now()} (1/5 min) at start on {os.cpu_count()} cores")
    head = "round  harness gates --no-cache  one after another  ratio"
    head += "  CPU s: harness / by hand (+overhead)"
    head += "  baseline: wall, ratio, CPU (+overhead)" if baseline else ""
    head += "  by hand side by side: wall, ratio, CPU (+overhead)" if side_by_side else ""
    print(f"{head}  load before")
    for i in range(rounds):
        before = load_now()
        # Rotate which side goes first, so that none always gets the warmer page cache.
        for side in sides[i % len(sides) :] + sides[: i % len(sides)]:
            if side == "seq":
                # Only the tool runs are timed, not the by-hand extras (`coverage report`).
                hand = run_by_hand(repo, pol)
                w, c = hand.seconds, hand.cpu
            elif side == "par":
                w, c = run_by_hand_side_by_side(repo, pol)
            else:
                # A fresh HARNESS_CACHE_DIR: mypy's incremental cache starts cold, as by hand.
                with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
                    py = baseline if side == "base" else None
                    _, w, c = run_harness(repo, policy, Path(cache), no_cache=True, python=py)
            wall[side].append(w)
            cpu[side].append(c)
        print(f"{i + 1:>5}  {_row(wall, cpu, -1, baseline, side_by_side)}  {before}")
    med = {side: [statistics.median(wall[side])] for side in sides}
    mcpu = {side: [statistics.median(cpu[side])] for side in sides}
    print(f"median {_row(med, mcpu, 0, baseline, side_by_side)}")
    names = {"conc": "harness", "base": "baseline", "par": "by hand side by side"}
    for side in [s for s in sides if s != "seq"]:
        name = names[side]
        paired = statistics.median(c / q for c, q in zip(wall[side], wall["seq"], strict=True))
        over = statistics.median(c / q - 1 for c, q in zip(cpu[side], cpu["seq"], strict=True))
        ratio = med[side][0] / med["seq"][0]
        print(
            f"{name}: wall ratio of medians {ratio:.2f}, median of per-round ratios {paired:.2f};"
            f" median per-round CPU overhead {over * 100:+.1f}% of the tools' own"
        )
    print("(targets: wall ratio <= 0.7 on 2 cores; CPU overhead <= 5%)")
    print(f"{load_now()} at end")
    return 0


def _row(
    wall: dict[str, list[float]],
    cpu: dict[str, list[float]],
    i: int,
    baseline: str | None,
    side_by_side: bool = False,
) -> str:
    wc, ws, cc, cs = wall["conc"][i], wall["seq"][i], cpu["conc"][i], cpu["seq"][i]
    row = f"{wc:>23.2f}s  {ws:>16.2f}s  {wc / ws:>5.2f}"
    row += f"  {cc:>6.2f} / {cs:.2f} ({(cc / cs - 1) * 100:+.1f}%)"
    if baseline:
        wb, cb = wall["base"][i], cpu["base"][i]
        row += f"  {wb:.2f}s, {wb / ws:.2f}, {cb:.2f} ({(cb / cs - 1) * 100:+.1f}%)"
    if side_by_side:
        wp, cp = wall["par"][i], cpu["par"][i]
        row += f"  {wp:.2f}s, {wp / ws:.2f}, {cp:.2f} ({(cp / cs - 1) * 100:+.1f}%)"
    return row


# Runs `harness gates` in this interpreter with each child reaped by wait4, so that every
# process the harness starts is charged its own user+sys seconds (threads run them side by
# side, so RUSAGE_CHILDREN deltas cannot tell them apart).
_RUSAGE_DRIVER = """
import json, os, subprocess, sys, threading
log, lock = [], threading.Lock()
def _wait(self, timeout):
    if self.returncode is not None:
        return self.returncode
    _, status, ru = os.wait4(self.pid, 0)
    self._handle_exitstatus(status)
    with lock:
        log.append([ru.ru_utime + ru.ru_stime, [str(a) for a in self.args]])
    return self.returncode
subprocess.Popen._wait = _wait
from harness.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps({"children": log}), file=sys.stderr)
"""


def _label(argv: list[str]) -> str:
    """A short name for a child process: the tool, or what a probe is."""
    if argv[:1] and Path(argv[0]).name == "git":
        return "git " + (argv[1] if len(argv) > 1 else "")
    if len(argv) > 2 and argv[1] == "-m":
        return argv[2].replace("_", "-")
    if len(argv) > 1 and argv[1] == "-c":
        return "probe: " + ("import check" if "find_spec" in argv[2] else "env versions")
    return Path(argv[0]).name


def _which_harness(python: str) -> str:
    """Which harness `python -m harness` runs: its directory and, for a checkout, its commit."""
    where = subprocess.run(
        [python, "-c", "import harness, os; print(os.path.dirname(harness.__file__))"],
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not where:
        return f"{python}: no harness"
    rev = subprocess.run(
        ["git", "-C", where, "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{python} -> {where}" + (f" @ {rev}" if rev else "")


def _charged(python: str, repo: Path, policy: Path) -> dict[str, float]:
    """CPU seconds per process of one `harness gates --no-cache` by the harness installed for
    `python`, keyed by _label, with the harness's own process as OWN."""
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
        argv = [python, "-c", _RUSAGE_DRIVER, "gates", "--repo", str(repo)]
        argv += ["--policy", str(policy), "--json", "--no-cache"]
        env = {**os.environ, "HARNESS_CACHE_DIR": cache}
        before = children_cpu()
        proc = subprocess.run(
            argv, cwd=cache, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
        whole = children_cpu() - before
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    charged: dict[str, float] = {}
    for seconds, child in report["children"]:
        charged[_label(child)] = charged.get(_label(child), 0.0) + seconds
    # The harness's own process is what the whole call used less its children: measured from
    # outside, so that the interpreter's exit (its last garbage collection, module teardown),
    # which comes after anything the process can report itself, is counted too.
    charged[OWN] = whole - sum(charged.values())
    return charged


OWN = "harness's own process"
TOOL_LABELS = {
    "ruff": "ruff",
    "mypy": "mypy",
    "pytest": "pytest",
    "bandit": "bandit",
    "imports": "lint-imports",
    "secrets": "detect-secrets",
}


def _split(charged: dict[str, float]) -> tuple[float, float, float]:
    """(the harness's own process, its probes and git, the tools) of one call."""
    tools = sum(v for k, v in charged.items() if k in TOOL_LABELS.values())
    return charged.get(OWN, 0.0), sum(charged.values()) - tools - charged.get(OWN, 0.0), tools


def cpu_breakdown(repo: Path, policy: Path, rounds: int = 1, baseline: str | None = None) -> int:
    """Where the CPU goes: each process of `harness gates --no-cache` against each by-hand
    command, and the harness's own process (start-up, imports, parsing, redaction). With
    `baseline` (another harness install's python) that harness takes its turn in every round,
    so a change is compared with its starting point under the same load."""
    pol = load(repo, policy)
    sides = ["harness", *(["baseline"] if baseline else []), "by hand"]
    python = {"harness": sys.executable, "baseline": baseline or ""}
    print(f"repo {repo}  policy {policy}  rounds {rounds}  {load_now()} on {os.cpu_count()} cores")
    for side in sides[:-1]:
        print(f"{side}: {_which_harness(python[side])}")
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    print(
        "round  "
        + "  ".join(f"{s}: own + probes/git + tools (own work / tools)" for s in sides[:-1])
        + "  by hand  load before"
    )
    for i in range(rounds):
        before = load_now()
        for side in sides[i % len(sides) :] + sides[: i % len(sides)]:
            if side == "by hand":
                runs[side].append(_hand_per_tool(repo, pol))
            else:
                runs[side].append(_charged(python[side], repo, policy))
        cells = []
        for side in sides[:-1]:
            own, probes, tools = _split(runs[side][-1])
            cells.append(f"{own:.2f} + {probes:.2f} + {tools:.2f} ({(own + probes) / tools:.1%})")
        hand = sum(runs["by hand"][-1].values())
        print(f"{i + 1:>5}  " + "  ".join(cells) + f"  {hand:.2f}  {before}")
    med = {side: _median_rows(runs[side]) for side in sides}
    print(f"\nmedians over {rounds} round(s), CPU s (user+sys, each process charged its own):\n")
    print("| process | " + " | ".join(sides) + " |")
    print("| --- |" + " --- |" * len(sides))
    labels = [TOOL_LABELS[g] for g in TOOL_LABELS if TOOL_LABELS[g] in med["by hand"]]
    others = sorted(
        {k for side in sides[:-1] for k in med[side]} - set(labels) - {OWN},
        key=lambda k: -max(med[side].get(k, 0.0) for side in sides[:-1]),
    )
    for label in [*labels, *others, OWN]:
        cells = [f"{med[side][label]:.2f}" if label in med[side] else "-" for side in sides]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("| **total** | " + " | ".join(f"**{sum(med[s].values()):.2f}**" for s in sides) + " |")
    print()
    for side in sides[:-1]:
        own_share = statistics.median(
            (own + probes) / tools for own, probes, tools in map(_split, runs[side])
        )
        over = statistics.median(
            sum(c.values()) / sum(h.values()) - 1
            for c, h in zip(runs[side], runs["by hand"], strict=True)
        )
        print(
            f"{side}: its own work (own process, probes, git) {own_share:.1%} of the tools' CPU in"
            f" the same call; whole call {over * 100:+.1f}% against the tools by hand (medians of"
            " per-round figures)"
        )
    print(f"(target: whole call within 5% of the tools by hand)  {load_now()} at end")
    return 0


def _hand_per_tool(repo: Path, pol: Policy) -> dict[str, float]:
    hand = Hand()
    per_tool: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-hand-") as tmp:
        for name, fn in HAND.items():
            if getattr(pol.gates, name).enabled:
                before = hand.cpu
                fn(pol.gates.python or sys.executable, repo, pol, Path(tmp), hand)
                per_tool[TOOL_LABELS[name]] = hand.cpu - before
    return per_tool


def _median_rows(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for row in rows for k in row}
    return {k: statistics.median(row.get(k, 0.0) for row in rows) for k in keys}


def cached(repo: Path, policy: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
        first, t1, c1 = run_harness(repo, policy, Path(cache), no_cache=False)
        second, t2, c2 = run_harness(repo, policy, Path(cache), no_cache=False)
    hits = [n for n, r in second["gates"].items() if r["cached"]]
    same = harness_numbers(first) == harness_numbers(second)
    print(f"repo {repo} @ tree {second['tree'][:12]}")
    print(f"first call (empty cache): {t1:.2f}s wall, {c1:.2f}s CPU")
    print(f"second call (unchanged tree): {t2:.2f}s wall, {c2:.2f}s CPU; cached: {', '.join(hits)}")
    print(f"all gates cached: {len(hits) == len(second['gates'])}; same numbers: {same}")
    return 0 if same and len(hits) == len(second["gates"]) else 1


SHIFT_GATES = ["ruff", "mypy", "bandit"]


def shift(repo: Path, policy: Path, files: int = 5) -> int:
    """Move every finding of the files with the most findings down one line, in a clone.

    Each finding's line changes and its fingerprint must not: none new, none gone.
    """
    from harness.gates.runner import run_gates

    pol = load(repo, policy)
    with tempfile.TemporaryDirectory(prefix="bench-shift-") as tmp:
        clone = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
        before = run_gates(clone, pol, only=SHIFT_GATES, use_cache=False)
        per_file = Counter(
            f.path for r in before.results.values() for f in r.findings if f.path.endswith(".py")
        )
        shifted = [path for path, _ in per_file.most_common(files)]
        for path in shifted:
            target = clone / path
            target.write_text("# shifted by bench_gates\n" + target.read_text(encoding="utf-8"))
        after = run_gates(clone, pol, only=SHIFT_GATES, use_cache=False)
    print(f"repo {repo}: one line added at the top of {', '.join(shifted)}")
    bad = 0
    for name in SHIFT_GATES:
        b, a = before.results[name], after.results[name]
        moved = sum(1 for f in b.findings if f.path in shifted)
        new = Counter(f.fingerprint for f in a.findings) - Counter(
            f.fingerprint for f in b.findings
        )
        gone = Counter(f.fingerprint for f in b.findings) - Counter(
            f.fingerprint for f in a.findings
        )
        bad += bool(new or gone) or a.status != b.status
        print(
            f"{name}: {len(b.findings)} -> {len(a.findings)} findings, {moved} in the shifted "
            f"files, {sum(new.values())} new fingerprint(s), {sum(gone.values())} gone"
        )
        for f in a.findings:
            if f.fingerprint in new:
                print(f"  new: {f.path}:{f.line} {f.code} {f.message[:100]}")
    return 1 if bad else 0


def ids(repo: Path, policy: Path) -> int:
    from harness.gates.runner import run_gates

    pol = load(repo, policy)
    cfg = pol.gates.pytest
    result = run_gates(repo, pol, only=["pytest"], use_cache=False).results["pytest"]
    gate_ids = {t.id for t in result.tests}
    py = pol.gates.python or sys.executable
    argv = [*tool(py, "pytest"), "-p", "no:cacheprovider", "--collect-only", "-q", *cfg.paths]
    proc = sh(argv, repo, Hand())
    collected = {ln for ln in proc.stdout.splitlines() if "::" in ln}
    print(f"repo {repo}: {len(gate_ids)} test ids from the gate, {len(collected)} collected")
    for tid in sorted(gate_ids - collected)[:10]:
        print(f"  only in the gate: {tid}")
    for tid in sorted(collected - gate_ids)[:10]:
        print(f"  only collected: {tid}")
    same = gate_ids == collected
    print(f"identical: {same}")
    return 0 if same else 1


CLICK7 = Path("/tmp/oss/click-7.1.2")
CLICK7_VENV = Path("/tmp/ossvenv-click7")
CLICK7_TESTS = TEST_TOOLS


def prepare_click7() -> int:
    """click 7.1.2 for bench/policies/click-7.1.2.toml: the sdist committed in a /tmp git repo
    (pinned author and date, so the tree hash is the same everywhere) and a venv with the tests'
    tools and click installed editable, as a user would have it."""
    prepare_sdist("click", "7.1.2", CLICK7, CLICK7_VENV, tools=CLICK7_TESTS, editable=True)
    tree = sdist_git(CLICK7, "rev-parse", "HEAD^{tree}").strip()
    status = sdist_git(CLICK7, "status", "--short").strip()
    print(f"{CLICK7} tree {tree}, {status or 'clean'}")
    print(f"venv {CLICK7_VENV}; policy {HERE / 'policies' / 'click-7.1.2.toml'}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    modes = ["verify", "time", "cpu", "cached", "shift", "ids", "prepare-click7"]
    ap.add_argument("mode", choices=modes)
    ap.add_argument("repo", nargs="?", type=Path, default=DEFAULT_REPO)
    ap.add_argument("policy", nargs="?", type=Path, default=DEFAULT_POLICY)
    ap.add_argument("--rounds", type=int, help="time: 5 by default; cpu: 1")
    ap.add_argument(
        "--baseline",
        help="time, cpu: also the harness installed for this python (e.g. main's venv), in turn",
    )
    ap.add_argument(
        "--side-by-side",
        action="store_true",
        help="time: also the by-hand commands all started at once, with no harness in between",
    )
    args = ap.parse_args()
    if args.mode == "prepare-click7":
        return prepare_click7()
    repo, policy = args.repo.resolve(), args.policy.resolve()
    if not (repo / ".git").exists():
        raise SystemExit(f"not a git repository: {repo} (see bench/setup_oss.sh)")
    if args.mode == "verify":
        return verify(repo, policy)
    if args.mode == "time":
        return timing(repo, policy, args.rounds or 5, args.baseline, args.side_by_side)
    if args.mode == "cpu":
        return cpu_breakdown(repo, policy, args.rounds or 1, args.baseline)
    if args.mode == "shift":
        return shift(repo, policy)
    if args.mode == "ids":
        return ids(repo, policy)
    return cached(repo, policy)


if __name__ == "__main__":
    sys.exit(main())
