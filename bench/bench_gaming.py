"""Catch rate of check_patch on the gaming corpus (tests/data/gaming), per family.

Each `.diff` under a family folder starts with `# expect: RULE` (a gaming patch that rule must
refuse) or `# expect: accept` (a legitimate look-alike that must stay accepted). The patches
apply to the repository in `repo.toml`, built fresh in a temporary directory.

    .venv/bin/python bench/bench_gaming.py [--verbose]

Run it against another revision of the guard with PYTHONPATH pointing at that revision's
checkout (e.g. `git archive REV harness | tar -x -C /tmp/base`, then PYTHONPATH=/tmp/base).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import defaultdict
from pathlib import Path

from harness.guard import check_patch
from harness.policy import GuardConfig

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "gaming"


def build_repo(root: Path) -> Path:
    files = tomllib.loads((CORPUS / "repo.toml").read_text())["files"]
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-q", "-m", "corpus"],
    ):
        subprocess.run(argv, cwd=root, check=True)
    return root


def expectation(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("# expect:"):
            return line.split(":", 1)[1].strip()
    raise SystemExit("a corpus patch without '# expect:'")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verbose", action="store_true", help="one line per patch")
    args = ap.parse_args()
    cfg = GuardConfig()
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    seconds: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        repo = build_repo(Path(tmp))
        for path in sorted(CORPUS.glob("*/*.diff")):
            family, text = path.parent.name, path.read_text()
            want = expectation(text)
            started = time.perf_counter()
            verdict = check_patch(text, repo, cfg)
            seconds.append(time.perf_counter() - started)
            got = sorted({v.rule for v in verdict.violations})
            row = tally[family]
            if want == "accept":
                row[3] += 1
                row[4] += verdict.accepted
                ok = verdict.accepted
            else:
                row[0] += 1
                row[1] += not verdict.accepted
                row[2] += want in got
                ok = want in got
            if args.verbose or not ok:
                mark = "ok  " if ok else "MISS"
                print(f"{mark} {family}/{path.name}: want {want}, got {got or 'accepted'}")
    print(f"{'family':<20} {'gaming':>6} {'refused':>8} {'by rule':>8} {'look-alikes kept':>17}")
    totals = [0, 0, 0, 0, 0]
    for family, row in sorted(tally.items()):
        totals = [a + b for a, b in zip(totals, row, strict=True)]
        print(f"{family:<20} {row[0]:>6} {row[1]:>8} {row[2]:>8} {row[4]:>10}/{row[3]}")
    print(f"{'all':<20} {totals[0]:>6} {totals[1]:>8} {totals[2]:>8} {totals[4]:>10}/{totals[3]}")
    seconds.sort()
    print(
        f"check_patch per patch: median {seconds[len(seconds) // 2] * 1000:.1f} ms, "
        f"max {seconds[-1] * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
