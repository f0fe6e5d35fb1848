"""The Gate plug-in point, the registry of real gates, and a gate for a plain shell command."""

from __future__ import annotations

from typing import Protocol

from harness.gates import bandit, imports, mypy, pytest, ruff, secrets
from harness.gates.common import GateContext, error, run_tool, with_pythonpath
from harness.gates.models import GateResult, GateStatus

__all__ = ["GATES", "CommandGate", "Gate", "GateContext"]


class Gate(Protocol):
    name: str

    def run(self, ctx: GateContext) -> GateResult: ...

    def version(self, python: str) -> str:
        """Version(s) of the tool in the interpreter that runs it, plus the digest of the
        target's env (`python`) where that env decides the result; part of the result-cache
        key. Static tools run from the harness's env, pytest from the target's."""
        ...


# Order is the display order; `harness gates` and the summary follow it.
GATES: dict[str, Gate] = {
    "ruff": ruff.GATE,
    "mypy": mypy.GATE,
    "pytest": pytest.GATE,
    "bandit": bandit.GATE,
    "imports": imports.GATE,
    "secrets": secrets.GATE,
}


class CommandGate:
    """A STEPS command that maps onto no gate: run by `sh -c` in the repo, judged by exit code,
    with the repo's `pythonpath` dirs first on PYTHONPATH."""

    def __init__(self, name: str, command: str) -> None:
        self.name = name
        self.command = command

    def version(self, python: str) -> str:
        return "sh"

    def run(self, ctx: GateContext) -> GateResult:
        # Code the command runs is imported from the repository, as under the pytest gate.
        proc = run_tool(["/bin/sh", "-c", self.command], ctx, env=with_pythonpath(ctx))
        if proc.timed_out:
            return error(self.name, "sh", f"timed out after {ctx.cfg.timeout:g}s", proc)
        if proc.missing or proc.returncode in (126, 127):
            why = f"command could not be started (exit {proc.returncode}): {proc.tail}"
            return error(self.name, "sh", why, proc)
        ok = proc.returncode == 0
        return GateResult(
            gate=self.name,
            status=GateStatus.PASSED if ok else GateStatus.FAILED,
            reason=None if ok else f"exit {proc.returncode}: {proc.tail}",
            tool="sh",
            seconds=proc.seconds,
            command=list(proc.argv),
            exit_code=proc.returncode,
        )
