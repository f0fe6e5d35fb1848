"""Which real patches the guard decides differently from a baseline revision.

    .venv/bin/python bench/guard_decisions.py REPO --baseline REV

REPO is a clone whose history is real development (it checks out commits; use a clone).
Each changed text file of each commit is one patch, as in bench_guard.py, checked by both
revisions with gate-config protection on. Prints each patch that one accepts and the other
refuses, with the rules, then the counts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import bench_guard as bg


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo", type=Path)
    ap.add_argument("--baseline", required=True, help="git revision of this checkout")
    args = ap.parse_args()
    patches = bg.collect(args.repo)
    cfg = {"protect_gate_config": True}
    newly_refused = newly_accepted = both = 0
    with tempfile.TemporaryDirectory() as tmp:
        bg.export(args.baseline, Path(tmp))
        base = bg.load(Path(tmp), args.repo, cfg)
        current = bg.load(bg.HERE, args.repo, cfg)
        checked_out = None
        for parent, kind, text in patches:
            if parent != checked_out:
                bg.git(args.repo, "checkout", "-q", "--detach", parent)
                checked_out = parent
            before, after = base(text), current(text)
            head = text.splitlines()[0][11:90] if text else "?"
            if before.accepted and not after.accepted:
                newly_refused += 1
                print(f"newly refused ({kind}, parent {parent[:10]}): {head}")
                for v in after.violations:
                    print(f"    {v.rule}: {v.message[:160]}")
            elif after.accepted and not before.accepted:
                newly_accepted += 1
                print(f"newly accepted ({kind}, parent {parent[:10]}): {head}")
            elif after.accepted:
                both += 1
    print(
        f"{len(patches)} patches: accepted by both {both}, newly refused {newly_refused}, "
        f"newly accepted {newly_accepted}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
