"""Where the target's interpreter imports the project's packages from, checked before any gate.

A run works in a worktree, but the target's env may hold another copy of the same packages: an
editable install of the user's checkout (a `.pth` line putting the checkout on `sys.path`, or
setuptools' meta-path finder), a stale `build/lib` on a `.pth`. The tests would then import and
measure that copy, and every verdict would be about code the run never touched. So the target
interpreter is asked, in the pytest gate's own environment (cwd the repository, the `pythonpath`
dirs first on PYTHONPATH), where each package resolves: `importlib.util.find_spec`, which finds
without importing, so nothing of the project runs.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from harness.detect import detect
from harness.errors import GateError, ImportLeak
from harness.gates import pytest as pytest_gate
from harness.gates.common import one_line, run_tool
from harness.gates.runner import context_for
from harness.policy import Policy

Kind = Literal["outside", "split", "missing"]

_PROBE = """
import importlib.util, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        spec = importlib.util.find_spec(name)
    except Exception as exc:
        out[name] = {"error": "%s: %s" % (type(exc).__name__, exc)}
        continue
    if spec is None:
        out[name] = None
        continue
    out[name] = {"origin": spec.origin, "locations": list(spec.submodule_search_locations or [])}
print()
print(json.dumps(out))
"""
_IMPORT_NAME = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")
# Where a project keeps its importable code, in the order a correction tries them.
_SOURCE_ROOTS = ("src", ".", "lib")


@dataclass(frozen=True)
class ImportProblem:
    """A package the gates would not take from the repository."""

    package: str
    kind: Kind  # outside: another copy wins; split: a namespace package spans two roots
    where: tuple[str, ...]  # the locations outside the repository, or why it is not importable
    repo: str
    python: str
    fix: tuple[str, ...] | None = None  # a `[gates] pythonpath` under which it resolves inside

    def line(self) -> str:
        fix = f"set [gates] pythonpath = {json.dumps(list(self.fix))}" if self.fix else None
        elsewhere = "remove that copy from the interpreter's path (an editable install or .pth)"
        if self.kind == "missing":
            return one_line(
                f"package {self.package} is not importable by {self.python} from {self.repo}"
                f" ({self.where[0]}): every test importing it fails at collection"
                + (f"; {fix}" if fix else "")
            )
        if self.kind == "split":
            return one_line(
                f"namespace package {self.package} spans {self.repo} and {self.where[0]}: the "
                f"tests would import modules of that other copy; {elsewhere}"
            )
        return one_line(
            f"package {self.package} imports from {self.where[0]}, outside {self.repo}: the "
            f"gates would judge that copy; {fix or elsewhere}"
        )


@dataclass(frozen=True)
class ImportCheck:
    """The policy to run the gates with, and what is left to warn about (nothing blocking)."""

    policy: Policy
    problems: list[ImportProblem]
    corrected: list[str] | None  # the pythonpath put in place of the policy's, if any
    unchecked: str | None = None  # why the interpreter could not be asked

    def notes(self) -> list[str]:
        said = [f"warning: {p.line()}" for p in self.problems]
        if self.unchecked is not None:
            said.append(f"warning: {self.unchecked}")
        if self.corrected is not None:
            said.insert(
                0,
                f"note: [gates] pythonpath = {json.dumps(self.corrected)} for this run, so the "
                "worktree's packages are the ones imported",
            )
        return said

    def record(self) -> dict[str, Any]:
        return {
            "pythonpath": list(self.policy.gates.pythonpath),
            "corrected": self.corrected is not None,
            "problems": [p.line() for p in self.problems],
            "unchecked": self.unchecked,
        }


def measured_packages(repo: Path, policy: Policy) -> list[str]:
    """The top-level packages the pytest gate measures (its `--cov` import names), else the
    packages detected in the repository."""
    named = [t.split(".")[0] for t in policy.gates.pytest.cov if _IMPORT_NAME.match(t)]
    return list(dict.fromkeys(named)) or detect(repo).packages


def _with_pythonpath(policy: Policy, pythonpath: Sequence[str]) -> Policy:
    gates = policy.gates.model_copy(update={"pythonpath": list(pythonpath)})
    return policy.model_copy(update={"gates": gates})


def _probe(repo: Path, policy: Policy, names: Sequence[str]) -> dict[str, Any]:
    ctx = context_for(repo, policy, policy.gates.pytest)
    with tempfile.TemporaryDirectory(prefix="harness-imports-") as tmp:
        proc = run_tool(
            [ctx.python, "-c", _PROBE, *names], ctx, env=pytest_gate.tool_env(ctx, Path(tmp))
        )
    lines = proc.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise GateError(
            f"could not ask {ctx.python} where the packages import from: "
            f"{proc.tail or f'exit {proc.returncode}'}"
        )
    return data


def _inside(path: str, roots: tuple[Path, ...]) -> bool:
    p = Path(path)
    return any(p.is_relative_to(r) or p.resolve().is_relative_to(r) for r in roots)


def _classify(name: str, found: Any, repo: Path, python: str) -> ImportProblem | None:
    roots = (repo.absolute(), repo.resolve())
    if not isinstance(found, dict) or "error" in found:
        why = found["error"] if isinstance(found, dict) else "no module of that name"
        return ImportProblem(name, "missing", (str(why),), str(repo), python)
    origin = found.get("origin")
    places = [str(p) for p in found.get("locations") or []]
    if isinstance(origin, str) and Path(origin).is_absolute():
        places.insert(0, origin)
    if not places:  # built-in or frozen: the interpreter's own, never the repository's
        places = [str(origin)]
    outside = [p for p in places if not Path(p).is_absolute() or not _inside(p, roots)]
    if not outside:
        return None
    kind: Kind = "split" if len(outside) < len(places) else "outside"
    return ImportProblem(name, kind, tuple(outside), str(repo), python)


def _holds(root: Path, name: str) -> bool:
    pkg = root / name
    return (root / f"{name}.py").is_file() or (pkg.is_dir() and any(pkg.glob("*.py")))


def check_imports(repo: Path, policy: Policy, packages: Sequence[str]) -> list[ImportProblem]:
    """The packages that would not be imported from `repo` by the pytest gate, each with the
    `pythonpath` that would fix it when one entry inside the repository does."""
    repo = Path(repo).absolute()
    names = list(dict.fromkeys(packages))
    if not names:
        return []
    python = context_for(repo, policy, policy.gates.pytest).python
    found = _probe(repo, policy, names)
    problems = {
        name: problem
        for name in names
        if (problem := _classify(name, found.get(name), repo, python)) is not None
    }
    current = list(policy.gates.pythonpath)
    # A namespace package spread over two roots stays spread whatever comes first on the path.
    open_ = [n for n, p in problems.items() if p.kind != "split"]
    for root in _SOURCE_ROOTS:
        holding = [n for n in open_ if _holds(repo / root, n)]
        if root in current or not holding:
            continue
        trial = [root, *current]
        again = _probe(repo, _with_pythonpath(policy, trial), holding)
        for n in holding:
            if _classify(n, again.get(n), repo, python) is None:
                problems[n] = replace(problems[n], fix=tuple(trial))
                open_.remove(n)
    return list(problems.values())


def require_worktree_imports(
    repo: Path, policy: Policy, packages: Sequence[str], *, correct: bool = True
) -> ImportCheck:
    """The policy under which every package imports from `repo`: as it is, or (with `correct`)
    with the source roots that hold them put first on its `pythonpath`. Raises ImportLeak (exit
    2) when another copy would still be imported; a package that is not importable at all is
    left to warn about, since the gates report what that breaks themselves, and so is an
    interpreter that cannot be asked: the pytest gate cannot run in it either, which is an
    error, never a pass."""
    try:
        problems = check_imports(repo, policy, packages)
    except GateError as exc:
        return ImportCheck(policy=policy, problems=[], corrected=None, unchecked=str(exc))
    corrected: list[str] | None = None
    fixes = [p.fix for p in problems if p.fix is not None]
    if correct and fixes:
        current = list(policy.gates.pythonpath)
        new = [d for fix in fixes for d in fix if d not in current]
        corrected = list(dict.fromkeys([*new, *current]))
        policy = _with_pythonpath(policy, corrected)
        problems = check_imports(repo, policy, packages)
    blocking = [p for p in problems if p.kind != "missing"]
    if blocking:
        raise ImportLeak(blocking[0].line(), problems=blocking)
    return ImportCheck(policy=policy, problems=problems, corrected=corrected)


def import_warnings(repo: Path, policy: Policy) -> list[str]:
    """What `harness gates` says about a checkout whose packages import from elsewhere."""
    try:
        problems = check_imports(repo, policy, measured_packages(repo, policy))
    except GateError as exc:
        return [str(exc)]
    return [p.line() for p in problems]
