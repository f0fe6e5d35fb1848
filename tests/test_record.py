"""The run record: request bodies and gate results stored once by content hash, compressed when
the run ends, put back in place by read_events; old records (bodies inline) still read."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from harness.loop import Loop
from harness.providers.base import Message, ModelRequest
from harness.providers.builtin import BuiltinProvider
from harness.record import BODIES, PACKED, Recorder, chunks, read_events, recorded_responses
from tests.conftest import other_gates_off
from tests.test_loop import STEPS, options

POLICY = (
    other_gates_off("ruff")
    + """
[gates.ruff]
paths = ["pkg"]
args = ["--select", "F,E"]
[guard]
forbidden = ["docs/audits/CLAUDE_PROGRESS.md"]
[loop]
max_iterations = 3
verify_patches = false
"""
)

BODY = "".join(
    f"\n\ndef f{i}(x):\n    if x == None:\n        return {i}\n    return x + {i}\n"
    for i in range(40)
)
FILES = {
    "pkg/__init__.py": "",
    "pkg/one.py": "import os\nimport sys\nimport json\n" + BODY,
    "pkg/two.py": "import re\n" + BODY,
    "docs/audits/CLAUDE_PROGRESS.md": "# Progress\n",
}

# A builtin run of FILES (12 requests, 10 commits) wrote 180 kB when each request held its
# messages inline and each gate result was written in full, 81 kB now (both measured): bodies
# written inline again would break this bound.
RECORD_BOUND = 100_000


def record_size(run_dir: Path) -> int:
    return sum(f.stat().st_size for f in run_dir.rglob("*") if f.is_file())


def test_chunks_join_back_and_an_edit_changes_only_its_own_chunk() -> None:
    text = "".join(f"line {i}\n" for i in range(400))
    for sample in (text, "", "x", "a\n\n", "\n\n\nb", text.rstrip("\n")):
        assert "".join(chunks(sample)) == sample
    before = chunks(text)
    edited = chunks(text.replace("line 200\n", "line 200 changed\n"))
    assert len(before) > 10
    changed = set(edited) - set(before)
    assert len(changed) <= 2  # the chunk holding the edit (and one more if it moved an edge)


def test_a_typical_run_records_small_and_reads_back_whole(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo(FILES)
    summary = Loop(
        options(repo, BuiltinProvider(), steps=STEPS, policy=POLICY, runs_dir=tmp_path / "runs")
    ).run()
    run_dir = Path(summary.run_dir)
    assert len(summary.blocks[0].commits) >= 3
    assert (run_dir / PACKED).is_file() and not (run_dir / BODIES).exists()
    size = record_size(run_dir)
    assert size < RECORD_BOUND, f"record of a typical run is {size} bytes"

    raw = read_events(run_dir, resolve=False)
    events = read_events(run_dir)
    requests = [e for e in events if e["kind"] == "model_request"]
    assert requests and all(isinstance(m, str) for e in raw for m in e.get("messages", []))
    # Whole again: the files the model was shown, the system prompt, the tools.
    first = requests[0]
    assert first["messages"][0]["role"] == "user" and "submit_plan" in json.dumps(first["tools"])
    assert "guard" in first["system"].lower() or first["system"]
    assert any("pkg/one.py" in m["content"] for e in requests for m in e["messages"])
    gates = [e for e in events if e["kind"] == "gates"]
    assert gates and all(isinstance(r, dict) for e in gates for r in e["results"].values())
    assert gates[0]["results"]["ruff"]["findings"]


def test_a_killed_run_reads_back_from_uncompressed_bodies(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, "run-1")
    request = ModelRequest(
        phase="plan",
        system="system\n" * 40,
        messages=[Message(role="user", content="look\n" * 100)],
        tools=[],
    )
    rec.model_request(request)
    rec.model_request(request)  # the same bodies again: stored once
    rec._events.close()  # killed: close() never compressed the bodies
    rec._bodies.close()
    stored = (tmp_path / "run-1" / BODIES).read_text().splitlines()
    events = read_events(tmp_path / "run-1")
    assert [e["messages"][0]["content"] for e in events] == ["look\n" * 100] * 2
    assert events[0]["system"] == "system\n" * 40
    assert len(stored) == len({json.loads(s)["sha"] for s in stored})


def test_an_old_record_with_inline_requests_still_reads(tmp_path: Path) -> None:
    old = tmp_path / "old-run"
    old.mkdir()
    lines = [
        {"seq": 1, "ts": "t", "kind": "model_request", "phase": "plan",
         "messages": [{"role": "user", "content": "hello"}]},
        {"seq": 2, "ts": "t", "kind": "model_response", "phase": "plan", "tool": "submit_plan",
         "input": {"summary": "s"}, "text": ""},
        {"seq": 3, "ts": "t", "kind": "gates", "label": "x", "tree": "t",
         "results": {"ruff": {"gate": "ruff", "status": "passed"}}},
    ]  # fmt: skip
    (old / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    events = read_events(old)
    assert events[0]["messages"] == [{"role": "user", "content": "hello"}]
    assert events[2]["results"]["ruff"]["status"] == "passed"
    assert recorded_responses(old) == [
        {"phase": "plan", "tool": "submit_plan", "input": {"summary": "s"}, "text": ""}
    ]
