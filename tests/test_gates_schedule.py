"""How the gates share the machine: the tests keep their priority, the rest give way; the
version probe of the harness's own env is read in-process and agrees with the subprocess one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from harness.gates import common
from harness.gates.common import GateContext, run_tool
from harness.gates.runner import GATES, LONGEST_FIRST, priority, run_gates
from harness.policy import GateConfig, parse_policy
from harness.proc import run

from .conftest import other_gates_off

_NICENESS = "import os; print(os.getpriority(os.PRIO_PROCESS, 0))"


def _own_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


def test_a_gate_tool_given_way_runs_at_a_lower_priority(tmp_path: Path) -> None:
    ctx = GateContext(repo=tmp_path, cfg=GateConfig(), nice=5)
    proc = run_tool([sys.executable, "-c", _NICENESS], ctx)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == min(_own_niceness() + 5, 19)
    plain = run_tool([sys.executable, "-c", _NICENESS], GateContext(repo=tmp_path))
    assert int(plain.stdout) == _own_niceness()


def test_only_the_longest_gate_keeps_its_priority() -> None:
    assert set(LONGEST_FIRST) == set(GATES)
    assert priority("pytest") == 0
    assert all(priority(name) > 0 for name in GATES if name != "pytest")


def test_the_tests_run_at_the_harness_priority_beside_the_other_gates(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    seen = tmp_path / "niceness.txt"
    repo = make_repo(
        {
            "pkg/__init__.py": "",
            "tests/test_nice.py": (
                "import os\n\n\ndef test_nice():\n"
                f"    open({str(seen)!r}, 'w').write(str(os.getpriority(os.PRIO_PROCESS, 0)))\n"
            ),
        }
    )
    policy = parse_policy(
        '[gates.pytest]\npaths = ["tests"]\n[gates.ruff]\npaths = ["pkg"]\n'
        + other_gates_off("pytest", "ruff")
    )
    result = run_gates(repo, policy, use_cache=False)
    assert result.results["pytest"].counts()["passed"] == 1
    assert int(seen.read_text()) == _own_niceness()
    # Without the cache the probe runs after the tool, and still labels the result.
    assert (result.results["pytest"].tool_version or "").startswith("pytest ")
    assert (result.results["ruff"].tool_version or "").startswith("ruff ")


def test_a_timeout_keeps_what_was_printed(tmp_path: Path) -> None:
    code = "import time; print('started', flush=True); time.sleep(30)"
    proc = run([sys.executable, "-c", code], tmp_path, timeout=1.0, nice=3)
    assert proc.timed_out and proc.returncode == -1
    assert proc.stdout == "started\n"


def test_the_harness_env_read_in_process_is_what_its_interpreter_says(tmp_path: Path) -> None:
    here = common._env_here()
    out = subprocess.run(
        [sys.executable, "-c", common._ENV_SCRIPT],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    there = json.loads(out)
    assert here.versions == there["versions"]
    assert here.dirs == common._existing(there["dirs"])


_METADATA = {
    "plain": "Metadata-Version: 2.1\nName: Plain-Dist\nVersion: 1.0\nSummary: s\n\nbody\n",
    "crlf": "Metadata-Version: 2.1\r\nName: crlf\r\nVersion: 2.0\r\n\r\nName: body\r\n",
    "lower case, tabs, trailing blank": "name:\tlow\nVERSION: 3.0 \n",
    "first of two": "Name: first\nName: second\nVersion: 1\nVersion: 2\n",
    "folded name": "Name: folded\n  more\nVersion: 1.0\n",
    "folded other": "License: MIT\n        Copyright x\nName: other\nVersion: 1.0\n",
    "no version": "Name: nov\nSummary: x\n",
    "not a header": "Name: bad\nnot a header line\nVersion: 1.0\n",
    "in the body only": "Summary: x\n\nName: body\nVersion: 9\n",
    "empty": "",
}


def test_the_header_scan_reads_what_the_email_parser_reads(tmp_path: Path) -> None:
    import importlib.metadata

    for i, (case, text) in enumerate(_METADATA.items()):
        info = tmp_path / f"d{i}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_bytes(text.encode())
        dist = importlib.metadata.PathDistribution(info)
        meta = dist.metadata
        assert common.name_and_version(dist) == (meta["Name"], meta["Version"]), case
    # And on every distribution of this env, whatever their metadata look like.
    for dist in importlib.metadata.distributions():
        meta = dist.metadata
        assert common.name_and_version(dist) == (meta["Name"], meta["Version"]), dist


def test_the_env_probe_runs_on_the_target_python_it_quotes(tmp_path: Path) -> None:
    """The probe carries name_and_version's own source to the target's interpreter."""
    assert "def name_and_version(" in common._ENV_SCRIPT
    out = subprocess.run(
        [sys.executable, "-I", "-c", common._ENV_SCRIPT],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out)["versions"]["(env)"]


def test_ctrl_c_while_the_gates_run_kills_their_tools_instead_of_waiting(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    """Ctrl-C reaches the main thread only; the gates' tools run from worker threads, and the
    pool's exit would wait for the slowest of them (a suite of 60 s here) before the run
    could stop."""
    import signal
    import threading
    import time

    import pytest

    started = tmp_path / "started"
    repo = make_repo(
        {
            "pkg/__init__.py": "",
            "tests/test_slow.py": (
                "import time\n\n\ndef test_slow():\n"
                f"    open({str(started)!r}, 'w').close()\n    time.sleep(60)\n"
            ),
        }
    )
    policy = parse_policy('[gates.pytest]\npaths = ["tests"]\n' + other_gates_off("pytest"))

    def interrupt_once_the_suite_runs() -> None:
        deadline = time.monotonic() + 50
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # a real signal, as Ctrl-C sends

    # An xdist worker replaces Python's SIGINT handler; this test needs Ctrl-C's usual one.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt_once_the_suite_runs, daemon=True).start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            run_gates(repo, policy, use_cache=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert started.exists()
    assert time.monotonic() - t0 < 45  # the 60 s test was killed, not waited for
