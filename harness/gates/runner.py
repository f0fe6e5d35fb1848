"""Run the enabled gates concurrently, with a result cache keyed by what decides the result
(see `harness.gates.cache`)."""

from __future__ import annotations

import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from harness.errors import GateError, UsageError
from harness.gates import cache
from harness.gates import pytest as pytest_gate
from harness.gates.base import GATES, Gate
from harness.gates.common import GateContext, proc_failure, rel_path, run_tool
from harness.gates.models import GateResult, GateRun, GateStatus
from harness.gitplain import repo_root, tree_hash
from harness.policy import GateConfig, Policy
from harness.proc import kill_running


def interpreter(policy: Policy) -> str:
    return policy.gates.python or sys.executable


def context_for(
    repo: Path, policy: Policy, cfg: GateConfig, cache_dir: Path | None = None, nice: int = 0
) -> GateContext:
    """How a gate runs on `repo` under `policy`: the one place a GateContext is made."""
    return GateContext(
        repo=repo,
        python=interpreter(policy),
        cfg=cfg,
        cache_dir=cache_dir,
        pythonpath=tuple(policy.gates.pythonpath),
        nice=nice,
    )


# The gates run side by side on however many cores there are. The one that takes longest (the
# tests, nearly always) keeps its priority, so that it finishes no later than it would alone;
# the others take what it leaves. Left to the scheduler's fair shares, the tests would get a
# fraction of a core while the short gates run and then finish alone on one core, the other
# idle. Started longest first too, so that they are under way before the short ones.
LONGEST_FIRST = ("pytest", "mypy", "secrets", "bandit", "imports", "ruff")
GIVE_WAY = 5


def priority(name: str) -> int:
    return 0 if name == LONGEST_FIRST[0] else GIVE_WAY


def gate_config(policy: Policy, name: str) -> GateConfig:
    cfg = getattr(policy.gates, name, None)
    if not isinstance(cfg, GateConfig):
        raise UsageError(f"unknown gate '{name}' (known: {', '.join(GATES)})")
    return cfg


def selected_gates(policy: Policy, only: Sequence[str] | None) -> list[str]:
    """Gates to run: the enabled ones, or exactly those named (enabled or not)."""
    if only is None:
        return [name for name in GATES if gate_config(policy, name).enabled]
    unknown = [n for n in only if n not in GATES]
    if unknown:
        raise UsageError(f"unknown gate '{unknown[0]}' (known: {', '.join(GATES)})")
    return [name for name in GATES if name in only]


def _run_one(gate: Gate, ctx: GateContext, tree: str, cache_dir: Path | None) -> GateResult:
    start = time.monotonic()
    try:
        if cache_dir is None:
            # Nothing to look up: the tool starts at once, and the version probe, which only
            # labels the result here, runs after it rather than before.
            result = cache.redact_result(gate.run(ctx))
            result.tool_version = gate.version(ctx.python)
            return result
        version = gate.version(ctx.python)
        ignored = cache.ignored_digest(ctx.repo, cache.gate_paths(ctx.cfg))
        key = cache.result_key(
            gate.name, tree, ctx.cfg, version, ctx.python, ignored, ctx.pythonpath
        )
        path = cache.result_path(cache_dir, key)
        hit = cache.load(path)
        if hit is not None:
            return hit
        # Redacted before anyone sees it, so that a fresh result and a cached one are the same.
        result = cache.redact_result(gate.run(ctx))
        result.tool_version = version
        if result.status != GateStatus.ERROR:
            cache.store(path, result)
        return result
    except Exception as exc:  # a bug in one gate must not take the others down
        return GateResult(
            gate=gate.name,
            status=GateStatus.ERROR,
            reason=f"gate crashed: {type(exc).__name__}: {exc}",
            tool=gate.name,
            seconds=time.monotonic() - start,
        )


def run_gates(
    repo: Path,
    policy: Policy,
    *,
    only: Sequence[str] | None = None,
    use_cache: bool = True,
    on_result: Callable[[GateResult], None] | None = None,
    tree: str | None = None,
) -> GateRun:
    """Run the selected gates concurrently on the working tree of `repo` as it is.

    `tree`: that working tree's hash, when the caller has it (`repo` is then its work tree's
    resolved root, as `toplevel` gives it); else it is worked out here."""
    repo = repo_root(Path(repo)) if tree is None else Path(repo)
    names = selected_gates(policy, only)
    tree = tree_hash(repo) if tree is None else tree
    root = cache.cache_root()
    cap = cache.max_bytes()  # a bad value stops here, before any gate runs
    start = time.monotonic()
    results: dict[str, GateResult] = {}
    if names:
        with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="gate") as pool:
            first = sorted(names, key=lambda n: LONGEST_FIRST.index(n))
            futures = {
                pool.submit(
                    _run_one,
                    GATES[name],
                    context_for(repo, policy, gate_config(policy, name), root, priority(name)),
                    tree,
                    root if use_cache else None,
                ): name
                for name in first
            }
            try:
                for fut in as_completed(futures):
                    result = fut.result()
                    results[futures[fut]] = result
                    if on_result is not None:
                        on_result(result)
            except (KeyboardInterrupt, SystemExit):
                # The pool's exit waits for its threads, and they for their tools: kill the
                # tools, so an interrupted run stops now rather than when the slowest gate ends.
                pool.shutdown(wait=False, cancel_futures=True)
                kill_running()
                raise
    if names:
        # Once per run, not per store: it walks the mypy caches to size them.
        cache.evict(root, cap)
    ordered = {name: results[name] for name in names}
    return GateRun(tree=tree, results=ordered, seconds=time.monotonic() - start)


