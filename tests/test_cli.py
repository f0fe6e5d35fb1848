"""The CLI shell: help, version, and one place that maps errors to exit codes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import __version__
from tests.conftest import git, other_gates_off


def harness(
    *args: str,
    code: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "harness", *args]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no-such-command"], "No such command 'no-such-command'. (see 'harness --help')"),
        (["gates", "--nope"], "No such option: --nope"),
        (["run"], "Missing argument 'steps'. (see 'harness run --help')"),
        (["run", "S.md", "--max-cost", "abc"], "Invalid value for '--max-cost'"),
        (["gates", "--only"], "Option '--only' requires an argument."),
        (["runs", "clean", "--bogus"], "No such option: --bogus"),
    ],
)
def test_usage_errors_are_one_line_on_stderr_and_exit_2(argv: list[str], message: str) -> None:
    proc = harness(*argv)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("harness: error: ") and message in lines[0]
    assert proc.stdout == ""


def test_help_is_still_the_help() -> None:
    proc = harness("gates", "--help")
    assert proc.returncode == 0 and proc.stderr == ""
    assert "Usage: harness gates" in proc.stdout and "--repo" in proc.stdout


def _error_object(proc: subprocess.CompletedProcess[str], code: int) -> dict[str, object]:
    assert proc.returncode == code, proc.stderr
    obj = json.loads(proc.stdout)
    assert obj == {"error": obj["error"], "exit_code": code}
    assert proc.stderr.strip().splitlines() == [f"harness: error: {obj['error']}"]
    return obj


def test_json_errors_are_an_object_on_stdout_for_every_json_command(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    (tmp_path / "demo" / "example").mkdir(parents=True)
    missing = str(tmp_path / "missing")
    harness_errors = [
        ["gates", "--repo", missing, "--json"],
        ["steps", missing, "--json"],
        ["run", missing, "--repo", str(repo), "--json"],
        ["check-patch", missing, "--repo", str(repo), "--json"],
        ["apply", missing, "--repo", str(repo), "--json"],
        ["demo", "--dir", str(tmp_path / "demo"), "--json"],
        ["runs", "--runs-dir", missing, "--json"],
        ["runs", "clean", "--runs-dir", missing, "--json"],
    ]
    for argv in harness_errors:
        obj = _error_object(harness(*argv), 2)
        assert obj["error"], argv
    usage = _error_object(harness("gates", "--json", "--nope"), 2)
    assert str(usage["error"]).startswith("No such option: --nope")
    assert _error_object(harness("run", "--json"), 2)["error"] == (
        "Missing argument 'steps'. (see 'harness run --help')"
    )


def test_json_result_then_error_leaves_one_document_on_stdout(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo({"pkg/__init__.py": ""})
    policy = tmp_path / "p.toml"
    policy.write_text(
        '[gates.ruff]\npaths = ["pkg"]\nconfig = "nope.toml"\n' + other_gates_off("ruff")
    )
    proc = harness("gates", "--repo", str(repo), "--policy", str(policy), "--json")
    assert proc.returncode == 2
    result = json.loads(proc.stdout)  # one document: the gates' result, not an error object
    assert result["gates"]["ruff"]["status"] == "error"
    assert proc.stderr.strip().splitlines()[-1] == (
        "harness: error: gate ruff could not run: ruff config not found: nope.toml"
    )


def test_every_policy_error_is_listed_in_one_line(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    policy = tmp_path / "policy.toml"
    policy.write_text(
        "[gates.ruff]\ntimeout = 0\n[guard]\nlanez = []\nmax_changed_lines_per_file = 0\n"
    )
    proc = harness("gates", "--repo", str(repo), "--policy", str(policy))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"harness: error: {policy}: gates.ruff.timeout: Input should be greater than 0; "
        "guard.max_changed_lines_per_file: Input should be greater than or equal to 1; "
        "unknown key 'guard.lanez'"
    ]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_child(pid: int, name: str, seconds: float = 30.0) -> None:
    """Until a descendant of process `pid` runs `name` (Linux /proc), or `seconds` pass."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        parents: dict[int, int] = {}
        commands: dict[int, bytes] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                commands[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes()
            except (OSError, ValueError):
                continue
            parents[int(stat.parent.name)] = int(fields[1])
        for child, cmd in commands.items():
            up = parents.get(child)
            while up is not None and up != pid:
                up = parents.get(up)
            if up == pid and name.encode() in cmd.split(b"\0")[0]:
                return
        time.sleep(0.05)


STEPS_WAIT = """# STEPS test

## BLOCK 1 — Wait

- Nothing to do but wait.

**Gate:**
```bash
sleep 60
```
"""


def test_a_model_without_a_price_is_a_policy_error(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    steps = tmp_path / "STEPS.md"
    steps.write_text(STEPS_WAIT)
    proc = harness(
        "run",
        str(steps),
        "--repo",
        str(repo),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--provider",
        "anthropic",
        "--model",
        "claude-unpriced-1",
        env={"ANTHROPIC_API_KEY": "test-key-not-real", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"},
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harness:")]
    assert errors == ["harness: error: no price for model claude-unpriced-1 in policy [prices]"]
    assert not (tmp_path / "runs").exists()


def _ruff_only(tmp_path: Path) -> Path:
    policy = tmp_path / "policy.toml"
    policy.write_text('[gates.ruff]\npaths = ["pkg"]\n' + other_gates_off("ruff"))
    return policy


FIX = "--- a/pkg/calc.py\n+++ b/pkg/calc.py\n@@ -1,4 +1,2 @@\n-import os\n-\n \n def add(a, b):\n"


def test_every_command_works_from_a_subdirectory(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo(
        {"pkg/__init__.py": "", "pkg/calc.py": "import os\n\n\ndef add(a, b):\n    return a + b\n"}
    )
    sub = repo / "pkg"
    policy = _ruff_only(tmp_path)
    (tmp_path / "fix.diff").write_text(FIX)

    gates = harness("gates", "--policy", str(policy), "--json", cwd=sub)
    assert gates.returncode == 1, gates.stderr  # pkg/calc.py's unused import, found from pkg/
    assert json.loads(gates.stdout)["gates"]["ruff"]["findings"] == 1
    assert str(repo) in gates.stderr

    checked = harness("check-patch", str(tmp_path / "fix.diff"), "--json", cwd=sub)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["files"][0]["path"] == "pkg/calc.py"

    applied = harness("apply", str(tmp_path / "fix.diff"), "--policy", str(policy), cwd=sub)
    assert applied.returncode == 0, applied.stderr
    assert "import os" not in (sub / "calc.py").read_text()
    assert git(repo, "status", "--porcelain") == ""

    outside = tmp_path / "outside"
    outside.mkdir()
    proc = harness("gates", cwd=outside)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"harness: error: not a git repository (nor inside one): {outside}"
    ]


def test_ctrl_c_during_a_run_says_where_the_record_and_branch_are(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo({"a.py": "x = 1\n", "sub/notes.txt": "notes\n"})
    steps = tmp_path / "STEPS.md"
    steps.write_text(STEPS_WAIT)
    policy = tmp_path / "policy.toml"
    policy.write_text(other_gates_off())
    script = tmp_path / "script.json"
    script.write_text('{"responses": []}')
    runs = tmp_path / "runs"
    proc = subprocess.Popen(  # from a subdirectory, and --repo left to its default
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            str(steps),
            "--policy",
            str(policy),
            "--provider",
            "scripted",
            "--script",
            str(script),
            "--runs-dir",
            str(runs),
        ],
        cwd=repo / "sub",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: Ctrl-C's default disposition. A process started with SIGINT
        # ignored keeps ignoring it (Python installs no handler then); in the full suite under
        # xdist the run did not answer SIGINT, and an inherited ignore is ruled out this way.
        preexec_fn=_default_sigint,
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # the block's gate (sleep 60) starts right after these lines
        seen.append(line)
        if line.startswith("  lanes:"):
            break
    # Interrupt while the gate's tool runs. (A Ctrl-C in the instant before it starts was seen
    # not to stop a run under load: issue 12's clean Ctrl-C, not what this test pins.)
    _wait_for_child(proc.pid, "sleep")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(seen) + err
    (record,) = runs.iterdir()
    branch = f"harness/{record.name}"
    assert err.strip().splitlines() == [
        f"harness: interrupted: record in {record}, work so far on branch {branch}; "
        f"go on with: harness resume {record}"
    ]
    assert out == ""
    manifest = json.loads((record / "manifest.json").read_text())
    assert manifest["exit_code"] == 130 and manifest["finished"]
    assert manifest["repo"] == str(repo)
    assert branch in git(repo, "branch", "--list", "harness/*")
    assert git(repo, "worktree", "list").count("\n") == 1  # the run's worktree is gone
