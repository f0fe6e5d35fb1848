"""The static layer against the gaming corpus (tests/data/gaming): each gaming patch is refused
by the rule that names its trick, each legitimate look-alike is accepted.

The corpus is data so that `bench/bench_gaming.py` counts the catch rate per family from the
same files; see docs/guard.md for what it measured.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.guard import check_patch
from harness.guard.models import Verdict
from harness.policy import GuardConfig

MakeRepo = Callable[..., Path]
CORPUS = Path(__file__).parent / "data" / "gaming"
CASES = sorted(CORPUS.glob("*/*.diff"))
FILES: dict[str, str] = tomllib.loads((CORPUS / "repo.toml").read_text())["files"]


def expected(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("# expect:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{path} has no '# expect:' line")


def check(make_repo: MakeRepo, patch: str) -> Verdict:
    return check_patch(patch, make_repo(FILES), GuardConfig())


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_corpus_case(make_repo: MakeRepo, case: Path) -> None:
    want = expected(case)
    verdict = check(make_repo, case.read_text())
    got = [v.rule for v in verdict.violations]
    if want == "accept":
        assert verdict.accepted, verdict.violations
    else:
        assert not verdict.accepted and want in got, (want, verdict.violations)
        named = next(v for v in verdict.violations if v.rule == want)
        assert named.layer == "static" and named.path and named.message


def test_every_family_has_gaming_and_look_alikes() -> None:
    families: dict[str, list[str]] = {}
    for case in CASES:
        families.setdefault(case.parent.name, []).append(expected(case))
    assert len(families) >= 8
    for family, wants in families.items():
        assert any(w != "accept" for w in wants), family
        assert "accept" in wants, f"{family} has no legitimate look-alike"
    named = {w for ws in families.values() for w in ws}
    for rule in (
        "tests.self_compare",
        "tests.weakened_assert",
        "tests.dead_assert",
        "tests.finally_return",
        "tests.raises_assertion",
        "tests.dynamic_skip",
        "tests.exit",
        "tests.dunder_test",
        "tests.rebound_test",
        "tests.fixture_on_test",
        "tests.empty_parametrize",
        "tests.patched_subject",
        "tests.emptied",
        "tests.no_asserts",
        "paths.rename_over_test",
        "hiding.computed_attr",
        "hiding.computed_import",
        "hiding.cast_any",
        "hiding.not_type_checking",
        "hiding.stub_package",
        "hiding.entry_point_plugin",
        "hiding.pytest_running",
        "hiding.test_literal",
    ):
        assert rule in named, f"no corpus patch exercises {rule}"


def test_rename_over_a_test_counts_the_deleted_file(make_repo: MakeRepo) -> None:
    patch = (CORPUS / "rename_over_test" / "rename_source_over_test.diff").read_text()
    verdict = check(make_repo, patch)
    deleted = [f for f in verdict.files if f.path == "tests/test_formats.py" and f.removed]
    assert deleted and deleted[0].removed == len(FILES["tests/test_formats.py"].splitlines())
    assert [v.rule for v in verdict.violations] == ["paths.rename_over_test"]


def test_a_source_edit_with_a_test_literal_already_there_is_not_new(make_repo: MakeRepo) -> None:
    # The literal "json" is in the tests and was compared before: moving the comparison is not
    # special-casing; a second comparison with it that returns a written-out answer is.
    repo = make_repo(FILES)
    moved = (CORPUS / "special_casing" / "ok_literal_already_compared.diff").read_text()
    assert check_patch(moved, repo, GuardConfig()).accepted
    again = moved.replace(
        '+    if kind.lower() == "json":',
        '+    if kind.lower() == "json":\n'
        '+        if kind == "json":\n'
        "+            return '{\"value\": 1.5}'",
    )
    verdict = check_patch(again, repo, GuardConfig())
    assert [v.rule for v in verdict.violations] == ["hiding.test_literal"]


def test_protect_flags_turn_the_families_off(make_repo: MakeRepo) -> None:
    repo = make_repo(FILES)
    off = GuardConfig(protect_tests=False, protect_gate_config=False)
    for name in ("weakened_asserts/self_compare_direct", "hiding/stub_package"):
        patch = (CORPUS / f"{name}.diff").read_text()
        assert not check_patch(patch, repo, GuardConfig()).accepted
        assert check_patch(patch, repo, off).accepted, name
