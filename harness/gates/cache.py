"""The gate result cache: where it lives, what keys an entry, and how it stays under its cap.

It lives in the user's cache directory (`platformdirs`), never in the target repository;
`HARNESS_CACHE_DIR` overrides. Two kinds of entry share one size cap (`HARNESS_CACHE_MAX_MB`):

- `results/<key>.json`: one gate result, keyed by everything that decides it (tree hash, the
  ignored files the tools read, gate config, tool version, interpreter). Only PASSED/FAILED
  results are stored; an ERROR may be transient.
- `mypy/<key>/`: mypy's incremental cache for one (user repository, interpreter). Every run
  works in a new temporary worktree, so keying it by worktree path would start a new one each
  run; mypy checks each cached module against its source's hash when the path differs, so one
  cache serves every worktree of a repository.

Recency is an entry's mtime, refreshed on each use. After the gates of a run stored their
results, the least recently used entries are deleted until the total is under the cap. Several
gates and processes write at once: a result is written to a temp file and renamed into place,
and eviction tolerates entries that vanish under it (another process evicting or clearing).
Stored results are redacted (`redact_result`) before anyone sees them, so a fresh result and a
cached one are the same, and no secret from the target's source is written here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from harness.errors import GitError, UsageError
from harness.gates.models import GateResult, fingerprint
from harness.gitplain import common_dir, ignored_entries
from harness.policy import GateConfig, PytestGateConfig
from harness.redact import redact, redact_text

CACHE_ENV = "HARNESS_CACHE_DIR"
MAX_MB_ENV = "HARNESS_CACHE_MAX_MB"
DEFAULT_MAX_MB = 256
# Bump when the shape or meaning of cached results changes.
CACHE_SCHEMA = 6  # 5: findings carry redacted text; 6: branch counts, xfail/xpass outcomes

RESULTS = "results"
MYPY = "mypy"
_TMP_PREFIX = ".tmp-"
# A temp file younger than this may belong to a write in progress in another process.
_TMP_GRACE_SECONDS = 3600.0


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    return platformdirs.user_cache_path("harness")


def max_bytes() -> int:
    raw = os.environ.get(MAX_MB_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_MAX_MB * 1024 * 1024
    try:
        mb = float(raw)
    except ValueError:
        mb = -1.0
    if not mb >= 0:
        raise UsageError(f"{MAX_MB_ENV} must be a number of megabytes >= 0, not {raw!r}")
    return int(mb * 1024 * 1024)


# --- keys -----------------------------------------------------------------------------------

# Ignored files a tool may read (a generated module, a .pth, a config); not reports or data.
_READ_SUFFIXES = frozenset({".py", ".pyi", ".pth", ".cfg", ".toml", ".ini", ".json"})
# Directories no gate looks into: environments and caches.
_SKIP_DIRS = frozenset({".venv", "venv", "__pycache__", ".mypy_cache", ".tox", "node_modules"})


def gate_paths(cfg: GateConfig) -> list[str]:
    paths = list(cfg.paths)
    if isinstance(cfg, PytestGateConfig) and paths:
        paths += cfg.cov
    return paths


def ignored_digest(repo: Path, paths: Sequence[str]) -> str:
    """Digest (path, size, mtime_ns) of the ignored files under `paths` that a tool may read.

    The tree hash leaves out what git ignores, yet mypy, bandit and coverage read an ignored
    generated module all the same: without this a changed one would hit a stale cache entry.
    """
    rows: list[str] = []

    def add(full: Path) -> None:
        if full.suffix not in _READ_SUFFIXES:
            return
        try:
            st = full.lstat()
        except OSError:
            return
        if stat.S_ISREG(st.st_mode):
            rows.append(f"{full.relative_to(repo).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}")

    for entry in ignored_entries(repo, paths):
        rel = entry.rstrip("/")
        if _SKIP_DIRS.intersection(Path(rel).parts):
            continue
        full = repo / rel
        if not entry.endswith("/"):
            add(full)
            continue
        for dirpath, dirnames, filenames in os.walk(full):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
            for name in sorted(filenames):
                add(Path(dirpath) / name)
    return hashlib.sha256("\n".join(sorted(rows)).encode("utf-8")).hexdigest()


def interpreter_id(python: str) -> str:
    """Absolute, but not resolve()d: a venv's python is a symlink to the shared base one."""
    found = python if os.sep in python else shutil.which(python) or python
    return str(Path(found).absolute())


def result_key(
    gate: str,
    tree: str,
    cfg: GateConfig,
    version: str,
    python: str,
    ignored: str = "",
    pythonpath: Sequence[str] = (),
) -> str:
    raw = json.dumps(
        {
            "schema": CACHE_SCHEMA,
            "gate": gate,
            "tree": tree,
            "ignored": ignored,
            "config": cfg.model_dump(mode="json"),
            "version": version,
            "python": interpreter_id(python),
            # Which copy of the code is imported decides pytest's and mypy's verdicts.
            "pythonpath": list(pythonpath),
        },
        sort_keys=True,
    )
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


# --- results --------------------------------------------------------------------------------


