"""`harness replay`: the examples under runs/examples/ (a builtin and a scripted run, recorded
on the repository EXAMPLE_FILES makes with the pinned identity and dates of conftest.py, so
its base commit is the same everywhere) replay on a fresh clone in another directory; a changed
recorded answer is named at its step; a killed run and an old record are unusable input.

Regenerate the examples: HARNESS_WRITE_EXAMPLES=1 pytest tests/test_replay.py -k write
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.loop import Loop
from harness.providers.base import Provider
from harness.providers.builtin import BuiltinProvider
from harness.providers.scripted import ScriptedProvider
from harness.record import read_events
from harness.replay import replay
from tests.conftest import git, other_gates_off
from tests.test_loop import FILES, NOQA, REMOVE_OS, options, patch, plan, todos
from tests.test_record import POLICY

EXAMPLES = Path(__file__).resolve().parent.parent / "runs" / "examples"
EXAMPLE_FILES = {
    "pkg/__init__.py": "",
    "pkg/calc.py": "import os\nimport sys\n\n\ndef add(a, b):\n    return a + b\n",
    "pkg/more.py": "import re\n"
    + "".join(
        f"\n\ndef f{i}(x):\n    if x == None:\n        return {i}\n    return x\n"
        for i in range(12)
    ),
    "docs/audits/CLAUDE_PROGRESS.md": "# Progress\n",
}
SCRIPT = [
    plan(),
    todos("a"),
    {"phase": "execute", "tool": "propose_patch", "input": {"item_id": "a", "diff": NOQA}},
    {"phase": "execute", "tool": "propose_patch", "input": {"item_id": "a", "diff": REMOVE_OS}},
    plan(),
    todos("b"),
    {
        "phase": "execute",
        "tool": "propose_patch",
        "input": {"item_id": "b", "action": "skip", "explanation": "left for a person"},
    },
]


def providers() -> dict[str, Callable[[], Provider]]:
    return {
        "builtin": BuiltinProvider,
        "scripted": lambda: ScriptedProvider.from_responses(SCRIPT),
    }


def example(name: str) -> Path:
    found = sorted((EXAMPLES / name).iterdir())
    assert len(found) == 1, f"one recorded run under {EXAMPLES / name}"
    return found[0]


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip


@pytest.mark.skipif(not os.environ.get("HARNESS_WRITE_EXAMPLES"), reason="writes runs/examples")
@pytest.mark.parametrize("name", ["builtin", "scripted"])
def test_write_examples(name: str, make_repo: Callable[..., Path], tmp_path: Path) -> None:
    repo = make_repo(EXAMPLE_FILES)
    summary = Loop(options(repo, providers()[name](), policy=POLICY, runs_dir=tmp_path)).run()
    shutil.rmtree(EXAMPLES / name, ignore_errors=True)
    (EXAMPLES / name).mkdir(parents=True)
    shutil.copytree(summary.run_dir, EXAMPLES / name / summary.run_id)


@pytest.mark.parametrize("name", ["builtin", "scripted"])
def test_an_example_reproduces_from_a_copy_on_a_fresh_clone_elsewhere(
    name: str, make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    recorded = example(name)
    origin = make_repo(EXAMPLE_FILES, name="origin")
    base = json.loads((recorded / "manifest.json").read_text())["base_commit"]
    assert git(origin, "rev-parse", "HEAD").strip() == base  # pinned identity and dates
    clone = tmp_path / "elsewhere" / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    copied = shutil.copytree(recorded, tmp_path / "copied" / recorded.name)

    proc = harness("replay", str(copied), "--repo", str(clone), "--json", cwd=tmp_path)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report
    assert report["reproduced"] and report["tree"] == report["recorded_tree"]
    assert report["requests"] == report["recorded_requests"] > 0
    # The example was recorded in another environment (its tools' env digest differs from this
    # venv's), so gates are measured again rather than reused, and still agree with the record.
    assert report["gates_run"] + report["gates_reused"] > 0
    assert report["branch"] is None  # reproduced: the replay's branch is gone
    assert git(clone, "branch", "--list", "harness/*").strip() == ""


def test_a_run_recorded_in_this_environment_is_replayed_without_measuring_a_gate(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    """Nothing is measured again when tree, setup and tool versions match the record."""
    repo = make_repo(EXAMPLE_FILES)
    summary = Loop(options(repo, providers()["scripted"](), policy=POLICY, runs_dir=tmp_path)).run()
    report = replay(Path(summary.run_dir), repo)
    assert report.reproduced, report.difference
    assert report.gates_run == 0 and report.gates_reused > 0


# The project's interpreter is a script that logs each start, then runs ours: every pytest run
# (gates, the per-patch check, the behaviour and mutation layers) goes through it.
LOGGING_PYTHON = """#!/bin/sh
printf '%s\\n' "$*" >> "{log}"
exec "{python}" "$@"
"""
TESTED_POLICY = (
    """
