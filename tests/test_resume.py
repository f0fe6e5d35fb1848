"""`harness resume`: a run killed (SIGKILL) at several points, interrupted (Ctrl-C) or stopped by
its budget goes on from its last finished block, and ends as the same run uninterrupted would:
the same events, commits and summary, no commit twice, no recorded answer asked for again."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.providers.scripted import ScriptedProvider
from harness.record import KILL_BEFORE, read_events
from harness.report import load as load_report
from harness.report import markdown
from tests.conftest import PINNED, git, other_gates_off, write_files
from tests.test_loop import FILES as TESTED_FILES
from tests.test_loop import options
from tests.test_replay import LOGGING_PYTHON, TESTED_POLICY

STEPS = """# STEPS test

## BLOCK 1 — Ruff in calc

- Fix the ruff findings in `pkg/calc.py`.

**Gate:**
```bash
ruff check pkg
```

## BLOCK 2 — Ruff in other

- Fix the ruff findings in `pkg/other.py`.

**Gate:**
```bash
ruff check pkg
python hold.py
```

## Guardrails

- ≤20 lines/file.
- Append results to `docs/audits/CLAUDE_PROGRESS.md`.
"""

POLICY = (
    other_gates_off("ruff")
    + """
[gates.ruff]
paths = ["pkg"]
args = ["--select", "F,E"]
[guard]
forbidden = ["docs/audits/CLAUDE_PROGRESS.md", "hold.py"]
[loop]
max_iterations = 1
"""
)

# A gate command that waits while its flag file exists, once the second block's fix is in: the
# run can be killed while a gate's tool runs, at a point the test chooses.
HOLD = """import os, pathlib, time
flag = pathlib.Path(os.environ["HOLD_FLAG"])
if flag.exists() and "import json" not in pathlib.Path("pkg/other.py").read_text():
    pathlib.Path(str(flag) + ".seen").touch()
    while flag.exists():
        time.sleep(0.05)
"""

FILES = {
    "pkg/__init__.py": "",
    "pkg/calc.py": "import os\nimport sys\n\n\ndef add(a, b):\n    return a + b\n",
    "pkg/other.py": "import json\n\n\ndef one():\n    return 1\n",
    "hold.py": HOLD,
    "docs/audits/CLAUDE_PROGRESS.md": "# Progress\n",
}

REMOVE_OS = "--- a/pkg/calc.py\n+++ b/pkg/calc.py\n@@ -1,2 +1 @@\n-import os\n import sys\n"
REMOVE_SYS = "--- a/pkg/calc.py\n+++ b/pkg/calc.py\n@@ -1,2 +1 @@\n-import sys\n \n"
NOQA = (
    "--- a/pkg/calc.py\n+++ b/pkg/calc.py\n@@ -1,2 +1,2 @@\n"
    "-import os\n+import os  # noqa: F401\n import sys\n"
)
REMOVE_JSON = "--- a/pkg/other.py\n+++ b/pkg/other.py\n@@ -1,2 +1 @@\n-import json\n \n"


def todos(*items: tuple[str, str]) -> dict[str, Any]:
    listed = [{"id": i, "title": f"item {i}", "files": [f], "gate": "ruff"} for i, f in items]
    return {"phase": "todo", "tool": "submit_todos", "input": {"items": listed}}


def patch(item: str, diff: str) -> dict[str, Any]:
    return {"phase": "execute", "tool": "propose_patch", "input": {"item_id": item, "diff": diff}}


PLAN = {"phase": "plan", "tool": "submit_plan", "input": {"summary": "remove unused imports"}}
USAGE = {"input_tokens": 1000, "output_tokens": 100, "cost_usd": 0.01}
RESPONSES = [
    PLAN,
    todos(("T1", "pkg/calc.py"), ("T2", "pkg/calc.py")),
    patch("T1", NOQA),  # refused by the guard: T1 is tried again
    patch("T1", REMOVE_OS),
    patch("T2", REMOVE_SYS),
    PLAN,
    todos(("T3", "pkg/other.py")),
    patch("T3", REMOVE_JSON),
]
# Events a resume adds, or that each session of a run records for itself.
SESSION = {"run_resumed", "imports_checked"}


class Setup:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True)
        self.root = root
        self.flag = root / "flag"
        # Set here, not by conftest's fixtures: the reference run is made once per module.
        home = root / "home"
        home.mkdir()
        (home / ".gitconfig").write_text("[user]\n\tname = Test\n\temail = t@example.invalid\n")
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"},
            **PINNED,
            "HOME": str(home),
            "HARNESS_CACHE_DIR": str(root / "cache"),
            "HOLD_FLAG": str(self.flag),
        }
        self.repo = root / "repo"
        self.repo.mkdir()
        write_files(self.repo, FILES)
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "initial"]):
            subprocess.run(["git", *args], cwd=self.repo, env=self.env, check=True)
        self.steps = root / "STEPS.md"
        self.steps.write_text(STEPS, encoding="utf-8")
        self.policy = root / "policy.toml"
        self.policy.write_text(POLICY, encoding="utf-8")
        self.script = root / "script.json"
        self.script.write_text(
            json.dumps({"responses": [r | {"usage": USAGE} for r in RESPONSES]}), encoding="utf-8"
        )
        self.runs = root / "runs"

    def run_args(self, *extra: str) -> list[str]:
        return [
            "run",
            str(self.steps),
            "--repo",
            str(self.repo),
            "--policy",
            str(self.policy),
            "--provider",
            "scripted",
            "--script",
            str(self.script),
            "--runs-dir",
            str(self.runs),
            "--json",
            *extra,
        ]

    def record(self) -> Path:
        (record,) = self.runs.iterdir()
        return record


def harness(
    setup: Setup, args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        env={**setup.env, **(env or {})},
        timeout=600,
        check=False,
    )


def start(setup: Setup, **kwargs: Any) -> subprocess.Popen[str]:
    """The run in a session of its own: a signal to the group reaches its gates' tools too."""
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *setup.run_args()],
        env=setup.env,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def wait_for_gate(setup: Setup, proc: subprocess.Popen[str]) -> None:
    seen = Path(str(setup.flag) + ".seen")
    deadline = time.monotonic() + 300
    while not seen.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen.exists(), "the gate never started waiting"