def _private_dir(path: Path) -> None:
    """Only the user may read the cache: mypy's own cache keeps the values of `Final`
    constants, which harness cannot redact."""
    for d in (*reversed(path.parents), path):
        if not d.exists():
            d.mkdir(mode=0o700, exist_ok=True)


def result_path(root: Path, key: str) -> Path:
    return root / RESULTS / f"{key}.json"


def _touch(path: Path) -> None:
    # Gone meanwhile (evicted or cleared by another process): nothing to refresh.
    with contextlib.suppress(OSError):
        os.utime(path)


def load(path: Path) -> GateResult | None:
    """The stored result, or None; a hit makes the entry the most recently used."""
    try:
        result = GateResult.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    _touch(path)
    result.cached = True
    return result


def store(path: Path, result: GateResult) -> None:
    """Write atomically: a reader sees the old entry, the new one, or none, never half of one."""
    try:
        _private_dir(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX, suffix=".json")
    except OSError:
        return  # an unwritable cache costs speed, not correctness
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(result.model_dump_json())
        Path(tmp).replace(path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def redact_result(result: GateResult) -> GateResult:
    """Scrub what a result quotes from the target (messages, a tool's output, fix text).

    Source lines are redacted when read (`SourceLines`); this covers what the tools themselves
    quote, such as bandit's "Possible hardcoded password: '...'". A finding whose message
    changed gets its fingerprint recomputed from the redacted text, so no fingerprint hashes a
    secret either. A fix whose text held a secret is dropped rather than applied half-redacted.
    """
    if result.reason:
        result.reason = redact_text(result.reason)
    for f in result.findings:
        message = redact_text(f.message)
        if message != f.message:
            f.message = message
            f.fingerprint = fingerprint(f.gate, f.path, f.code, message, f.context or "")
        if f.context:
            f.context = redact_text(f.context)
        if f.fix is not None and redact(f.fix) != f.fix:
            f.fix = None
    for t in result.tests:
        if t.message:
            t.message = redact_text(t.message)
    for c in result.contracts:
        if c.details:
            c.details = redact_text(c.details)
    return result


# --- mypy's persistent cache ----------------------------------------------------------------


def mypy_dir(root: Path, repo: Path, python: str) -> Path:
    """mypy's cache for the user's repository (its git common dir, shared by its worktrees)
    and interpreter; marked as just used."""
    try:
        owner = common_dir(repo)
    except GitError:  # not a repository: the directory itself is the project
        owner = repo.resolve()
    key = hashlib.sha256(f"{owner}\0{interpreter_id(python)}".encode()).hexdigest()[:16]
    path = root / MYPY / key
    _private_dir(path)
    _touch(path)
    return path


# --- size, eviction, info, clear ------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    path: Path
    kind: str  # "result" | "mypy" | "temp"
    size: int
    used: float  # mtime: last stored, hit or used


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            try:
                total += (Path(dirpath) / name).lstat().st_size
            except OSError:
                continue  # written or removed while we walk
    return total


def _scan(directory: Path) -> Iterable[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            yield from list(it)
    except OSError:
        return


def entries(root: Path, *, now: float | None = None) -> list[Entry]:
    """Every cache entry, least recently used first. A fresh temp file is a write in
    progress and is not an entry; a stale one (left by a killed process) is."""
    now = time.time() if now is None else now
    out: list[Entry] = []
    for item in _scan(root / RESULTS):
        try:
            st = item.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        if item.name.startswith(_TMP_PREFIX):
            if now - st.st_mtime < _TMP_GRACE_SECONDS:
                continue
            out.append(Entry(Path(item.path), "temp", st.st_size, st.st_mtime))
        elif item.name.endswith(".json"):
            out.append(Entry(Path(item.path), "result", st.st_size, st.st_mtime))
    for item in _scan(root / MYPY):
        try:
            st = item.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            path = Path(item.path)
            out.append(Entry(path, "mypy", _tree_size(path), st.st_mtime))
    return sorted(out, key=lambda e: (e.used, str(e.path)))


def _remove(entry: Entry) -> None:
    if entry.kind == "mypy":
        shutil.rmtree(entry.path, ignore_errors=True)
    else:
        entry.path.unlink(missing_ok=True)


def evict(root: Path, cap: int | None = None) -> list[Entry]:
    """Delete the least recently used entries until the total is at most `cap` bytes."""
    cap = max_bytes() if cap is None else cap
    found = entries(root)
    total = sum(e.size for e in found)
    removed: list[Entry] = []
    for entry in found:
        if total <= cap:
            break
        _remove(entry)
        total -= entry.size
        removed.append(entry)
    return removed


@dataclass(frozen=True)
class CacheInfo:
    location: Path
    results: int
    mypy_caches: int
    size: int
    cap: int


def info(root: Path) -> CacheInfo:
    found = entries(root)
    return CacheInfo(
        location=root,
        results=sum(1 for e in found if e.kind == "result"),
        mypy_caches=sum(1 for e in found if e.kind == "mypy"),
        size=sum(e.size for e in found),
        cap=max_bytes(),
    )


def clear(root: Path) -> list[Entry]:
    """Delete every entry. Only what the cache wrote is removed, never `root` itself: it may be
    a directory the user named with HARNESS_CACHE_DIR."""
    found = entries(root, now=float("inf"))
    for entry in found:
        _remove(entry)
    return found
