"""The one helper that runs a command: (code, stdout, stderr) with a timeout."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    missing: bool = False  # the executable was not found

    @property
    def tail(self) -> str:
        """Last lines of output, for one-line error reasons."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return " | ".join(text[-3:])[:400]


def run(
    argv: Sequence[str],
    cwd: str | Path,
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
) -> ProcResult:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    start = time.monotonic()
    try:
        cp = subprocess.run(
            list(argv),
            cwd=str(cwd),
            input=stdin,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            env=full_env,
            check=False,
        )
    except FileNotFoundError as exc:
        return ProcResult(tuple(argv), 127, "", str(exc), time.monotonic() - start, missing=True)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        return ProcResult(tuple(argv), -1, out, err, time.monotonic() - start, timed_out=True)
    return ProcResult(tuple(argv), cp.returncode, cp.stdout, cp.stderr, time.monotonic() - start)