def resume(setup: Setup, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["resume", str(setup.record()), "--script", str(setup.script), "--json", *extra]
    return harness(setup, args)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """The same run, uninterrupted."""
    setup = Setup(tmp_path_factory.mktemp("reference") / "run")
    proc = harness(setup, setup.run_args())
    assert proc.returncode == 1, proc.stderr  # block 1 leaves other.py's finding: goal unmet
    return setup


def kinds(record: Path) -> list[str]:
    return [e["kind"] for e in read_events(record) if e["kind"] not in SESSION]


def commits(setup: Setup) -> list[str]:
    """The branch's commits: subject and trailers, without the run id they name."""
    manifest = json.loads((setup.record() / "manifest.json").read_text())
    log = git(setup.repo, "log", "--reverse", "--format=%x00%s%n%b", f"main..{manifest['branch']}")
    return [
        " ".join(line for line in entry.split("\n") if line and not line.startswith("Harness-Run"))
        for entry in log.split("\0")[1:]
    ]


def outcome(setup: Setup) -> Any:
    summary = json.loads((setup.record() / "summary.json").read_text())
    blocks = [
        {k: b[k] for k in ("number", "status", "rejected", "before", "after")}
        | {"kept": len(b["commits"])}
        for b in summary["blocks"]
    ]
    return timeless({"blocks": blocks, "summary": summary["summary"], "cost": summary["cost_usd"]})


def timeless(value: Any) -> Any:
    """Without how long each gate took and whether it came from the cache."""
    if isinstance(value, dict):
        return {k: timeless(v) for k, v in value.items() if k not in ("seconds", "cached")}
    if isinstance(value, list):
        return [timeless(v) for v in value]
    return value


def code(setup: Setup) -> str:
    manifest = json.loads((setup.record() / "manifest.json").read_text())
    return git(setup.repo, "diff", "main", manifest["branch"], "--", "pkg")


def same_run(setup: Setup, reference: Setup) -> None:
    assert kinds(setup.record()) == kinds(reference.record())
    assert commits(setup) == commits(reference)
    assert len(set(commits(setup))) == len(commits(setup))  # no commit twice
    assert outcome(setup) == outcome(reference)
    assert code(setup) == code(reference)
    manifest = json.loads((setup.record() / "manifest.json").read_text())
    assert manifest["exit_code"] == 1 and manifest["finished"] and manifest["resumed"]
    # No model call repeated: every answer of the script was used exactly once.
    responses = [e for e in read_events(setup.record()) if e["kind"] == "model_response"]
    assert len(responses) == len(RESPONSES)


@pytest.mark.parametrize(
    "kill_before",
    [
        "verdict:2",  # mid-block: T1's second patch is in the record, not yet judged
        "applied:1",  # between landing and its event: T1's commit is on the branch
        "checkpoint:1",  # block 1 judged and its outcome written, its checkpoint not
        "applied:3",  # in block 2, after block 1's checkpoint
    ],
)
def test_a_run_killed_at_a_step_resumes_as_if_never_killed(
    tmp_path: Path, reference: Setup, kill_before: str
) -> None:
    setup = Setup(tmp_path / "run")
    killed = harness(setup, setup.run_args(), env={KILL_BEFORE: kill_before})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    manifest = json.loads((setup.record() / "manifest.json").read_text())
    assert manifest["finished"] is None
    branch = manifest["branch"]
    landed = git(setup.repo, "rev-list", f"main..{branch}").split()

    proc = resume(setup)
    assert proc.returncode == 1, proc.stderr
    same_run(setup, reference)
    # What had landed before the kill is on the branch once, as the very same commits.
    final = git(setup.repo, "rev-list", f"main..{branch}").split()
    assert set(landed) <= set(final)
    assert git(setup.repo, "worktree", "list").count("\n") == 1
    aside = list(setup.record().glob("events.interrupted-*.jsonl"))
    assert len(aside) == 1 and aside[0].read_text()  # the unfinished block's events, kept


def test_a_run_killed_while_a_gate_runs_resumes(tmp_path: Path, reference: Setup) -> None:
    setup = Setup(tmp_path / "run")
    setup.flag.touch()
    proc = start(setup, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_gate(setup, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the harness and the gate's tool with it
    proc.wait(timeout=30)
    setup.flag.unlink()
    events = read_events(setup.record())
    assert any(e["kind"] == "checkpoint" for e in events)  # block 1 finished before the kill

    resumed = resume(setup)
    assert resumed.returncode == 1, resumed.stderr
    same_run(setup, reference)
    # Block 1 was not done again: its start gates ran once, in the first session.
    starts = [e for e in read_events(setup.record()) if e.get("label") == "block 1 start"]
    assert len(starts) == 1
    # The resumed run's record is a whole run's: `harness replay` reproduces it exactly.
    replayed = harness(setup, ["replay", str(setup.record()), "--json"])
    assert replayed.returncode == 0, replayed.stdout[-3000:]
    assert json.loads(replayed.stdout)["reproduced"]


def test_a_resume_killed_in_its_turn_resumes_from_the_attempt_that_got_furthest(
    tmp_path: Path, reference: Setup
) -> None:
    setup = Setup(tmp_path / "run")
    killed = harness(setup, setup.run_args(), env={KILL_BEFORE: "applied:2"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # The resume is killed before it has caught up: its log holds less than the first one's.
    args = ["resume", str(setup.record()), "--script", str(setup.script)]
    again = harness(setup, args, env={KILL_BEFORE: "verdict:1"})
    assert again.returncode == -signal.SIGKILL, again.stderr
    proc = resume(setup)
    assert proc.returncode == 1, proc.stderr
    same_run(setup, reference)
    assert len(list(setup.record().glob("events.interrupted-*.jsonl"))) == 2


def test_a_finished_run_is_not_resumed(reference: Setup) -> None:
    proc = resume(reference)
    assert proc.returncode == 2
    assert "finished (exit 1): there is nothing to resume" in proc.stderr


def test_a_budget_stop_resumes_with_a_larger_budget(tmp_path: Path, reference: Setup) -> None:
    setup = Setup(tmp_path / "run")
    # Four calls: the plan, the todos and T1's two patches; T2's would be the fifth.
    stopped = harness(setup, setup.run_args("--max-calls", "4"))
    assert stopped.returncode == 5, stopped.stderr
    record = setup.record()
    line = stopped.stderr.strip().splitlines()[-1]
    assert line.startswith(
        "harness: error: run budget calls ran out at block 1, item T2, phase execute: "
        "4 model calls made of 4; "
    )
    assert line.endswith(f"go on with a larger budget: harness resume {record} --max-calls N")
    assert json.loads(stopped.stdout)["exit_code"] == 5
    events = read_events(record)
    (budget,) = [e for e in events if e["kind"] == "budget_exhausted"]
    assert (budget["budget"], budget["scope"], budget["spent"]) == ("calls", "run", 4)
    assert sum(e["kind"] == "model_request" for e in events) == 4  # the fifth was not made

    again = resume(setup)  # the same budget: it runs out again at once, asking nothing
    assert again.returncode == 5
    assert sum(e["kind"] == "model_request" for e in read_events(record)) == 4

    proc = resume(setup, "--max-calls", "8")
    assert proc.returncode == 1, proc.stderr
    same_run(setup, reference)


def test_ctrl_c_then_resume(tmp_path: Path, reference: Setup) -> None:
    setup = Setup(tmp_path / "run")
    setup.flag.touch()
    proc = start(
        setup,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    wait_for_gate(setup, proc)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C reaches the whole group
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    record = setup.record()
    assert err.strip().splitlines()[-1].endswith(f"; go on with: harness resume {record}")
    assert git(setup.repo, "worktree", "list").count("\n") == 1
    setup.flag.unlink()

    resumed = resume(setup)
    assert resumed.returncode == 1, resumed.stderr
    same_run(setup, reference)


def test_a_mapped_script_resumes_with_its_recorded_mapping(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    from harness.errors import Interrupted
    from harness.loop import Loop
    from harness.resume import resume as go_on
    from tests.test_steps_mapping import ANSWER, POLICY, SCRIPT

    repo = make_repo({"pkg/__init__.py": "", "pkg/calc.py": "X = 1\n"})
    answer = {"phase": "steps", "tool": "map_unplaced", "input": ANSWER}

    def stop_at_block_2(message: str) -> None:
        if message.startswith("block 2:"):
            raise KeyboardInterrupt  # Ctrl-C as block 2 starts, block 1 finished

    provider = ScriptedProvider.from_responses([answer])
    opts = replace(
        options(repo, provider, SCRIPT, POLICY, tmp_path / "runs"), progress=stop_at_block_2
    )
    with pytest.raises(Interrupted):
        Loop(opts).run()
    (record,) = (tmp_path / "runs").iterdir()
    summary = go_on(record, lambda _m, _p: ScriptedProvider.from_responses([answer]))
    # The mapped command judges block 2 as it would have: the mapping was not asked again.
    assert summary.blocks[1].gates == ["command:test -f pkg/__init__.py"]
    events = read_events(record)
    assert sum(e["kind"] == "model_request" for e in events) == 1


def test_the_builtin_provider_resumes_knowing_what_it_proposed(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    """The builtin provider remembers its todo list and its patches (to split a refused one in
    halves): the answers the record hands back are asked of it too, so it goes live as it
    would have been."""
    from harness.errors import Interrupted
    from harness.loop import Loop
    from harness.providers.base import ModelRequest, ModelResponse
    from harness.providers.builtin import BuiltinProvider
    from harness.resume import resume as go_on
    from tests.test_loop import FILES as CALC_FILES
    from tests.test_loop import STEPS as ONE_BLOCK

    class Seen(BuiltinProvider):
        def __init__(self) -> None:
            super().__init__()
            self.phases: list[str] = []

        def complete(self, request: ModelRequest) -> ModelResponse:
            self.phases.append(request.phase)
            return super().complete(request)

    repo = make_repo(CALC_FILES)
    policy = other_gates_off("ruff") + '[gates.ruff]\npaths = ["pkg"]\n[loop]\nmax_iterations = 1\n'

    def stop_at_the_first_item(message: str) -> None:
        if message.startswith("  [R1]"):
            raise KeyboardInterrupt  # Ctrl-C once the todo list is answered

    opts = replace(
        options(repo, Seen(), ONE_BLOCK, policy, tmp_path / "runs"), progress=stop_at_the_first_item
    )
    with pytest.raises(Interrupted):
        Loop(opts).run()
    (record,) = (tmp_path / "runs").iterdir()
    live = Seen()
    summary = go_on(record, lambda _m, _p: live)
    assert live.phases[:3] == ["plan", "todo", "execute"]  # the first two answered by the record
    assert len(summary.blocks[0].commits) == 1
    events = read_events(record)
    asked = [e["phase"] for e in events if e["kind"] == "model_request"]
    assert asked[:3] == ["plan", "todo", "execute"] and asked.count("todo") == asked.count("plan")


# ------------------------------------------------------------- a landing's checks, caught up on

# Two landings, each judged by the guard's behaviour and mutation layers, the per-patch verifier
# and the quick lint; every pytest run goes through the logging interpreter.
CHECKED = [
    PLAN,
    todos(("a", "pkg/calc.py"), ("b", "pkg/calc.py")),
    patch("a", REMOVE_OS),
    patch("b", REMOVE_SYS),
]


def interrupted_at_b(make_repo: Callable[..., Path], root: Path) -> tuple[Path, Path]:
    """The run of CHECKED, interrupted (Ctrl-C) as item b starts, item a landed: returns
    (record, the interpreter's log, emptied)."""
    from harness.errors import Interrupted
    from harness.loop import Loop

    repo = make_repo(TESTED_FILES)
    log, python = root / "python.log", root / "python"
    python.write_text(LOGGING_PYTHON.format(log=log, python=sys.executable))
    python.chmod(0o755)

    def ctrl_c_at_b(message: str) -> None:
        if message.startswith("  [b]"):
            raise KeyboardInterrupt

    opts = options(
        repo,
        ScriptedProvider.from_responses(CHECKED),
        policy=TESTED_POLICY.format(python=python),
        runs_dir=root / "runs",
    )
    opts.progress = ctrl_c_at_b
    with pytest.raises(Interrupted):
        Loop(opts).run()
    (record,) = (root / "runs").iterdir()
    log.unlink()
    return record, log


def patch_checks(log: Path) -> int:
    """The per-patch verifier's pytest runs (one per patch it checks) in the log."""
    lines = log.read_text().splitlines()
    return sum("--harness-report=" in line and "harness-verify-" in line for line in lines)


def test_a_resume_takes_a_landed_patchs_checks_from_the_record_unless_their_inputs_changed(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    from harness.resume import resume as go_on

    def scripted(_m: Any, _p: Any) -> ScriptedProvider:
        return ScriptedProvider.from_responses(CHECKED)

    record, log = interrupted_at_b(make_repo, tmp_path)
    # The same record, its policy changed in a way no prompt shows: every key differs.
    changed = Path(shutil.copytree(record, tmp_path / "changed" / record.name))
    policy = json.loads((changed / "policy.json").read_text())
    policy["gates"]["pytest"]["timeout"] += 1
    (changed / "policy.json").write_text(json.dumps(policy))
    aside = {e["key"]: e for e in read_events(record) if e["kind"] == "measured"}

    # Reused: a's checks are handed back (a larger budget judges no patch differently); b,
    # not checked before the interruption, is checked.
    summary = go_on(record, scripted, budget={"max_calls": 50})
    assert len(summary.blocks[0].commits) == 2
    assert patch_checks(log) == 1  # b's: a's per-patch pytest run was not made again
    measured = [e for e in read_events(record) if e["kind"] == "measured"]
    reused = [e for e in measured if e.get("reused")]
    assert {e["key"] for e in reused} == set(aside)
    assert {e["reused"] for e in reused} == {"events.interrupted-1.jsonl"}
    assert {"quick", "behaviour+verify", "mutation"} <= {e["layer"] for e in reused}
    assert [e["result"] for e in reused] == [aside[e["key"]]["result"] for e in reused]
    assert "behaviour+verify" in {e["layer"] for e in measured if not e.get("reused")}
    report = load_report(record)
    assert report.header.checks_reused == len(reused)
    said = f"| resumed | {len(reused)} check(s) taken from the interrupted session's record"
    assert said in markdown(report)
    code = landed_code(record)

    # Re-verified: a's checks run again, and the run comes out the same, event for event.
    log.unlink()
    summary = go_on(changed, scripted)
    assert patch_checks(log) == 2  # a's and b's
    assert not any(e.get("reused") for e in read_events(changed) if e["kind"] == "measured")
    assert kinds(changed) == kinds(record)
    assert len(summary.blocks[0].commits) == 2
    assert landed_code(record) == code  # the same branch, as the copy's resume left it


def landed_code(record: Path) -> str:
    manifest = json.loads((record / "manifest.json").read_text())
    return git(Path(manifest["repo"]), "diff", "main", manifest["branch"], "--", "pkg")
