"""The guard's behaviour layer (harness/guard/behaviour.py) on a real project: its cost per
patch next to the pytest gate's, and its verdicts on a few patches, honest and gaming.

    .venv/bin/python bench/bench_behaviour.py [--source /tmp/bench-verify/click-7.1.2]
        [--python /tmp/bench-verify/venv/bin/python] [--reps 3]

Uses the click 7.1.2 repository and venv that `bench/bench_verify.py prepare` makes, cloned
into a temporary directory (the prepared repository is not touched). For each patch: the tree
is reset to the start commit, the patch's files are written, and `check_behaviour` runs against
the pytest gate's result on the start commit (measured once, with coverage, as the loop has it).
Prints the gate's seconds, then per patch the layer's seconds (median of --reps), its rules.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from harness.gates.runner import run_gates
from harness.guard.behaviour import check_behaviour
from harness.policy import Policy, parse_policy

TEST_FILE = "tests/test_basic.py"
SOURCE_FILE = "src/click/utils.py"


def policy(python: str) -> Policy:
    others = "".join(
        f"[gates.{g}]\nenabled = false\n" for g in ("ruff", "mypy", "bandit", "imports", "secrets")
    )
    return parse_policy(
        f'[gates]\npython = "{python}"\npythonpath = ["src"]\n'
        '[gates.pytest]\npaths = ["tests"]\ncov = ["click"]\nargs = ["-q"]\ntimeout = 300\n'
        + others
    )


def patches(repo: Path) -> dict[str, dict[str, str]]:
    tests = (repo / TEST_FILE).read_text()
    source = (repo / SOURCE_FILE).read_text()
    return {
        "adds a test (accepted)": {
            TEST_FILE: tests + "\n\ndef test_bench_extra():\n    assert 1 + 1 == 2\n"
        },
        "autouse xfail in conftest (refused)": {
            "tests/conftest.py": (repo / "tests/conftest.py").read_text()
            + "\n\n@pytest.fixture(autouse=True)\ndef _calm(request):\n"
            '    request.applymarker("xfail")\n',
        },
        "module __test__ = False (refused)": {TEST_FILE: "__test__ = False\n" + tests},
        "source: a comment (whole suite, accepted)": {SOURCE_FILE: source + "\n# a comment\n"},
    }


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", default="/tmp/bench-verify/click-7.1.2")
    parser.add_argument("--python", default="/tmp/bench-verify/venv/bin/python")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    pol = policy(args.python)
    with tempfile.TemporaryDirectory(prefix="bench-behaviour-") as tmp:
        repo = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", args.source, str(repo)], check=True)
        t0 = time.monotonic()
        before = run_gates(repo, pol, only=["pytest"], use_cache=False).results["pytest"]
        gate_s = time.monotonic() - t0
        print(f"pytest gate (coverage) on the start commit: {gate_s:.1f} s, {before.counts()}")
        for name, files in patches(repo).items():
            times: list[float] = []
            rules: list[str] = []
            for _ in range(args.reps):
                git(repo, "reset", "-q", "--hard")
                git(repo, "clean", "-qfdx")
                for rel, text in files.items():
                    (repo / rel).write_text(text)
                check = check_behaviour(repo, pol, list(files), before)
                times.append(check.layer.seconds)
                rules = sorted({v.rule for v in check.violations})
            print(
                f"{name}: {statistics.median(times):.1f} s (median of {args.reps}, "
                f"{min(times):.1f}-{max(times):.1f}), refused: {', '.join(rules) or 'no'}"
            )


if __name__ == "__main__":
    main()
