"""The one helper that runs a command: (code, stdout, stderr) with a timeout."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
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
    nice: int = 0,
) -> ProcResult:
    """Run `argv` to completion. `nice` > 0 lowers the child's scheduling priority (POSIX): the
    gates that run side by side give way to the longest one, which then finishes no later
    than it would alone."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    start = time.monotonic()
    try:
        with subprocess.Popen(
            list(argv),
            cwd=str(cwd),
            stdin=subprocess.PIPE if stdin is not None else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=full_env,
        ) as child:
            with _LIVE_LOCK:
                _LIVE.add(child)
            if nice > 0:
                _lower_priority(child.pid, nice)
            try:
                out, err = child.communicate(stdin, timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                # As subprocess.run does: wait, not communicate, since a grandchild may still
                # hold the pipes open; what was read so far is kept.
                child.kill()
                child.wait()
                return ProcResult(
                    tuple(argv),
                    -1,
                    _text(exc.stdout),
                    _text(exc.stderr),
                    time.monotonic() - start,
                    timed_out=True,
                )
            except BaseException:
                child.kill()
                raise
            finally:
                with _LIVE_LOCK:
                    _LIVE.discard(child)
    except FileNotFoundError as exc:
        return ProcResult(tuple(argv), 127, "", str(exc), time.monotonic() - start, missing=True)
    return ProcResult(tuple(argv), child.returncode, out, err, time.monotonic() - start)


# Children started by `run` and not yet reaped, in every thread: Ctrl-C reaches only the main
# thread, so the tools that worker threads wait on (the gates side by side) are killed from
# there, rather than waited for (`kill_running`).
_LIVE: set[subprocess.Popen[str]] = set()
_LIVE_LOCK = threading.Lock()


def kill_running() -> None:
    """Kill every child `run` is waiting on, in any thread (on Ctrl-C or SIGTERM)."""
    with _LIVE_LOCK:
        children = list(_LIVE)
    for child in children:
        with contextlib.suppress(OSError):
            child.kill()


def _lower_priority(pid: int, nice: int) -> None:
    """Set after the start rather than in a preexec_fn, which is unsafe with threads; what the
    child starts from then on (threads, a process pool) inherits it."""
    setpriority = getattr(os, "setpriority", None)
    if setpriority is None:
        return
    # The child may be gone already; a priority is a hint, never a reason to fail.
    with contextlib.suppress(OSError):
        setpriority(os.PRIO_PROCESS, pid, nice)


def _text(data: str | bytes | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data or ""
