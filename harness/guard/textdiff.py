"""Line diffs as git computes them: counts equal to `git diff --numstat`, and the patch text.

git compares whole lines including their line ending, so a changed final newline or a
CRLF/LF switch counts as one removed and one added line; we compare the same way.

git's diff (xdiff, default Myers algorithm) is not always a shortest edit script, so neither
is ours. Like xdiff we (1) trim the common prefix and suffix, (2) set aside lines of the
middle part that cannot or should not be matched: a line with no copy in the other file, and
a line with many copies (a blank line, a lone bracket) in a stretch made mostly of such
lines, which is marked changed even if it could have matched, and (3) take a shortest edit
script of the remaining lines. Step 2 is why git sometimes reports one blank line more on
each side than the minimum. xdiff also cuts costly searches short past roughly 256 edit
steps; that is far beyond any per-file limit the policy sets, and not reproduced here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# Past this many trace cells, rendering falls back to difflib; counts stay exact.
_TRACE_CELLS = 4_000_000
# Line boundaries of str.splitlines other than "\n" (git splits at "\n" only).
_OTHER_BREAKS = ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
# A snake (run of equal lines) longer than this is followed with slice comparisons.
_SHORT_SNAKE = 8
# xdiff's limits for setting lines aside: copies that make a line "common", how far to look
# around it, and how mostly-unmatchable its neighbourhood must be.
_MAX_EQ_LIMIT = 1024
_SCAN_WINDOW = 100
_KEEP_RUN = 4


@dataclass(frozen=True)
class Edit:
    """One run of the edit script: old[a0:a1] becomes new[b0:b1] ("equal" or "change")."""

    tag: str
    a0: int
    a1: int
    b0: int
    b1: int


def split_lines(text: str) -> list[str]:
    """Lines with their endings kept; only '\\n' separates lines, as in git."""
    if not text:
        return []
    if not any(c in text for c in _OTHER_BREAKS):
        # str.splitlines also splits at these; without them it is the same split, in C.
        return text.splitlines(keepends=True)
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _trim(a: Sequence[object], b: Sequence[object]) -> tuple[int, int]:
    """Length of the common prefix and of the common suffix (not overlapping)."""
    n, m = len(a), len(b)
    # Binary searches over slice comparisons: the comparing runs in C, and a small edit in a
    # long file otherwise costs a Python-level step per unchanged line.
    lo, hi = 0, min(n, m)  # a[:lo] == b[:lo]; a[:hi+1] differs (or hi is the end)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    pre = lo
    lo, hi = 0, min(n, m) - pre
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[n - mid : n - lo] == b[m - mid : m - lo]:
            lo = mid
        else:
            hi = mid - 1
    return pre, lo


def _snake(a: Sequence[str], b: Sequence[str], x: int, y: int) -> int:
    """How many lines are equal from a[x], b[y] on (a[x] == b[y] is known)."""
    n, m = len(a), len(b)
    run = 1
    while run < _SHORT_SNAKE and x + run < n and y + run < m and a[x + run] == b[y + run]:
        run += 1
    if run < _SHORT_SNAKE:
        return run
    # Long runs (the unchanged stretch between two distant hunks): gallop, then bisect,
    # comparing slices in C instead of stepping one line at a time.
    limit = min(n - x, m - y)
    lo, hi = run, run
    while hi < limit:
        hi = min(limit, hi * 2)
        if a[x + lo : x + hi] != b[y + lo : y + hi]:
            break
        lo = hi
    # a[x : x+lo] == b[y : y+lo]; the first difference, if any, is before hi.
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[x + lo : x + mid] == b[y + lo : y + mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _myers(a: Sequence[str], b: Sequence[str], keep_trace: bool) -> tuple[int, list[list[int]]]:
    """Shortest edit distance D, and the V arrays per step when `keep_trace`."""
    n, m = len(a), len(b)
    maxd = n + m
    offset = maxd + 1
    v = [0] * (2 * maxd + 3)
    trace: list[list[int]] = []
    for d in range(maxd + 1):
        if keep_trace:
            trace.append(v[:])
        for k in range(-d, d + 1, 2):
            if k == -d or (k != d and v[offset + k - 1] < v[offset + k + 1]):
                x = v[offset + k + 1]
            else:
                x = v[offset + k - 1] + 1
            y = x - k
            if x < n and y < m and a[x] == b[y]:
                step = _snake(a, b, x, y)
                x += step
                y += step
            v[offset + k] = x
            if x >= n and y >= m:
                return d, trace
    return maxd, trace


def _isqrt_ish(n: int) -> int:
    """xdiff's rough square root: a power of two near sqrt(n)."""
    root = 1
    while n > 0:
        n >>= 2
        root <<= 1
    return root


