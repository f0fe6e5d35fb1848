"""Terminal output: results to stdout, progress and errors to stderr."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    from harness.policy import ResolvedPolicy

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


# Set once a command has printed its JSON result: an error after it must not add a second
# document to stdout (cli.main reads this).
json_printed = False


def print_json(obj: Any) -> None:
    """Plain JSON on stdout (no colour codes), for --json."""
    global json_printed
    json_printed = True
    print(json.dumps(obj, indent=2, sort_keys=False, default=str))


def say_policy(resolved: ResolvedPolicy) -> None:
    """One line for the policy, then what was detected and filled in (stderr)."""
    det = resolved.detected
    line = f"policy: {resolved.source}"
    if det is None:
        err.print(line + " (detection off)", markup=False)
        return
    err.print(line + "; detected:", markup=False)
    for note in det.notes:
        err.print(f"  {note}", markup=False)
