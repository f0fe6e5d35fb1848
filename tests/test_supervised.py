"""`harness run --supervised` through a real pseudo-terminal (pexpect): a person rejects a patch
with a reason the model is told, approves one, edits one in $EDITOR (the edit goes through the
guard again and is shown again) and stops after the block; the run's record replays without
asking anyone, and a killed supervised run resumes without asking again what the person
decided. Without a terminal on stdin the run is refused at once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pexpect

from harness.errors import ExitCode
from harness.record import read_events
from harness.replay import replay
from tests.conftest import git
from tests.test_approve import CALC, DROP_OS, DROP_SYS, FILES, POLICY, STEPS2, patch, todos
from tests.test_loop import plan

PROMPT = "[a]pprove, [r]eject, [e]dit, [s]kip item, [q]uit? "
GO_ON = "go on with block 2? [y]es, [n]o: "
# After DROP_SYS landed: the model drops json; the person drops os with it.
THEN_JSON = CALC + '@@ -1,3 +1,2 @@\n """Calc."""\n-import json\n import os\n'
EDITED = CALC + '@@ -1,4 +1,2 @@\n """Calc."""\n-import json\n-import os\n \n'
SCRIPT = [
    plan(),
    todos(("a", "pkg/calc.py"), ("b", "pkg/calc.py")),
    patch("a", DROP_OS),  # rejected by the person
    patch("a", DROP_SYS),  # approved
    patch("b", THEN_JSON),  # edited into EDITED, which is approved
]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str | None) -> str:
    return ANSI.sub("", text or "").replace("\r", "")


def setup(make_repo: Callable[..., Path], tmp_path: Path) -> tuple[Path, list[str]]:
    repo = make_repo(FILES)
    (tmp_path / "steps.md").write_text(STEPS2)
    (tmp_path / "policy.toml").write_text(POLICY)
    (tmp_path / "script.json").write_text(json.dumps({"responses": SCRIPT}))
    args = [
        "-m", "harness", "run", str(tmp_path / "steps.md"), "--repo", str(repo),
        "--policy", str(tmp_path / "policy.toml"), "--provider", "scripted",
        "--script", str(tmp_path / "script.json"), "--runs-dir", str(tmp_path / "runs"),
        "--supervised",
    ]  # fmt: skip
    return repo, args


def spawn(args: list[str], tmp_path: Path, **env: str) -> pexpect.spawn:
    environ = {k: v for k, v in os.environ.items() if k != "VISUAL"}
    return pexpect.spawn(
        sys.executable,
        args,
        cwd=str(tmp_path),
        env={**environ, "TERM": "xterm-256color", **env},
        encoding="utf-8",
        timeout=300,
        dimensions=(50, 160),
    )


def make_editor(tmp_path: Path) -> Path:
    """An $EDITOR that replaces the diff it is given with EDITED, as a person's edit would."""
    (tmp_path / "edited.diff").write_text(EDITED)
    editor = tmp_path / "editor.py"
    editor.write_text(
        f"import shutil, sys\nshutil.copyfile({str(tmp_path / 'edited.diff')!r}, sys.argv[1])\n"
    )
    return editor


