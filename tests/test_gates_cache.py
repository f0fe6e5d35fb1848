"""The gate result cache: location, size cap and LRU eviction, mypy's shared cache, the CLI,
and that nothing secret is stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.gates import cache
from harness.gates.compare import compare
from harness.gates.models import GateResult, GateStatus, fingerprint
from harness.gates.runner import run_gates
from harness.policy import RegressionRules, parse_policy

from .conftest import git, other_gates_off

MB = 1024 * 1024


def _result(n: int = 0, size: int = 0) -> GateResult:
    return GateResult(
        gate="ruff", status=GateStatus.PASSED, tool="ruff", reason="x" * size + str(n)
    )


def _stored(root: Path, name: str, used: float, size: int = 1000) -> Path:
    path = cache.result_path(root, name)
    cache.store(path, _result(size=size))
    os.utime(path, (used, used))
    return path


def _names(entries: list[cache.Entry]) -> list[str]:
    return [e.path.name for e in entries]


# --- location -------------------------------------------------------------------------------


def test_env_overrides_the_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "mine"))
    assert cache.cache_root() == tmp_path / "mine"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG paths are Linux's")
def test_default_is_the_user_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache.cache_root() == tmp_path / "home" / ".cache" / "harness"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "harness"


def test_gates_write_their_cache_outside_the_repository(
    make_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default location, in a fake home: nothing goes into the target's .git.
    monkeypatch.delenv("HARNESS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    repo = make_repo({"pkg/__init__.py": "", "pkg/mod.py": "X: int = 1\n"})
    policy = parse_policy('[gates.mypy]\npaths = ["pkg"]\n' + other_gates_off("mypy"))
    assert run_gates(repo, policy).results["mypy"].status == GateStatus.PASSED
    root = cache.cache_root()
    assert root.is_relative_to(tmp_path / "xdg")
    assert len(list((root / "results").glob("*.json"))) == 1
    assert len(list((root / "mypy").iterdir())) == 1
    assert not (repo / ".git" / "harness").exists()
    assert (root / "results").stat().st_mode & 0o077 == 0  # only the user may read it
    assert run_gates(repo, policy).results["mypy"].cached


# --- cap and least-recently-used eviction ---------------------------------------------------


def test_cap_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache.max_bytes() == cache.DEFAULT_MAX_MB * MB
    monkeypatch.setenv("HARNESS_CACHE_MAX_MB", "1.5")
    assert cache.max_bytes() == int(1.5 * MB)
    for bad in ("lots", "-1", "nan"):
        monkeypatch.setenv("HARNESS_CACHE_MAX_MB", bad)
        with pytest.raises(cache.UsageError, match="HARNESS_CACHE_MAX_MB"):
            cache.max_bytes()


def test_eviction_removes_the_least_recently_used_first(tmp_path: Path) -> None:
    root = tmp_path / "c"
    for i, name in enumerate(["old", "mid", "new", "newest"]):
        _stored(root, name, used=1_000_000 + i * 100)
    # mypy's caches count too, and go as whole directories.
    mypy = root / "mypy" / "proj"
    (mypy / "3.11").mkdir(parents=True)
    (mypy / "3.11" / "cache.db").write_bytes(b"m" * 3000)
    os.utime(mypy, (1_000_150, 1_000_150))  # between "mid" and "new"
    sizes = {e.path.name: e.size for e in cache.entries(root)}
    assert _names(cache.entries(root)) == [
        "old.json",
        "mid.json",
        "proj",
        "new.json",
        "newest.json",
    ]
    assert sizes["proj"] == 3000

    total = sum(sizes.values())
    removed = cache.evict(root, cap=total - 1)
    assert _names(removed) == ["old.json"]
    removed = cache.evict(root, cap=sizes["new.json"] + sizes["newest.json"])
    assert _names(removed) == ["mid.json", "proj"]
    assert not mypy.exists()
    assert _names(cache.entries(root)) == ["new.json", "newest.json"]
    assert cache.evict(root, cap=10**9) == []


def test_a_hit_makes_an_entry_the_most_recently_used(tmp_path: Path) -> None:
    root = tmp_path / "c"
    oldest = _stored(root, "a", used=1_000_000)
    _stored(root, "b", used=1_000_100)
    _stored(root, "c", used=1_000_200)
    hit = cache.load(oldest)
    assert hit is not None and hit.cached
    one = cache.entries(root)[0].size
    assert _names(cache.evict(root, cap=2 * one)) == ["b.json"]
    assert _names(cache.entries(root)) == ["c.json", "a.json"]


def test_a_run_keeps_the_cache_under_its_cap(
    make_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = cache.cache_root()
    for i in range(20):
        _stored(root, f"stale{i}", used=1_000_000 + i, size=50_000)
    monkeypatch.setenv("HARNESS_CACHE_MAX_MB", "0.5")
    repo = make_repo({"pkg/__init__.py": "", "pkg/mod.py": "import os\n"})
    policy = parse_policy('[gates.ruff]\npaths = ["pkg"]\n' + other_gates_off("ruff"))
    first = run_gates(repo, policy)
    assert first.results["ruff"].status == GateStatus.FAILED
    left = cache.entries(root)
    assert sum(e.size for e in left) <= int(0.5 * MB)
    assert "stale0.json" not in _names(left)  # the oldest went first
    assert "stale19.json" in _names(left)
    assert run_gates(repo, policy).results["ruff"].cached  # what this run stored stayed


def test_concurrent_stores_and_evictions_tolerate_each_other(tmp_path: Path) -> None:
    root = tmp_path / "c"
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(40):
                cache.store(cache.result_path(root, f"w{worker}-{i}"), _result(i, size=2000))
                cache.evict(root, cap=20_000)
                cache.load(cache.result_path(root, f"w{(worker + 1) % 4}-{i}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    cache.evict(root, cap=20_000)
    assert sum(e.size for e in cache.entries(root)) <= 20_000
    for entry in cache.entries(root):  # every entry left is whole
        assert GateResult.model_validate_json(entry.path.read_text()).gate == "ruff"


def test_a_stale_temp_file_is_evicted_a_fresh_one_is_left_alone(tmp_path: Path) -> None:
    results = tmp_path / "c" / "results"
    results.mkdir(parents=True)
    stale, fresh = results / ".tmp-stale.json", results / ".tmp-fresh.json"
    stale.write_text("{")
    fresh.write_text("{")
    os.utime(stale, (1_000_000, 1_000_000))
    assert [e.kind for e in cache.entries(tmp_path / "c")] == ["temp"]
    cache.evict(tmp_path / "c", cap=0)
    assert not stale.exists() and fresh.exists()


# --- mypy's cache is shared by the worktrees of one repository --------------------------------


def test_worktrees_share_one_mypy_cache_and_changes_are_rechecked(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo(
        {
            "pkg/__init__.py": "",
            "pkg/core.py": "def size() -> int:\n    return 1\n",
            "pkg/use.py": "from pkg.core import size\n\nN: int = size()\n",
        }
    )
    policy = parse_policy('[gates.mypy]\npaths = ["pkg"]\n' + other_gates_off("mypy"))
    assert run_gates(repo, policy).results["mypy"].status == GateStatus.PASSED

    other = tmp_path / "elsewhere" / "wt"
    git(repo, "worktree", "add", "-q", "-b", "side", str(other))
    # Only the dependency changes; the module that now fails is unchanged and cached.
    (other / "pkg/core.py").write_text("def size() -> str:\n    return 'one'\n")
    after = run_gates(other, policy).results["mypy"]
    assert after.status == GateStatus.FAILED
    assert [(f.path, f.code) for f in after.findings] == [("pkg/use.py", "assignment")]

    # The original checkout, from the same mypy cache, still passes.
    again = run_gates(repo, policy, use_cache=False).results["mypy"]
    assert again.status == GateStatus.PASSED
    assert len(list((cache.cache_root() / "mypy").iterdir())) == 1


# --- the CLI --------------------------------------------------------------------------------


def _harness(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "harness", "cache", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)


def test_cache_info_and_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    root = cache.cache_root()
    _stored(root, "a", used=1_000_000)
    _stored(root, "b", used=1_000_001)
    (root / "mypy" / "proj").mkdir(parents=True)
    (root / "mypy" / "proj" / "cache.db").write_bytes(b"m" * 100)
    monkeypatch.setenv("HARNESS_CACHE_MAX_MB", "64")

    info = _harness("info", "--json")
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    size = sum(e.size for e in cache.entries(root))
    assert data == {
        "location": str(root),
        "entries": 3,
        "results": 2,
        "mypy_caches": 1,
        "size_bytes": size,
        "cap_bytes": 64 * MB,
    }
    text = _harness("info")
    assert text.returncode == 0 and str(root) in text.stdout and "64.0 MB" in text.stdout

    cleared = _harness("clear", "--json")
    assert cleared.returncode == 0, cleared.stderr
    assert json.loads(cleared.stdout) == {"location": str(root), "removed": 3, "freed_bytes": size}
    assert cache.entries(root) == [] and root.is_dir()
    assert json.loads(_harness("info", "--json").stdout)["entries"] == 0
    assert _harness("clear").stdout.startswith("removed 0 cache entries")


def test_cache_cli_errors_are_one_line_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_MAX_MB", "lots")
    bad = _harness("info")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "harness: error: HARNESS_CACHE_MAX_MB must be a number of megabytes >= 0, not 'lots'"
    ]


# --- nothing secret is stored ---------------------------------------------------------------

AWS = "AKIAIOSFODNN7EXAMPLE"
PASSWORD = "hunter2hunter2"
LEAKY = (
    f'import os; AWS_SECRET = "{AWS}"\n'  # for ruff: an unused import
    f'password = "{PASSWORD}"\n'  # bandit: B105 quotes the password in its message
    f'N: int = "{AWS}"\n'  # mypy: an error whose source line holds the key
)


def test_no_secret_reaches_the_cache_and_cached_equals_fresh(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo({"pkg/__init__.py": "", "pkg/conf.py": LEAKY})
    policy = parse_policy(
        '[gates.ruff]\npaths = ["pkg"]\n[gates.mypy]\npaths = ["pkg"]\n'
        '[gates.bandit]\npaths = ["pkg"]\n' + other_gates_off("ruff", "mypy", "bandit")
    )
    fresh = run_gates(repo, policy)
    assert {n: r.status for n, r in fresh.results.items()} == {
        "ruff": GateStatus.FAILED,
        "mypy": GateStatus.FAILED,
        "bandit": GateStatus.FAILED,
    }
    ruff = fresh.results["ruff"].findings
    assert "F401" in {f.code for f in ruff}
    assert all(f.context == 'import os; AWS_SECRET = "[REDACTED]"' for f in ruff)
    bandit = [f for f in fresh.results["bandit"].findings if f.code == "B105"]
    assert bandit and PASSWORD not in bandit[0].message and "[REDACTED]" in bandit[0].message
    assert fresh.results["mypy"].findings[0].context == 'N: int = "[REDACTED]"'
    # No fingerprint hashes a secret either: each is made from the redacted text.
    for f in [*ruff, *bandit, *fresh.results["mypy"].findings]:
        assert f.fingerprint == fingerprint(f.gate, f.path, f.code, f.message, f.context or "")

    cached = run_gates(repo, policy)
    assert all(r.cached for r in cached.results.values())
    for name in fresh.results:
        assert cached.results[name].findings == fresh.results[name].findings
    assert compare(fresh, cached, RegressionRules()) == []
    assert compare(cached, fresh, RegressionRules()) == []

    files = [p for p in cache.cache_root().rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" for p in files) and any("mypy" in p.parts for p in files)
    for path in files:
        data = path.read_bytes()
        assert AWS.encode() not in data and PASSWORD.encode() not in data, path


def test_the_key_names_which_copy_of_the_code_is_imported() -> None:
    from harness.gates.cache import result_key
    from harness.policy import GateConfig

    cfg = GateConfig()
    plain = result_key("pytest", "t", cfg, "v", "python3")
    assert result_key("pytest", "t", cfg, "v", "python3", pythonpath=("src",)) != plain