def _common_discarded(dis: list[int], i: int) -> bool:
    """Whether common line i (dis 2) sits in a stretch of mostly unmatchable lines (dis 0).

    dis: 0 = no copy in the other file, 1 = a few copies, 2 = many copies.
    """
    lo = max(0, i - _SCAN_WINDOW)
    hi = min(len(dis) - 1, i + _SCAN_WINDOW)
    unmatched = common = 0
    for j in range(i - 1, lo - 1, -1):
        if dis[j] == 1:
            break
        if dis[j]:
            common += 1
        else:
            unmatched += 1
    if not unmatched:
        return False
    after = 0
    for j in range(i + 1, hi + 1):
        if dis[j] == 1:
            break
        if dis[j]:
            common += 1
        else:
            after += 1
    if not after:
        return False
    # Common lines (this one included) must be under a quarter of the whole stretch.
    common += 2
    return common * _KEEP_RUN < common + unmatched + after


def _kept(mid: Sequence[str], whole: Sequence[str], other: Counter[str]) -> list[int]:
    """Indices of the middle-part lines git diffs; every other line counts as changed."""
    limit = min(_isqrt_ish(len(whole)), _MAX_EQ_LIMIT)
    dis = [0 if (c := other[x]) == 0 else 2 if c >= limit else 1 for x in mid]
    return [i for i, d in enumerate(dis) if d == 1 or (d == 2 and not _common_discarded(dis, i))]


def _reduce(
    old: Sequence[str], new: Sequence[str], ma: Sequence[str], mb: Sequence[str]
) -> tuple[list[int], list[int]]:
    """The kept indices of both middle parts (step 2 of the module docstring)."""
    # Copies are counted over the whole files, as xdiff does.
    return _kept(ma, old, Counter(new)), _kept(mb, new, Counter(old))


def count_changes(old: Sequence[str], new: Sequence[str]) -> tuple[int, int]:
    """(added, removed) as `git diff --numstat` prints them."""
    # Trimming first keeps the work proportional to the changed region, not the file.
    pre, suf = _trim(old, new)
    a, b = old[pre : len(old) - suf], new[pre : len(new) - suf]
    if not a or not b:
        return len(b), len(a)
    ka, kb = _reduce(old, new, a, b)
    ra, rb = [a[i] for i in ka], [b[j] for j in kb]
    d = _myers(ra, rb, keep_trace=False)[0] if ra and rb else len(ra) + len(rb)
    # D = added + removed and added - removed = len(rb) - len(ra); set-aside lines add on.
    added = (d + len(rb) - len(ra)) // 2
    return added + len(b) - len(rb), d - added + len(a) - len(ra)


def _middle_runs(
    old: Sequence[str], new: Sequence[str], ma: Sequence[str], mb: Sequence[str]
) -> list[tuple[int, int, int]]:
    """Matched runs (i, j, length), ma[i:i+length] == mb[j:j+length], as git pairs them."""
    ka, kb = _reduce(old, new, ma, mb)
    ra, rb = [ma[i] for i in ka], [mb[j] for j in kb]
    if not ra or not rb:
        return []
    size = len(ra) + len(rb)
    # D <= size, so a small middle part can be traced in one pass; otherwise find D
    # first to know whether tracing fits.
    d = size if size * size <= _TRACE_CELLS else _myers(ra, rb, keep_trace=False)[0]
    if d * size <= _TRACE_CELLS:
        runs = _runs_from_trace(ra, rb, _myers(ra, rb, keep_trace=True)[1])
    else:
        runs = _runs_greedy(ra, rb)
    if len(ra) == len(ma) and len(rb) == len(mb):
        return runs
    # Back to middle-part indices; a set-aside line between two kept ones splits a run.
    out: list[tuple[int, int, int]] = []
    for i, j, length in runs:
        last = length - 1
        if ka[i + last] - ka[i] == last and kb[j + last] - kb[j] == last:
            out.append((ka[i], kb[j], length))
            continue
        start = 0
        for t in range(1, length + 1):
            if t == length or ka[i + t] != ka[i + t - 1] + 1 or kb[j + t] != kb[j + t - 1] + 1:
                out.append((ka[i + start], kb[j + start], t - start))
                start = t
    return out