def supervise(make_repo: Callable[..., Path], tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """Drive the run as a person would; returns the repository, the record and what the person
    was shown before each prompt."""
    repo, args = setup(make_repo, tmp_path)
    editor = make_editor(tmp_path)
    child = spawn(args, tmp_path, EDITOR=f"{sys.executable} {editor}")
    screens = []
    try:
        child.expect_exact(PROMPT)
        screens.append(plain(child.before))
        child.sendline("r")
        child.expect_exact("reason (sent to the model): ")
        child.sendline("keep os for now")
        child.expect_exact(PROMPT)
        screens.append(plain(child.before))
        child.sendline("a")
        child.expect_exact(PROMPT)
        screens.append(plain(child.before))
        child.sendline("e")
        child.expect_exact(PROMPT)  # the edited diff, through the guard and the checks again
        screens.append(plain(child.before))
        child.sendline("a")
        child.expect_exact(GO_ON)
        screens.append(plain(child.before))
        child.sendline("n")
        child.expect(pexpect.EOF)
        screens.append(plain(child.before))
    finally:
        child.close(force=True)
    assert child.exitstatus == ExitCode.INTERRUPTED, screens[-1]
    (record,) = (tmp_path / "runs").iterdir()
    return repo, record, screens


def approvals(record: Path) -> list[tuple[Any, ...]]:
    return [
        (e["on"], e.get("item"), e["decision"], e["by"].split(" (")[0], e.get("reason", ""))
        for e in read_events(record)
        if e["kind"] == "approval"
    ]


# The person's decisions in these tests, in one session or over a resume: item a's first
# patch rejected with a reason, its second approved, item b's edited and approved, then stop.
REJECT_APPROVE_EDIT_STOP = [
    ("patch", "a", "reject", "person", "keep os for now"),
    ("patch", "a", "approve", "person", ""),
    ("patch", "b", "edit", "person", ""),
    ("patch", "b", "approve", "person", ""),
    ("block", None, "stop", "person", ""),
]


def test_a_person_rejects_approves_and_edits_patches_at_a_terminal(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo, record, screens = supervise(make_repo, tmp_path)
    first, second, third, edited, block, end = screens
    assert "block 1, item a (attempt 1)" in first and "item a" in first
    assert "-import os" in first and "guard: accepted: pkg/calc.py +0/-1" in first
    assert "pkg/calc.py: 1 changed line (+0/-1)" in first
    assert "check ruff: 3 -> 2 (changed files)" in first
    assert "per-patch verification: not run for this patch" in first  # verify_patches = false
    assert "block 1, item a (attempt 2)" in second and "-import sys" in second
    assert "rejected: rejected by person" in second  # the refusal, as the loop reports it
    assert "block 1, item b (attempt 1)" in third and "-import json" in third
    # The person's edit, shown after the guard and the checks judged it.
    assert "-import json" in edited and "-import os" in edited
    assert "pkg/calc.py: 2 changed lines (+0/-2)" in edited
    assert "block 1 done" in block and "ruff 4 -> 1" in block and "2 kept, 0 reverted" in block
    last = end.strip().splitlines()[-1]
    assert last.startswith("harness: interrupted: stopped by person")
    assert "at the end of block 1" in last and "work so far on branch harness/" in last

    assert approvals(record) == REJECT_APPROVE_EDIT_STOP
    events = read_events(record)
    # The reason went back to the model with the refusal.
    asked = [e for e in events if e["kind"] == "model_request" and e["phase"] == "execute"]
    told = asked[1]["messages"][-1]["content"]
    assert "rejected by person" in told and "keep os for now" in told
    # The edited diff went through the guard: its own verdict, on the person's diff.
    verdicts = [e for e in events if e["kind"] == "verdict"]
    assert len(verdicts) == 4 and all(v["accepted"] for v in verdicts)
    assert (record / verdicts[3]["patch"]).read_text() == EDITED
    summary = json.loads((record / "summary.json").read_text())
    assert summary["interrupted"] and summary["blocks"][0]["status"] == "iteration_limit"
    branch = summary["branch"]
    calc = git(repo, "show", f"{branch}:pkg/calc.py")
    assert not re.search(r"import (os|sys|json)", calc)
    trailers = git(repo, "log", "--format=%(trailers:key=Harness-Approved)", f"main..{branch}")
    assert trailers.count("Harness-Approved: person") == 2
    manifest = json.loads((record / "manifest.json").read_text())
    assert manifest["exit_code"] == ExitCode.INTERRUPTED


def test_a_supervised_run_replays_its_decisions_without_asking(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo, record, _ = supervise(make_repo, tmp_path)
    report = replay(record, repo)  # no terminal here: a replay must not ask
    assert report.reproduced, report.difference
    assert report.tree == report.recorded_tree
    assert report.requests == report.recorded_requests == len(SCRIPT)


def test_a_changed_decision_makes_the_replay_diverge(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo, record, _ = supervise(make_repo, tmp_path)
    lines = (record / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    first = next(e for e in events if e["kind"] == "approval")
    first["decision"], first["reason"] = "approve", ""
    (record / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    report = replay(record, repo)
    assert not report.reproduced
    # Approving item a's first patch lands it: the model's next patch no longer applies as
    # recorded, so its request (or the next decision) differs from the record.
    assert report.difference is not None


def test_supervised_without_a_terminal_stops_at_once(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo, args = setup(make_repo, tmp_path)
    for extra in ([], ["--json"]):
        proc = subprocess.run(
            [sys.executable, *args, *extra], cwd=tmp_path, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == ExitCode.USAGE
        assert proc.stderr.strip().splitlines() == [
            "harness: error: --supervised asks a person at a terminal, and stdin is not a terminal"
        ]
        if extra:
            assert json.loads(proc.stdout)["exit_code"] == ExitCode.USAGE
    assert not (tmp_path / "runs").exists()  # nothing was created: no record, no branch
    assert git(repo, "branch", "--list", "harness/*").strip() == ""


def test_end_of_input_at_the_prompt_stops_the_run_cleanly(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    _repo, args = setup(make_repo, tmp_path)
    child = spawn(args, tmp_path)
    try:
        child.expect_exact(PROMPT)
        child.sendeof()
        child.expect(pexpect.EOF)
        end = plain(child.before)
    finally:
        child.close(force=True)
    assert child.exitstatus == ExitCode.INTERRUPTED, end
    assert "harness: interrupted: stopped by person" in end
    assert "(end of input on the terminal)" in end
    (record,) = (tmp_path / "runs").iterdir()
    assert approvals(record) == [
        ("patch", "a", "quit", "person", "end of input on the terminal"),
    ]
    summary = json.loads((record / "summary.json").read_text())
    assert summary["blocks"][0]["status"] == "stopped" and summary["blocks"][0]["commits"] == []


def reject_then_approve(child: pexpect.spawn) -> None:
    """The person's first two answers in the resume tests: reject the first patch with a
    reason, approve the second."""
    child.expect_exact(PROMPT)
    child.sendline("r")
    child.expect_exact("reason (sent to the model): ")
    child.sendline("keep os for now")
    child.expect_exact(PROMPT)
    child.sendline("a")


def resume_editing_b(record: Path, tmp_path: Path, editor: Path) -> str:
    """`harness resume --supervised` in a terminal: edit the first patch asked about, approve
    the edited one, stop at the block's end; the text before the first question."""
    resumed = [
        "-m", "harness", "resume", str(record), "--script", str(tmp_path / "script.json"),
        "--supervised",
    ]  # fmt: skip
    child = spawn(resumed, tmp_path, EDITOR=f"{sys.executable} {editor}")
    try:
        child.expect_exact(PROMPT)
        first = plain(child.before)
        child.sendline("e")
        child.expect_exact(PROMPT)
        child.sendline("a")
        child.expect_exact(GO_ON)
        child.sendline("n")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == ExitCode.INTERRUPTED
    return first


def test_a_supervised_run_killed_mid_block_resumes_without_asking_again(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    """The person rejected a patch and approved one; the run is killed before the approved
    one's `applied` event. `harness resume --supervised` honours both decisions from the
    record (the same commit, by the same person) and asks only about what comes after."""
    repo, args = setup(make_repo, tmp_path)
    editor = make_editor(tmp_path)
    child = spawn(args, tmp_path, HARNESS_KILL_BEFORE="applied:1")
    try:
        reject_then_approve(child)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.signalstatus == signal.SIGKILL
    (record,) = (tmp_path / "runs").iterdir()
    branch = json.loads((record / "manifest.json").read_text())["branch"]
    landed = git(repo, "rev-list", f"main..{branch}").split()
    assert len(landed) == 1  # committed, its `applied` event never written

    first = resume_editing_b(record, tmp_path, editor)
    # Item a's two patches were decided in the record: the first question is about item b.
    assert "block 1, item b (attempt 1)" in first and "item a (attempt" not in first
    assert approvals(record) == REJECT_APPROVE_EDIT_STOP
    final = git(repo, "rev-list", "--reverse", f"main..{branch}").split()
    assert final[0] == landed[0]  # the killed session's commit, not made twice
    trailers = git(repo, "log", "--format=%(trailers:key=Harness-Approved)", f"main..{branch}")
    assert trailers.count("Harness-Approved: person") == 2
    assert not re.search(r"import (os|sys|json)", git(repo, "show", f"{branch}:pkg/calc.py"))
    responses = [e for e in read_events(record) if e["kind"] == "model_response"]
    assert len(responses) == len(SCRIPT)  # no answer asked for twice


def test_a_supervised_run_resumed_unattended_honours_the_record_and_says_so(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    _repo, args = setup(make_repo, tmp_path)
    child = spawn(args, tmp_path, HARNESS_KILL_BEFORE="applied:1")
    try:
        reject_then_approve(child)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    (record,) = (tmp_path / "runs").iterdir()
    script = [*SCRIPT, plan(), todos()]  # block 2 finds nothing to do
    (tmp_path / "script.json").write_text(json.dumps({"responses": script}))
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "resume", str(record), "--script",
         str(tmp_path / "script.json")],
        cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert "note: a person supervised this run; it goes on unattended" in proc.stderr
    # The person's rejection stands: the model's first patch was not approved by anyone else.
    assert approvals(record)[:3] == [
        ("patch", "a", "reject", "person", "keep os for now"),
        ("patch", "a", "approve", "person", ""),
        ("patch", "b", "approve", "unattended", ""),
    ]


def test_a_person_who_quit_mid_block_is_asked_again_where_they_quit(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    """`q` at a patch stops the run (exit 130, the block judged and cut short). `harness
    resume --supervised` goes on with that block, not after it: the decisions before the quit
    are handed back and the person is asked again about the patch they quit at."""
    repo, args = setup(make_repo, tmp_path)
    editor = make_editor(tmp_path)
    child = spawn(args, tmp_path)
    try:
        reject_then_approve(child)
        child.expect_exact(PROMPT)
        child.sendline("q")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == ExitCode.INTERRUPTED
    (record,) = (tmp_path / "runs").iterdir()

    first = resume_editing_b(record, tmp_path, editor)
    assert "block 1, item b (attempt 1)" in first and "item a (attempt" not in first
    assert approvals(record) == REJECT_APPROVE_EDIT_STOP
    summary = json.loads((record / "summary.json").read_text())
    assert summary["blocks"][0]["status"] == "iteration_limit"
    assert len(summary["blocks"][0]["commits"]) == 2
    branch = summary["branch"]
    assert not re.search(r"import (os|sys|json)", git(repo, "show", f"{branch}:pkg/calc.py"))
