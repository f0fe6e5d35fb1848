"""The patch guard: every model-written diff is validated, repaired and applied atomically.

`check_patch` decides (never touching the repository); `apply_verdict` writes an accepted
verdict as one commit.
"""

from __future__ import annotations

from harness.guard.check import check_patch
from harness.guard.commit import apply_verdict
from harness.guard.models import FileStat, Verdict, Violation
from harness.guard.parse import extract_diff

__all__ = ["FileStat", "Verdict", "Violation", "apply_verdict", "check_patch", "extract_diff"]
