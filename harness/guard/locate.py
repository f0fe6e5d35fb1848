"""Apply hunks to a file's text in memory, placing each hunk where it unambiguously belongs.

Placement, per hunk: the header's line (shifted by earlier hunks' offsets) if the hunk's old
lines are there; otherwise the one place they occur after the previous hunk; otherwise the
one place they occur ignoring whitespace. No place, or several: the patch is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from harness.errors import PatchError
from harness.guard.parse import HunkSpec


def split_eol(text: str) -> tuple[list[str], list[str]]:
    """Line contents and their endings ('\\r\\n', '\\n' or '' for a last line without one)."""
    contents: list[str] = []
    eols: list[str] = []
    if not text:
        return contents, eols
    parts = text.split("\n")
    if "\r" not in text:
        # The common case, without a per-line loop: files are often thousands of lines.
        if parts[-1]:
            return parts, ["\n"] * (len(parts) - 1) + [""]
        parts.pop()
        return parts, ["\n"] * len(parts)
    for p in parts[:-1]:
        if p.endswith("\r"):
            contents.append(p[:-1])
            eols.append("\r\n")
        else:
            contents.append(p)
            eols.append("\n")
    if parts[-1]:
        contents.append(parts[-1])
        eols.append("")
    return contents, eols


def _norm_ws(s: str) -> str:
    return " ".join(s.split())


def _find_all(hay: Sequence[str], needle: Sequence[str], lo: int) -> list[int]:
    k = len(needle)
    first = needle[0]
    out: list[int] = []
    i = lo
    last = len(hay) - k
    while i <= last:
        try:
            i = hay.index(first, i, last + 1)
        except ValueError:
            break
        if hay[i : i + k] == needle:
            out.append(i)
        i += 1
    return out


def _closest(contents: Sequence[str], old: Sequence[str], lo: int) -> str:
    """Where the hunk's old lines come closest to matching, for the rejection message."""
    k = len(old)
    best, best_at = -1, lo
    norm_old = [_norm_ws(x) for x in old]
    norm = [_norm_ws(x) for x in contents]
    for i in range(lo, max(lo, len(contents) - k) + 1):
        window = norm[i : i + k]
        score = sum(1 for a, b in zip(window, norm_old, strict=False) if a == b)
        if score > best:
            best, best_at = score, i
    if best <= 0:
        return f"no line of it occurs in the file after line {lo}"
    for j, want in enumerate(old):
        at = best_at + j
        have = contents[at] if at < len(contents) else None
        if have is None or _norm_ws(have) != _norm_ws(want):
            shown = "end of file" if have is None else f"{have[:80]!r}"
            return (
                f"closest match starts at line {best_at + 1} ({best}/{k} lines equal), "
                f"but the patch expects {want[:80]!r} where the file has {shown} "
                f"(line {at + 1})"
            )
    return f"closest match starts at line {best_at + 1}"


class Placement:
    """How one hunk was placed: start index, and whether that needed a repair."""

    __slots__ = ("fuzzy", "moved", "start")

    def __init__(self, start: int, moved: bool, fuzzy: bool) -> None:
        self.start = start
        self.moved = moved
        self.fuzzy = fuzzy