[gates]
python = "{python}"
"""
    + other_gates_off("ruff", "pytest")
    + """
[gates.ruff]
paths = ["pkg"]
args = ["--select", "F,E"]
[gates.pytest]
cov = ["pkg"]
args = ["-q"]
[guard]
forbidden = ["docs/audits/CLAUDE_PROGRESS.md"]
[guard.mutation]
source_patches = true
[loop]
max_iterations = 1
verify_patches = true
"""
)
TESTED_SCRIPT = [plan(), todos("a"), patch("a", NOQA), patch("a", REMOVE_OS)]


def pytest_runs(log: Path) -> int:
    if not log.is_file():
        return 0
    return sum(" -m pytest " in f" {line} " for line in log.read_text().splitlines())


@pytest.fixture
def tested_run(make_repo: Callable[..., Path], tmp_path: Path) -> tuple[Path, Path, Path]:
    """A run with tests: the pytest gate, the per-patch check, the behaviour and mutation
    layers; returns (repository, record, the interpreter's log)."""
    log = tmp_path / "python.log"
    python = tmp_path / "python"
    python.write_text(LOGGING_PYTHON.format(log=log, python=sys.executable))
    python.chmod(0o755)
    repo = make_repo(FILES)
    opts = options(
        repo,
        ScriptedProvider.from_responses(TESTED_SCRIPT),
        policy=TESTED_POLICY.format(python=python),
        runs_dir=tmp_path / "runs",
    )
    summary = Loop(opts).run()
    assert summary.blocks[0].commits, "the patch landed"
    layers = {e["layer"] for e in read_events(Path(summary.run_dir)) if e["kind"] == "measured"}
    assert {"quick", "behaviour+verify", "mutation"} <= layers
    assert pytest_runs(log) > 0
    log.unlink()
    return repo, Path(summary.run_dir), log


def test_a_replay_takes_every_measurement_from_the_record_and_runs_no_tests(
    tested_run: tuple[Path, Path, Path],
) -> None:
    repo, run_dir, log = tested_run
    report = replay(run_dir, repo)
    assert report.reproduced, report.difference
    assert report.gates_run == 0 and report.gates_reused > 0
    assert report.measures_run == 0 and report.measures_reused > 0
    assert report.verifiers_started == 0  # no coverage map recorded, no mypy daemon
    assert pytest_runs(log) == 0  # not one pytest process: gates, checks, layers


def test_regate_runs_every_gate_and_layer_and_still_reproduces(
    tested_run: tuple[Path, Path, Path],
) -> None:
    repo, run_dir, log = tested_run
    report = replay(run_dir, repo, regate=True)
    assert report.reproduced, report.difference
    assert report.gates_reused == report.measures_reused == 0
    assert report.gates_run > 0 and report.measures_run > 0 and report.verifiers_started == 1
    assert pytest_runs(log) > 0


def test_a_changed_configuration_measures_again(
    tested_run: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    repo, recorded, log = tested_run
    run_dir = shutil.copytree(recorded, tmp_path / "changed")
    policy = json.loads((run_dir / "policy.json").read_text())
    policy["gates"]["pytest"]["timeout"] += 1  # no prompt shows it; every key holds it
    (run_dir / "policy.json").write_text(json.dumps(policy))
    report = replay(run_dir, repo)
    assert report.reproduced, report.difference
    assert report.gates_reused == report.measures_reused == 0
    assert report.gates_run > 0 and report.measures_run > 0
    # The per-patch check ran for real: its verifier started late, as the run's had started.
    assert report.verifiers_started == 1
    assert pytest_runs(log) > 0


def test_regate_measures_every_gate_and_still_reproduces(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo(EXAMPLE_FILES)
    report = replay(example("scripted"), repo, regate=True)
    assert report.reproduced, report.difference
    assert report.gates_reused == 0 and report.gates_run > 0


def test_a_changed_answer_is_named_at_its_step_with_a_diff(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo(EXAMPLE_FILES)
    run_dir = shutil.copytree(example("scripted"), tmp_path / "changed")
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    # Item a's first patch (the noqa, refused) becomes the good one: it lands at once.
    first = next(e for e in events if e["kind"] == "model_response" and e["phase"] == "execute")
    first["input"]["diff"] = REMOVE_OS
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))

    proc = harness("replay", str(run_dir), "--repo", str(repo), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "diverged at" in proc.stdout
    report = replay(run_dir, repo)
    assert not report.reproduced
    # The run sent item a's retry with the guard's reasons; the replay, whose patch landed at
    # once, goes on to the next round's plan: named, with the answer that led there.
    assert report.difference is not None
    assert "request #4 differs" in report.difference
    assert "after the answer to request #3 (block 1, item a, phase execute)" in report.difference
    assert report.where == "block 1, phase plan"
    assert report.diff is not None and "-phase: execute\n" in report.diff
    assert "+phase: plan\n" in report.diff
    assert report.branch is not None and report.branch.startswith("harness/replay/")


def test_a_changed_question_stops_at_the_first_mismatch_with_both_requests(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo(EXAMPLE_FILES)
    run_dir = shutil.copytree(example("scripted"), tmp_path / "changed")
    events = read_events(run_dir, resolve=False)
    todo = next(e for e in events if e["kind"] == "model_response" and e["phase"] == "todo")
    todo["input"]["items"][0]["title"] = "item a, retitled"
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))

    report = replay(run_dir, repo)
    assert not report.reproduced
    assert report.where == "block 1, item a, phase execute"
    assert report.difference is not None and "request #3 differs" in report.difference
    assert "after the answer to request #2 (block 1, phase todo)" in report.difference
    assert report.diff is not None
    assert "-Title: item a\n+Title: item a, retitled" in report.diff


def killed(run_dir: Path) -> None:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["finished"] = manifest["exit_code"] = None
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    events = (run_dir / "events.jsonl").read_text().splitlines()
    (run_dir / "events.jsonl").write_text("\n".join(events[: len(events) // 2]) + "\n")


def test_a_killed_run_is_unusable_and_no_branch_is_made(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo(EXAMPLE_FILES)
    run_dir = shutil.copytree(example("scripted"), tmp_path / "killed")
    killed(run_dir)
    proc = harness("replay", str(run_dir), "--repo", str(repo), "--json", cwd=tmp_path)
    assert proc.returncode == 2
    message = json.loads(proc.stdout)["error"]
    assert "did not finish" in message and "no block outcomes" in message
    assert "no response left" not in proc.stderr
    assert git(repo, "branch", "--list", "harness/*").strip() == ""


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("old", "record format 1"),
        ("no-base", "has no commit"),
        ("not-a-record", "not a run record"),
    ],
)
def test_unusable_input_exits_2(
    change: str, said: str, make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo(EXAMPLE_FILES)
    run_dir = shutil.copytree(example("scripted"), tmp_path / "record")
    manifest: dict[str, Any] = json.loads((run_dir / "manifest.json").read_text())
    if change == "old":
        del manifest["record_format"]
    elif change == "no-base":
        manifest["base_commit"] = "0" * 40
    else:
        (run_dir / "manifest.json").unlink()
    if change != "not-a-record":
        (run_dir / "manifest.json").write_text(json.dumps(manifest))
    proc = harness("replay", str(run_dir), "--repo", str(repo), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert said in proc.stderr


def test_the_scratch_record_holds_only_what_the_final_check_compares(tmp_path: Path) -> None:
    from harness.replay import ScratchRecorder

    rec = ScratchRecorder(tmp_path, "scratch")
    rec.event("verdict", item="R1", accepted=True, diff="+key = 'sk-ant-api03-" + "x" * 90 + "'\n")
    rec.event("behaviour", item="R1", ok=True)
    rec.event("block_outcome", number=1)
    rec.write_json("manifest.json", {"run_id": "scratch"})
    rec.event("run_finished", tree="abc")
    rec.close()
    events = read_events(rec.dir, resolve=False)
    assert [e["kind"] for e in events] == ["verdict", "block_outcome", "run_finished"]
    assert "x" * 90 not in events[0]["diff"]  # redacted as the run's record was
    assert not (rec.dir / "manifest.json").exists()