def edits(old: Sequence[str], new: Sequence[str]) -> list[Edit]:
    """git's edit script (see the module docstring) as runs of equal / changed lines."""
    pre, suf = _trim(old, new)
    ma, mb = old[pre : len(old) - suf], new[pre : len(new) - suf]
    a, b = old, new
    runs = _middle_runs(old, new, ma, mb) if ma and mb else []
    out: list[Edit] = []
    ia, ib = 0, 0
    if pre:
        out.append(Edit("equal", 0, pre, 0, pre))
    ia = ib = pre
    for i, j, length in runs:
        i, j = i + pre, j + pre
        if i > ia or j > ib:
            out.append(Edit("change", ia, i, ib, j))
        if out and out[-1].tag == "equal" and out[-1].a1 == i:
            last = out.pop()
            out.append(Edit("equal", last.a0, i + length, last.b0, j + length))
        else:
            out.append(Edit("equal", i, i + length, j, j + length))
        ia, ib = i + length, j + length
    ea, eb = len(a) - suf, len(b) - suf
    if ea > ia or eb > ib:
        out.append(Edit("change", ia, ea, ib, eb))
    if suf:
        if out and out[-1].tag == "equal" and out[-1].a1 == ea:
            last = out.pop()
            out.append(Edit("equal", last.a0, len(a), last.b0, len(b)))
        else:
            out.append(Edit("equal", ea, len(a), eb, len(b)))
    return out


def _runs_from_trace(
    a: Sequence[str], b: Sequence[str], trace: list[list[int]]
) -> list[tuple[int, int, int]]:
    """The matched runs (i, j, length) of the path Myers found, in order."""
    n, m = len(a), len(b)
    offset = n + m + 1
    x, y = n, m
    runs: list[tuple[int, int, int]] = []
    for d in range(len(trace) - 1, -1, -1):
        v = trace[d]
        k = x - y
        down = k == -d or (k != d and v[offset + k - 1] < v[offset + k + 1])
        prev_k = k + 1 if down else k - 1
        prev_x = v[offset + prev_k] if d > 0 else 0
        prev_y = prev_x - prev_k if d > 0 else 0
        # The snake of step d runs diagonally back to where its first move landed.
        length = min(x - prev_x, y - prev_y)
        if length > 0:
            x -= length
            y -= length
            runs.append((x, y, length))
        if d > 0:
            x, y = prev_x, prev_y
    runs.reverse()
    return runs


def _runs_greedy(a: Sequence[str], b: Sequence[str]) -> list[tuple[int, int, int]]:
    """Fallback for huge edits (rendering only): difflib's matching blocks."""
    import difflib

    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return [(blk.a, blk.b, blk.size) for blk in sm.get_matching_blocks() if blk.size]


def _groups(script: list[Edit], context: int) -> Iterator[list[Edit]]:
    """Group changes that are within 2*context lines of each other, like `diff -U`."""
    changes = [e for e in script if e.tag == "change"]
    if not changes:
        return
    group: list[Edit] = [changes[0]]
    for e in changes[1:]:
        if e.a0 - group[-1].a1 <= 2 * context:
            group.append(e)
        else:
            yield group
            group = [e]
    yield group


def _range(start: int, length: int) -> str:
    if length == 1:
        return str(start)
    return f"{start},{length}"


def render_hunks(
    old: Sequence[str], new: Sequence[str], context: int = 3, script: list[Edit] | None = None
) -> list[str]:
    """Unified-diff hunk lines (each ending in '\\n') for old -> new."""
    out: list[str] = []
    for group in _groups(edits(old, new) if script is None else script, context):
        a0 = max(0, group[0].a0 - context)
        b0 = max(0, group[0].b0 - context)
        a1 = min(len(old), group[-1].a1 + context)
        b1 = min(len(new), group[-1].b1 + context)
        sa = a0 + 1 if a1 > a0 else a0
        sb = b0 + 1 if b1 > b0 else b0
        out.append(f"@@ -{_range(sa, a1 - a0)} +{_range(sb, b1 - b0)} @@\n")
        ia = a0
        for e in group:
            for line in old[ia : e.a0]:
                out.append(_body(" ", line))
            for line in old[e.a0 : e.a1]:
                out.append(_body("-", line))
            for line in new[e.b0 : e.b1]:
                out.append(_body("+", line))
            ia = e.a1
        for line in old[ia:a1]:
            out.append(_body(" ", line))
    return out


def _body(tag: str, line: str) -> str:
    if line.endswith("\n"):
        return tag + line
    return tag + line + "\n\\ No newline at end of file\n"
