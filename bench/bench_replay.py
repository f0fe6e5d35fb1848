"""A run and its replay, side by side: wall time of `harness run` (builtin provider, its own
empty gate cache) and of `harness replay` on its record, and whether the replay reproduced.

    python bench/bench_replay.py REPO [STEPS.md] [--blocks 1,2] [--regate] [--replays N]

Both are timed as wall time and as CPU time (user + system of the command and of every process
it waited for: git, the gates' tools). On a shared machine the wall ratio follows the load
(a starved run waits longer than a starved replay); the CPU ratio hardly does. With --replays N
the record is replayed N times (the first is the side-by-side one).

REPO is cloned first (the clone is where both run), so the repository given is never touched;
an untracked harness.toml and STEPS script in it are copied along, and its .venv/ (the project's
interpreter, which a clone lacks) is linked in, excluded from git's view.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Took:
    wall: float
    cpu: float  # user + system of the command and every process it waited for (git, the tools)
    load: tuple[float, float]  # 1-minute load average before and after


def harness(
    *args: str, cwd: Path, env: dict[str, str]
) -> tuple[Took, subprocess.CompletedProcess[str]]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Took(wall, cpu, (load, os.getloadavg()[0])), proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo", type=Path)
    ap.add_argument("steps", nargs="?", default="STEPS.md")
    ap.add_argument("--blocks")
    ap.add_argument("--regate", action="store_true")
    ap.add_argument("--replays", type=int, default=1, help="replay the record this many times")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    clone = work / "target"
    subprocess.run(["git", "clone", "-q", str(args.repo), str(clone)], check=True)
    for name in ("harness.toml", args.steps):
        if (args.repo / name).is_file() and not (clone / name).exists():
            shutil.copy(args.repo / name, clone / name)
    for name in (".venv", "venv"):
        if (args.repo / name).is_dir() and not (clone / name).exists():
            (clone / name).symlink_to((args.repo / name).resolve())
            with (clone / ".git" / "info" / "exclude").open("a", encoding="utf-8") as fh:
                fh.write(f"/{name}\n")
    env = dict(os.environ, HARNESS_CACHE_DIR=str(work / "cache"))
    env.pop("ANTHROPIC_API_KEY", None)
    runs = work / "runs"
    run_args = ["run", args.steps, "--provider", "builtin", "--runs-dir", str(runs), "--json"]
    if args.blocks:
        run_args += ["--blocks", args.blocks]
    run_took, run = harness(*run_args, cwd=clone, env=env)
    if run.returncode not in (0, 1):
        sys.exit(f"the run failed ({run.returncode}): {run.stderr[-2000:]}")
    record = next(runs.iterdir())
    replay_args = ["replay", str(record), "--repo", str(clone), "--json"]
    if args.regate:
        replay_args.append("--regate")
    replay_took, replay = harness(*replay_args, cwd=clone, env=env)
    report = json.loads(replay.stdout)
    again = [harness(*replay_args, cwd=clone, env=env)[0] for _ in range(args.replays - 1)]
    size = sum(f.stat().st_size for f in record.rglob("*") if f.is_file())
    print(
        json.dumps(
            {
                "repo": str(args.repo),
                "run_seconds": round(run_took.wall, 1),
                "replay_seconds": round(replay_took.wall, 1),
                "ratio": round(run_took.wall / replay_took.wall, 1),
                "run_cpu_seconds": round(run_took.cpu, 1),
                "replay_cpu_seconds": round(replay_took.cpu, 1),
                "cpu_ratio": round(run_took.cpu / max(replay_took.cpu, 0.01), 1),
                "load_during_run": [round(x, 1) for x in run_took.load],
                "load_during_replay": [round(x, 1) for x in replay_took.load],
                "more_replays": [
                    {"seconds": round(t.wall, 1), "cpu_seconds": round(t.cpu, 1), "load": t.load}
                    for t in again
                ],
                "replay_exit": replay.returncode,
                "reproduced": report.get("reproduced"),
                "difference": report.get("difference"),
                "requests": report.get("requests"),
                "gates_reused": report.get("gates_reused"),
                "gates_run": report.get("gates_run"),
                "measures_reused": report.get("measures_reused"),
                "measures_run": report.get("measures_run"),
                "verifiers_started": report.get("verifiers_started"),
                "record_bytes": size,
                "work": str(work),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
