"""The CLI shell: help, version, and one place that maps errors to exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from harness import __version__


def harness(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "harness", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)


def test_help_lists_every_command_and_the_exit_codes() -> None:
    proc = harness("--help")
    assert proc.returncode == 0
    for name in ("gates", "check-patch", "apply", "steps", "run", "demo"):
        assert name in proc.stdout
    assert "Exit codes" in proc.stdout


def test_version() -> None:
    assert harness("--version").stdout.strip() == f"harness {__version__}"


def test_usage_error_is_exit_2() -> None:
    assert harness("no-such-command").returncode == 2
    proc = harness("run", "/nonexistent/STEPS.md")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "harness: error: cannot read STEPS script /nonexistent/STEPS.md: No such file or directory"
    ]


def test_a_bug_is_one_line_and_a_log_not_a_traceback() -> None:
    boom = (
        "import sys, harness.cli as c\n"
        "@c.app.command('boom')\n"
        "def boom() -> None:\n"
        "    raise RuntimeError('kaput')\n"
        "sys.argv = ['harness', 'boom']\n"
        "c.main()\n"
    )
    proc = harness(code=boom)
    assert proc.returncode == 70
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "internal error: RuntimeError: kaput" in lines[0]
    match = re.search(r"the traceback is in (\S+)\)", lines[0])
    assert match is not None
    log = Path(match.group(1))
    assert "Traceback" in log.read_text() and "kaput" in log.read_text()
    log.unlink()
