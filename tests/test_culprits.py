"""Delta debugging over commit sets: histories with the culprit first, last, in the middle, a
pair that only fails together, two independent culprits, and none."""

from __future__ import annotations

import pytest

from harness.culprits import ddmin
from harness.culprits import find_culprits as _find


def find_culprits(commits, fails):
    return [c for c, _minimal in _find(commits, fails)]


COMMITS = [f"c{i}" for i in range(9)]


def single(bad: str):
    return lambda subset: bad in subset


@pytest.mark.parametrize("bad", ["c0", "c4", "c8"])
def test_one_culprit_anywhere(bad: str) -> None:
    calls: list[list[str]] = []

    def fails(subset: list[str]) -> bool:
        calls.append(subset)
        return bad in subset

    assert find_culprits(COMMITS, fails) == [bad]
    assert len(calls) <= 12  # logarithmic, not one try per commit


def test_an_interacting_pair_loses_only_the_one_that_completes_it() -> None:
    def fails(subset: list[str]) -> bool:
        return "c2" in subset and "c6" in subset

    assert ddmin(COMMITS, fails) == ["c2", "c6"]
    assert find_culprits(COMMITS, fails) == ["c6"]  # c2 is kept: alone it harms nothing
    assert _find(COMMITS, fails) == [("c6", ["c2", "c6"])]


def test_two_independent_culprits() -> None:
    def fails(subset: list[str]) -> bool:
        return "c1" in subset or "c7" in subset

    assert sorted(find_culprits(COMMITS, fails)) == ["c1", "c7"]


def test_no_culprit() -> None:
    assert find_culprits(COMMITS, lambda subset: False) == []


def test_commits_that_cannot_stand_alone_are_not_blamed_for_it() -> None:
    # c5 only applies on top of c4; the regression is c4's.
    def fails(subset: list[str]) -> bool | None:
        if "c5" in subset and "c4" not in subset:
            return None
        return "c4" in subset

    assert find_culprits(COMMITS, fails) == ["c4"]


def test_ddmin_result_is_one_minimal() -> None:
    def fails(subset: list[str]) -> bool:
        return {"c1", "c3", "c5"} <= set(subset)

    found = ddmin(COMMITS, fails)
    assert found == ["c1", "c3", "c5"]
    for x in found:
        assert not fails([y for y in found if y != x])
