"""Build a git history from consecutive releases of a real project (for the guard checks).

    .venv/bin/python bench/fetch_history.py hypothesis 400 /tmp/guard-hyp --wheel
    .venv/bin/python bench/fetch_history.py boto3 220 /tmp/guard-history   # sdists

Downloads the newest N releases into DEST/dists (`pip download --no-deps`, with
`--only-binary :all:` for --wheel, else `--no-binary :all:`), then commits each unpacked
release on top of the previous one in DEST/repo. Wheels download far faster than sdists and
hold the package's .py sources, so each commit is one release's real code change. Releases
pip cannot fetch are skipped. A wheel's versioned `NAME-VERSION.dist-info` directory is
committed as `NAME.dist-info`, so its METADATA and RECORD diff as edits, not as a rename of
every file. Nothing is written inside this repository.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
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


def _have(dest: Path, project: str, version: str, wheel: bool) -> Path | None:
    # Wheel file names normalise the project name (e.g. "more-itertools" -> "more_itertools").
    stem = f"{project.replace('-', '_')}-{version}"
    pattern = f"{stem}-*.whl" if wheel else f"{project}-{version}.tar.gz"
    found = sorted(dest.glob(pattern)) or sorted(dest.glob(f"{stem}.tar.gz"))
    return found[0] if found else None


def fetch(project: str, version: str, dest: Path, wheel: bool) -> Path | None:
    have = _have(dest, project, version, wheel)
    if have:
        return have
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary" if wheel else "--no-binary",
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
    return _have(dest, project, version, wheel)


def unpack(archive: Path, into: Path) -> Path:
    """Unpack into `into` and return the directory holding the release's files."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                target = (into / name).resolve()
                if not target.is_relative_to(into.resolve()):
                    raise ValueError(f"{archive.name}: unsafe member {name}")
            zf.extractall(into)
        return into
    with tarfile.open(archive) as tar:
        top = tar.getnames()[0].split("/")[0]
        tar.extractall(into, filter="data")
    return into / top


def stable_name(name: str) -> str:
    """A wheel's `NAME-VERSION.dist-info` as `NAME.dist-info`, so releases diff file by file."""
    return re.sub(r"-[^-]+(\.dist-info|\.data)$", r"\1", name)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def main() -> None:
    project, count, root = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    wheel = "--wheel" in sys.argv[4:]
    dists, repo = root / "dists", root / "repo"
    dists.mkdir(parents=True, exist_ok=True)
    chosen = [v for v in versions(project) if v.replace(".", "").isdigit()][:count][::-1]
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "bench@example.invalid")
    git(repo, "config", "user.name", "bench")
    for v in chosen:
        archive = fetch(project, v, dists, wheel)
        if archive is None:
            print(f"skip {v}: nothing downloadable", file=sys.stderr, flush=True)
            continue
        for child in repo.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        staging = root / "unpack"
        top = unpack(archive, staging)
        for child in top.iterdir():
            shutil.move(str(child), repo / stable_name(child.name))
        shutil.rmtree(staging)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "--allow-empty", "-m", f"{project} {v}")
        print(v, flush=True)


if __name__ == "__main__":
    main()
