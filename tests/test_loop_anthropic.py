"""`harness run` through the real CLI with the real Anthropic SDK, against a fake Messages API
on 127.0.0.1: tool use drives PLAN -> TODO -> EXECUTE, a 529 is retried, usage and cost are
recorded, and the key never reaches the record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import git
from tests.fakeapi import fake_api, message_body, tool_use
from tests.test_loop import FILES, POLICY, STEPS

KEY = "sk-ant-test-0123456789abcdefghij"
REMOVE_BOTH = "--- a/pkg/calc.py\n+++ b/pkg/calc.py\n@@ -1,3 +1 @@\n-import os\n-import sys\n \n"


@pytest.mark.slow
def test_run_with_the_anthropic_provider(
    make_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(FILES)
    (tmp_path / "steps.md").write_text(STEPS)
    prices = '\n[prices."claude-sonnet-5"]\ninput = 2.0\noutput = 10.0\n'
    (tmp_path / "policy.toml").write_text(POLICY + prices)
    item = {"id": "T1", "title": "drop unused import", "files": ["pkg/calc.py"], "gate": "ruff"}
    with fake_api() as api:
        api.push(
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
            headers={"retry-after": "0"},
        )
        api.push(200, message_body([tool_use("submit_plan", {"summary": "remove imports"})]))
        api.push(200, message_body([tool_use("submit_todos", {"items": [item]})]))
        api.push(
            200,
            message_body(
                [tool_use("propose_patch", {"item_id": "T1", "diff": REMOVE_BOTH})],
                input_tokens=1000,
                output_tokens=200,
                cache_read=500,
            ),
        )
        # The reviewer's second opinion on the accepted patch ('auto' = flag with this provider).
        api.push(
            200,
            message_body(
                [tool_use("submit_review", {"games_gate": False, "how": ""})],
                input_tokens=300,
                output_tokens=20,
            ),
        )
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.delenv(var, raising=False)
        env = {
            **os.environ,
            "ANTHROPIC_API_KEY": KEY,
            "ANTHROPIC_BASE_URL": api.base_url,
            "HARNESS_MODEL": "claude-sonnet-5",
        }
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness",
                "run",
                str(tmp_path / "steps.md"),
                "--repo",
                str(repo),
                "--policy",
                str(tmp_path / "policy.toml"),
                "--runs-dir",
                str(tmp_path / "runs"),
                "--json",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
        requests = [r.body for r in api.requests]
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert (summary["provider"], summary["model"]) == ("anthropic", "claude-sonnet-5")
    assert summary["blocks"][0]["status"] == "goal_met"
    assert "import os" not in git(repo, "show", f"{summary['branch']}:pkg/calc.py")
    # 529 retried: the first two requests are the same plan request.
    assert len(requests) == 5 and requests[0] == requests[1]
    assert [r["tool_choice"] for r in requests[1:3]] == [
        {"type": "tool", "name": "submit_plan"},
        {"type": "tool", "name": "submit_todos"},
    ]
    assert {t["name"] for t in requests[3]["tools"]} == {"propose_patch", "read_files"}
    assert "cache_control" in json.dumps(requests[1]["system"])
    # The review: its own tool, its own system prompt, the patch in the message, and its usage
    # counted in the run's cost like any other call.
    assert requests[4]["tool_choice"] == {"type": "tool", "name": "submit_review"}
    assert "You review patches" in json.dumps(requests[4]["system"])
    assert "-import os" in json.dumps(requests[4]["messages"])
    # input 100+100+1000+300 at $2/M, 500 cache reads at a tenth of that, output 20+20+200+20
    # at $10/M: the review's 300 in and 20 out are in it.
    assert summary["cost_usd"] == pytest.approx(1500 * 2e-6 + 500 * 0.2e-6 + 260 * 1e-5)
    run_dir = Path(summary["run_dir"])
    responses = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    usage = [e["usage"] for e in responses if e["kind"] == "model_response"]
    assert usage[-2]["input_tokens"] == 1000 and usage[-2]["cache_read_input_tokens"] == 500
    reviews = [e for e in responses if e["kind"] == "review"]
    assert [(r["mode"], r["games_gate"]) for r in reviews] == [("flag", False)]
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path
