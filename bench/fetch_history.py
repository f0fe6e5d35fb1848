"""Build a git history from consecutive sdist releases of a real project (for the guard checks).

    .venv/bin/python bench/fetch_history.py boto3 220 /tmp/guard-history

Downloads the newest N sdists with `pip download --no-deps --no-binary :all:` into
DEST/sdists, then commits each unpacked release on top of the previous one in DEST/repo.
Nothing is written inside this repository.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path


def versions(project: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", project],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("Available versions:"))
    return [v.strip() for v in line.split(":", 1)[1].split(",")]


def fetch(project: str, version: str, dest: Path) -> Path | None:
    have = list(dest.glob(f"{project}-{version}.tar.gz"))
    if have:
        return have[0]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-q",
            "-d",
            str(dest),
            f"{project}=={version}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    have = list(dest.glob(f"{project}-{version}.tar.gz"))
    return have[0] if have and proc.returncode == 0 else (have[0] if have else None)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def main() -> None:
    project, count, root = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    sdists, repo = root / "sdists", root / "repo"
    sdists.mkdir(parents=True, exist_ok=True)
    chosen = [v for v in versions(project) if v.replace(".", "").isdigit()][:count][::-1]
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "bench@example.invalid")
    git(repo, "config", "user.name", "bench")
    for v in chosen:
        tgz = fetch(project, v, sdists)
        if tgz is None:
            print(f"skip {v}: no sdist", file=sys.stderr)
            continue
        for child in repo.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        with tarfile.open(tgz) as tar:
            top = tar.getnames()[0].split("/")[0]
            tar.extractall(root / "unpack", filter="data")
        for child in (root / "unpack" / top).iterdir():
            shutil.move(str(child), repo / child.name)
        shutil.rmtree(root / "unpack")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "--allow-empty", "-m", f"{project} {v}")
        print(v, flush=True)


if __name__ == "__main__":
    main()