def place(contents: Sequence[str], hunk: HunkSpec, path: str, lo: int, offset: int) -> Placement:
    old = hunk.old_lines
    where = f"hunk {hunk.number} of {path} ({hunk.header})"
    if not old:
        if not contents:
            return Placement(0, False, False)
        raise PatchError(
            f"{where} has no context or '-' lines, so where it goes cannot be checked; "
            "include up to 3 unchanged lines around the change"
        )
    expected = None if hunk.old_start is None else hunk.old_start - 1 + offset
    # Where the header says is the answer whenever the lines are there (the usual case), so
    # check that before scanning the whole file for every occurrence.
    if (
        expected is not None
        and lo <= expected <= len(contents) - len(old)
        and contents[expected : expected + len(old)] == old
    ):
        return Placement(expected, False, False)
    key: Callable[[str], str]
    for fuzzy, key in ((False, str), (True, _norm_ws)):
        if fuzzy:
            hay: Sequence[str] = [key(x) for x in contents]
            needle: Sequence[str] = [key(x) for x in old]
        else:
            hay, needle = contents, old
        found = _find_all(hay, needle, lo)
        if expected is not None and expected in found:
            return Placement(expected, False, fuzzy)
        if len(found) == 1:
            return Placement(found[0], expected != found[0], fuzzy)
        if len(found) > 1:
            at = ", ".join(str(f + 1) for f in found[:6])
            stated = "no line number" if hunk.old_start is None else f"line {hunk.old_start}"
            raise PatchError(
                f"{where}: its {len(old)} context and '-' lines occur {len(found)} times "
                f"(at lines {at}) and the header ({stated}) matches none of them; "
                "add more unchanged context lines or fix the line number"
            )
    raise PatchError(
        f"{where}: its context and '-' lines were not found in the file; "
        f"{_closest(contents, old, lo)}. Copy the lines exactly from the current file"
    )


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def reindent(have: Sequence[str], want: Sequence[str], where: str) -> Callable[[str], str]:
    """How to indent a fuzzily placed hunk's added lines, from its matched lines.

    `have` are the file's lines where the hunk matched, `want` the hunk's own old lines. In
    Python indentation is meaning, so an added line keeps the patch's indentation shifted by
    the one shift that turns every matched patch line into the file's line; when no single
    shift does, the patch is refused rather than guessed at.
    """
    shifts: set[tuple[str, str]] = set()
    for file_line, patch_line in zip(have, want, strict=True):
        if not file_line.strip():
            continue
        f, p = _indent(file_line), _indent(patch_line)
        if f.endswith(p):
            shifts.add(("add", f[: len(f) - len(p)]))
        elif p.endswith(f):
            shifts.add(("strip", p[: len(p) - len(f)]))
        else:
            shifts.add(("bad", f"{p!r}->{f!r}"))
    if not shifts or shifts == {("add", "")}:
        return str
    if len(shifts) > 1 or next(iter(shifts))[0] == "bad":
        raise PatchError(
            f"{where}: its lines match the file only ignoring whitespace, and their indentation "
            "differs from the file's by different amounts, so where added lines belong is "
            "unclear; copy the indentation exactly from the current file"
        )
    ((how, prefix),) = shifts

    def shift(line: str) -> str:
        if not line.strip():
            return line
        if how == "add":
            return prefix + line
        if not line.startswith(prefix):
            raise PatchError(
                f"{where}: an added line {line[:60]!r} is indented less than the matched lines "
                "by more than the patch's indentation differs from the file's; copy the "
                "indentation exactly from the current file"
            )
        return line[len(prefix) :]

    return shift


def apply_hunks(text: str, hunks: Sequence[HunkSpec], path: str) -> tuple[str, list[str]]:
    """The new text, and the placements that were repairs. Raises PatchError."""
    contents, eols = split_eol(text)
    crlf = eols.count("\r\n")
    dominant = "\r\n" if crlf * 2 > len(eols) else "\n"
    had_final_eol = not eols or eols[-1] != ""
    final_eol: bool | None = None
    out_c: list[str] = []
    out_e: list[str] = []
    repairs: list[str] = []
    lo = 0
    offset = 0
    for hunk in hunks:
        pl = place(contents, hunk, path, lo, offset)
        if pl.moved:
            repairs.append(
                f"hunk {hunk.number} of {path} moved to line {pl.start + 1} "
                f"(header said {hunk.old_start if hunk.old_start is not None else 'nothing'})"
            )
        shift: Callable[[str], str] = str
        if pl.fuzzy:
            repairs.append(f"hunk {hunk.number} of {path} matched ignoring whitespace")
            n_old = len(hunk.old_lines)
            where = f"hunk {hunk.number} of {path} ({hunk.header})"
            shift = reindent(contents[pl.start : pl.start + n_old], hunk.old_lines, where)
        if hunk.old_start is not None:
            offset = pl.start - (hunk.old_start - 1)
        out_c.extend(contents[lo : pl.start])
        out_e.extend(eols[lo : pl.start])
        i = pl.start
        for tag, line in zip(hunk.tags, hunk.texts, strict=True):
            if tag == " ":
                out_c.append(contents[i])
                out_e.append(eols[i])
                i += 1
            elif tag == "-":
                i += 1
            else:
                out_c.append(shift(line))
                out_e.append(dominant)
        if i == len(contents) and (hunk.old_noeol or hunk.new_noeol):
            final_eol = not hunk.new_noeol
        lo = i
    out_c.extend(contents[lo:])
    out_e.extend(eols[lo:])
    if not out_c:
        return "", repairs
    keep_final = had_final_eol if final_eol is None else final_eol
    for j in range(len(out_e) - 1):
        if out_e[j] == "":
            out_e[j] = dominant
    out_e[-1] = (out_e[-1] or dominant) if keep_final else ""
    return "".join(map(str.__add__, out_c, out_e)), repairs
