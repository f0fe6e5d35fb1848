"""Where a run's time and identity come from: the wall clock and git's identity for a run, the
record for a replay.

Everything the run writes into the product that is not a function of the code goes through
here: the run id (in the branch name and the `Harness-Run` trailers), the timestamps of the
progress log, and the dates and identity of the commits. A run records each value it hands out
(a `clock` event, the manifest's `identity`), and a replay hands the same values back in the
same order, so its commits and progress log are the original's to the byte.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol

import git

from harness.errors import ReplayDiverged
from harness.gitutil import pinned_git_env
from harness.record import new_run_id, utcnow

Purpose = Literal["progress", "commit"]
_IDENT = re.compile(r"^(?P<name>.*) <(?P<email>[^>]*)> ")


class Clock(Protocol):
    def run_id(self) -> str: ...

    def now(self, purpose: Purpose) -> str:
        """An ISO 8601 UTC time, to the second, for `purpose`."""
        ...

    def identity(self, repo: git.Repo) -> dict[str, str]:
        """GIT_AUTHOR_NAME/EMAIL and GIT_COMMITTER_NAME/EMAIL for the run's commits."""
        ...


class WallClock:
    def run_id(self) -> str:
        return new_run_id()

    def now(self, purpose: Purpose) -> str:
        return utcnow()

    def identity(self, repo: git.Repo) -> dict[str, str]:
        """Who git would say commits in `repo`: the user when git knows them, else `harness`
        (as the commits were made before the identity was recorded)."""
        known = os.environ.get("GIT_AUTHOR_EMAIL") or repo.config_reader().get_value(
            "user", "email", ""
        )
        base = {} if known else pinned_git_env()
        found: dict[str, str] = {}
        for who in ("AUTHOR", "COMMITTER"):
            try:
                ident = str(repo.git.var(f"GIT_{who}_IDENT", env=base))
            except git.GitCommandError:
                return pinned_git_env()
            match = _IDENT.match(ident)
            if match is None:
                return pinned_git_env()
            found[f"GIT_{who}_NAME"] = match.group("name")
            found[f"GIT_{who}_EMAIL"] = match.group("email")
        return found


class RecordedClock:
    """The values a recorded run was handed, handed out again in order. A replay that asks
    for a time the run did not ask for (or for another purpose) has left the recorded path."""

    def __init__(self, run_id: str, identity: Mapping[str, str], stamps: Iterable[Any]) -> None:
        self._run_id = run_id
        self._identity = dict(identity)
        self._stamps = [(str(s["purpose"]), str(s["value"])) for s in stamps]
        self.used = 0

    @classmethod
    def from_events(
        cls, run_id: str, identity: Mapping[str, str], events: Iterable[dict[str, Any]]
    ) -> RecordedClock:
        return cls(run_id, identity, [e for e in events if e.get("kind") == "clock"])

    def run_id(self) -> str:
        return self._run_id

    def now(self, purpose: Purpose) -> str:
        if self.used >= len(self._stamps):
            raise ReplayDiverged(
                f"the replay asks for a {purpose} time #{self.used + 1}; the run recorded "
                f"{len(self._stamps)}",
                where=f"clock #{self.used + 1}",
            )
        wanted, value = self._stamps[self.used]
        if wanted != purpose:
            raise ReplayDiverged(
                f"the replay asks for a {purpose} time where the run asked for a {wanted} time",
                where=f"clock #{self.used + 1}",
            )
        self.used += 1
        return value

    def identity(self, repo: git.Repo) -> dict[str, str]:
        return dict(self._identity)
