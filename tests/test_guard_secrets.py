"""The secrets layer, and the cheap refusals that run before anything costly.

Times are not asserted here (bench/bench_guard_layers.py measures them); these tests check
that the refusal happens, by which rule and layer, and that what should pass passes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.guard import Verdict, check_patch
from harness.guard.check import MAX_ADDED_CHARS, MAX_LINE_CHARS, MAX_PATCH_CHARS
from harness.policy import GuardConfig

MakeRepo = Callable[..., Path]
CFG = GuardConfig()


def new_file(path: str, lines: list[str]) -> str:
    body = "".join(f"+{ln}\n" for ln in lines)
    return f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{len(lines)} @@\n{body}"


def rules(v: Verdict) -> list[str]:
    return [x.rule for x in v.violations]


def ran(v: Verdict) -> dict[str, bool]:
    return {layer.layer: layer.ran for layer in v.layers}


# --- cheap refusals -------------------------------------------------------------------------


def test_a_new_file_of_100000_lines_is_refused_from_its_line_counts(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    v = check_patch(new_file("big.py", ["x = 1"] * 100_000), repo, CFG)
    assert not v.accepted and rules(v) == ["size"]
    assert "at least 100000 changed lines" in v.violations[0].message
    assert v.layers[0].why.startswith("refused on the diff's line counts")
    assert ran(v) == {"static": True, "secrets": False}
    assert v.files == [] and v.diff == ""  # nothing was applied or diffed


def test_a_10_mb_patch_is_refused_before_it_is_read(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    line = "y = '" + "ab1" * 60 + "'"
    text = "--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n x = 1\n" + f"+{line}\n" * (10_000_000 // 190)
    assert len(text) > MAX_PATCH_CHARS
    v = check_patch(text, repo, CFG)
    assert rules(v) == ["size"] and "characters long" in v.violations[0].message
    assert ran(v) == {"static": True, "secrets": False}


def test_removing_as_many_lines_as_it_adds_does_not_escape(make_repo: MakeRepo) -> None:
    # Net zero lines: the net count cannot refuse it, the raw line cap does.
    old = [f"v{i} = {i}" for i in range(1_000)]
    repo = make_repo({"a.py": "".join(f"{ln}\n" for ln in old)})
    body = "".join(f"-{ln}\n+{ln}  # changed\n" for ln in old)
    v = check_patch(f"--- a/a.py\n+++ b/a.py\n@@ -1,1000 +1,1000 @@\n{body}", repo, CFG)
    assert rules(v) == ["size"] and "1000 '+' and 1000 '-' lines" in v.violations[0].message


def test_a_rewritten_function_that_changes_little_is_still_accepted(make_repo: MakeRepo) -> None:
    # 30 '+' and 30 '-' lines, more than the limit of 20, but only one line really changes:
    # the raw counts must not refuse what the exact count accepts.
    old = [f"v{i} = {i}" for i in range(30)]
    new = [*old[:10], "v10 = 'ten'", *old[11:]]
    repo = make_repo({"a.py": "".join(f"{ln}\n" for ln in old)})
    body = "".join(f"-{ln}\n" for ln in old) + "".join(f"+{ln}\n" for ln in new)
    v = check_patch(f"--- a/a.py\n+++ b/a.py\n@@ -1,30 +1,30 @@\n{body}", repo, CFG)
    assert v.accepted, v.violations
    assert [(f.added, f.removed) for f in v.files] == [(1, 1)]


def test_sections_of_one_file_count_together(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "".join(f"v{i} = {i}\n" for i in range(40))})
    first = "--- a/a.py\n+++ b/a.py\n@@ -1 +1,13 @@\n v0 = 0\n" + "+a = 1\n" * 12
    second = "--- a/a.py\n+++ b/a.py\n@@ -40 +52,13 @@\n v39 = 39\n" + "+b = 2\n" * 12
    v = check_patch(first + second, repo, CFG)
    assert rules(v) == ["size"] and "at least 24 changed lines" in v.violations[0].message


def test_a_line_longer_than_the_cap_is_refused(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    long = "y = '" + "a" * MAX_LINE_CHARS + "'"
    v = check_patch(f"--- a/a.py\n+++ b/a.py\n@@ -1 +1,2 @@\n x = 1\n+{long}\n", repo, CFG)
    assert rules(v) == ["size"] and "adds a line of" in v.violations[0].message


def test_too_many_added_characters_across_files_are_refused(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    line = "y = '" + "a" * (MAX_LINE_CHARS - 10) + "'"
    files = MAX_ADDED_CHARS // (20 * len(line)) + 1
    text = "".join(new_file(f"m{k}.py", [line] * 20) for k in range(files))
    v = check_patch(text, repo, CFG)
    assert rules(v) == ["size"] and "characters, over the guard's" in v.violations[0].message


def test_the_size_rule_stops_the_other_static_rules(make_repo: MakeRepo) -> None:
    # 21 lines each gaining a suppression: only the size refusal is reported, the costlier
    # static rules are skipped and say so.
    old = [f"v{i} = {i}" for i in range(21)]
    repo = make_repo({"a.py": "".join(f"{ln}\n" for ln in old)})
    body = "".join(f"-{ln}\n" for ln in old) + "".join(f"+{ln}  # noqa\n" for ln in old)
    v = check_patch(f"--- a/a.py\n+++ b/a.py\n@@ -1,21 +1,21 @@\n{body}", repo, CFG)
    assert rules(v) == ["size"]
    assert "other static rules did not run" in v.layers[0].why
