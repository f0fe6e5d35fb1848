"""Which of a block's commits to take out so that the rest shows no regression.

Delta debugging (Zeller & Hildebrandt, "Simplifying and Isolating Failure-Inducing Input",
2002) over the commit set: `ddmin` finds a 1-minimal subset of commits that, applied alone on
the block's start, still regresses. Taking out one of its commits (the latest, which completes
it) removes that failure while keeping the rest; the search repeats on what is left until it
passes. This handles a single culprit wherever it sits, several independent culprits, and an
interacting pair (harmless alone, harmful together: one of the two goes, the other stays).

`fails(subset)` answers True (regresses), False (does not), or None (cannot be tried: the
commits do not apply without the ones left out). None counts as "not shown to fail".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
Test = Callable[[list[T]], bool | None]


def _split(items: list[T], n: int) -> list[list[T]]:
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return [chunk for chunk in out if chunk]


def ddmin(items: Sequence[T], fails: Test[T]) -> list[T]:
    """A 1-minimal failing subset of `items` (order kept); `items` must fail as a whole."""
    current = list(items)
    memo: dict[tuple[int, ...], bool | None] = {}
    index = {id(x): i for i, x in enumerate(items)}

    def test(subset: list[T]) -> bool:
        key = tuple(index[id(x)] for x in subset)
        if key not in memo:
            memo[key] = fails(subset) if subset else False
        return memo[key] is True

    n = 2
    while len(current) >= 2:
        chunks = _split(current, n)
        for chunk in chunks:
            if test(chunk):
                current, n = chunk, 2
                break
        else:
            for chunk in chunks:
                rest = [x for x in current if x not in chunk]
                if test(rest):
                    current, n = rest, max(n - 1, 2)
                    break
            else:
                if n >= len(current):
                    break
                n = min(len(current), 2 * n)
    return current


def find_culprits(commits: Sequence[T], fails: Test[T]) -> list[tuple[T, list[T]]]:
    """Commits to take out, in the order found, each with the minimal failing set it completes,
    so that the rest does not fail. [] when the whole set does not fail (nothing of it explains
    a regression)."""
    kept = list(commits)
    culprits: list[tuple[T, list[T]]] = []
    while kept and fails(kept) is True:
        minimal = ddmin(kept, fails)
        culprit = minimal[-1]
        culprits.append((culprit, minimal))
        kept = [c for c in kept if c is not culprit]
    return culprits
