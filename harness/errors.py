"""Typed errors. Each carries its data and its exit code; the CLI maps them in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.gates.models import GateResult


class ExitCode:
    OK = 0
    FAILED = 1  # a gate failed / a patch was rejected by policy
    USAGE = 2  # bad arguments, bad input, I/O error, or a gate that could not run
    REGRESSION = 3  # a change caused a regression and was reverted
    PROVIDER = 4  # the model provider failed (auth, exhausted retries)
    BUDGET = 5  # a budget of the run ran out: stopped cleanly, resumable
    INTERNAL = 70  # a bug in harness itself; the traceback is written to a log file
    INTERRUPTED = 130


class HarnessError(Exception):
    """Base class. `str(err)` is the one-line message shown to the user."""

    exit_code: int = ExitCode.USAGE

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.data = data


class UsageError(HarnessError):
    exit_code = ExitCode.USAGE


class PolicyError(HarnessError):
    exit_code = ExitCode.USAGE


class StepsError(HarnessError):
    exit_code = ExitCode.USAGE


class GitError(HarnessError):
    exit_code = ExitCode.USAGE


class GateError(HarnessError):
    """A gate could not run (tool missing, crash, timeout, unparsable output)."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, result: GateResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class ImportLeak(HarnessError):
    """The target's interpreter would import a package from outside the repository under test
    (an editable install of another checkout, a `.pth` file): the gates would judge that copy."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, problems: list[Any]) -> None:
        super().__init__(message)
        self.problems = problems


class PatchError(HarnessError):
    """The patch text itself is unusable (cannot be parsed or located)."""

    exit_code = ExitCode.FAILED


class PatchRejected(HarnessError):
    """The patch parsed but violates the policy. `violations` are guard Violation models."""

    exit_code = ExitCode.FAILED

    def __init__(self, message: str, violations: list[Any]) -> None:
        super().__init__(message)
        self.violations = violations


class SupervisorQuit(HarnessError):
    """The person supervising a run (or the record a replay follows) chose to stop: the run ends
    cleanly, what landed judged by the gates, and says so with the exit code of an interrupt."""

    exit_code = ExitCode.INTERRUPTED


class ItemSkipped(HarnessError):
    """The approver skipped the todo item whose patch it was shown: the patch does not land and
    the model is not asked again for that item."""

    exit_code = ExitCode.FAILED


class PatchEdited(HarnessError):
    """The person supervising edited the patch: `diff` goes through the guard and every landing
    check again, in place of the model's."""

    exit_code = ExitCode.FAILED

    def __init__(self, message: str, diff: str) -> None:
        super().__init__(message)
        self.diff = diff


class RegressionError(HarnessError):
    exit_code = ExitCode.REGRESSION

    def __init__(self, message: str, regressions: list[Any]) -> None:
        super().__init__(message)
        self.regressions = regressions


class ProviderError(HarnessError):
    exit_code = ExitCode.PROVIDER


class BudgetExceeded(ProviderError):
    """A budget ran out: the call it would take is not made, and is never retried. `budget`
    names the limit (cost_usd, tokens, calls, seconds, item_calls), `scope` run, block or
    item, `where` the step that wanted the call. The run stops cleanly, resumable."""

    exit_code = ExitCode.BUDGET

    def __init__(
        self,
        message: str,
        *,
        budget: str = "",
        scope: str = "run",
        where: str = "",
        spent: float = 0.0,
        limit: float = 0.0,
        **data: Any,
    ) -> None:
        super().__init__(message, **data)
        self.budget = budget
        self.scope = scope
        self.where = where
        self.spent = spent
        self.limit = limit


class Interrupted(HarnessError):
    """Ctrl-C during a run. Carries where the record and the work so far are, so the one line
    the user sees says where to look and how to go on (`harness resume RUN_DIR`)."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str, run_dir: str, branch: str | None) -> None:
        super().__init__(message)
        self.run_dir = run_dir
        self.branch = branch


class ReplayDiverged(HarnessError):
    """A replay left the recorded path: a request, a time, a verdict, an outcome or the final
    tree differs from the record. `where` names the step (block, item, phase)."""

    exit_code = ExitCode.FAILED

    def __init__(self, message: str, where: str = "", diff: str = "") -> None:
        super().__init__(message)
        self.where = where
        self.diff = diff


class RecordUnusable(UsageError):
    """A run directory that cannot be replayed: not a record, an older format, a killed run,
    or a repository without the run's base commit."""


class NotResumable(UsageError):
    """A run directory `harness resume` cannot continue: not a record, a run that finished, or
    one whose branch or base commit is gone."""