_NETBLOCK_PLUGIN = '''
"""Loaded by the harness with -p: any socket connect (other than AF_UNIX) raises."""
import socket


class NetworkBlocked(RuntimeError):
    pass


def _blocked(self, address, *args, **kwargs):
    if getattr(socket, "AF_UNIX", None) is not None and self.family == socket.AF_UNIX:
        return _real_connect(self, address, *args, **kwargs)
    raise NetworkBlocked("network access blocked by harness: connect to %r" % (address,))


def _blocked_ex(self, address, *args, **kwargs):
    if getattr(socket, "AF_UNIX", None) is not None and self.family == socket.AF_UNIX:
        return _real_connect_ex(self, address, *args, **kwargs)
    raise NetworkBlocked("network access blocked by harness: connect to %r" % (address,))


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
socket.socket.connect = _blocked
socket.socket.connect_ex = _blocked_ex
'''

NETBLOCK_MODULE = "harness_netblock"


def run_tests(
    repo: Path,
    policy: Policy,
    test_ids: Sequence[str],
    *,
    block_network: bool = False,
) -> dict[str, str]:
    """Run exactly these tests; test id -> passed | failed | error | skipped.

    A requested id pytest did not report (it no longer exists, or the run broke) is "error".
    Raises GateError when pytest itself cannot run.
    """
    repo = Path(repo).resolve()
    ids = list(dict.fromkeys(test_ids))
    outcomes: dict[str, str] = {}
    # pytest refuses the whole run when one id does not exist: drop those and run the rest.
    for _ in range(2):
        if not ids:
            break
        got, not_found = _run_ids(repo, policy, ids, block_network)
        outcomes.update(got)
        if not not_found:
            break
        ids = [tid for tid in ids if tid not in not_found and tid not in got]
    return {tid: outcomes.get(tid, "error") for tid in test_ids}


_NOT_FOUND = re.compile(r"^ERROR: (?:file or directory )?not found: (.+)$", re.MULTILINE)


def _run_ids(
    repo: Path, policy: Policy, ids: list[str], block_network: bool
) -> tuple[dict[str, str], set[str]]:
    cfg = pytest_gate.pytest_config(policy.gates.pytest)
    ctx = context_for(repo, policy, cfg)
    with tempfile.TemporaryDirectory(prefix="harness-rerun-") as tmp_name:
        tmp = Path(tmp_name)
        junit = tmp / "junit.xml"
        argv = pytest_gate.base_argv(ctx.python, junit)
        plugin_dirs: list[str] = []
        if block_network:
            (tmp / f"{NETBLOCK_MODULE}.py").write_text(_NETBLOCK_PLUGIN, encoding="utf-8")
            plugin_dirs.append(str(tmp))
            argv += ["-p", NETBLOCK_MODULE]
        # The same imports as the pytest gate: the repo's pythonpath dirs lead.
        env = pytest_gate.tool_env(ctx, tmp, first=plugin_dirs)
        # The target's own args (markers, -q) apply; its coverage goals do not.
        argv += [*cfg.args, "--", *ids]
        proc = run_tool(argv, ctx, env=env)
        why = proc_failure("pytest", proc, ctx, "pytest")
        if why is not None:
            raise GateError(why)
        text = junit.read_text(encoding="utf-8") if junit.is_file() else None
    not_found = {
        rel_path(repo, m.group(1).strip())
        for m in _NOT_FOUND.finditer(proc.stderr + "\n" + proc.stdout)
    }
    if text is None:
        if proc.returncode in (2, 4, 5):
            return {}, not_found
        raise GateError(f"pytest wrote no JUnit XML report: {proc.tail}")
    try:
        return {t.id: t.verdict for t in pytest_gate.parse_junit(text, repo)}, not_found
    except ValueError as exc:
        raise GateError(f"unparsable JUnit XML from re-run: {exc}") from exc
