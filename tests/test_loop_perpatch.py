"""The landing check in `harness run`: one pytest run per source patch feeds both the per-patch
verifier and the guard's behaviour layer (harness/verify.py, harness/guard/behaviour.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.loop import Loop
from harness.providers.scripted import ScriptedProvider
from harness.record import read_events

from .test_loop import FILES, POLICY, REMOVE_OS, options, patch, plan, todos

VERIFIED = POLICY.replace("verify_patches = false", "verify_patches = true")


def test_a_source_patch_costs_one_pytest_run_for_both_verdicts(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(FILES)
    provider = ScriptedProvider.from_responses([plan(), todos("T1"), patch("T1", REMOVE_OS)])
    summary = Loop(options(repo, provider, policy=VERIFIED)).run()
    assert len(summary.blocks[0].commits) == 1
    events = read_events(Path(summary.run_dir))
    [check] = [e for e in events if e["kind"] == "patch_check"]
    [layer] = [e for e in events if e["kind"] == "behaviour"]
    # The removed import runs at import: the test that runs code of the module is selected.
    assert check["ok"] and check["selection"] == "selected"
    assert check["tests_run"] == ["tests/test_calc.py::test_add"]
    # The layer judged that same run, by test id, and started no pytest of its own.
    assert layer["layer"]["ran"] and layer["scope"] == "source" and layer["violations"] == []
    assert "judged on the per-patch check's run" in layer["layer"]["why"]
    assert layer["after"]["passed"] == 1
    assert check["pytest_runs"] + layer["pytest_runs"] == 1
