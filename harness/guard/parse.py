"""From model text to parsed file patches: extract, repair the headers, parse with unidiff.

Repairs here are the purely textual ones (CRLF, missing final newline, hunk header counts,
headers with no numbers); placing hunks in the file is `locate`'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet

from harness.errors import PatchError

_FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)\s*$")
_HUNK = re.compile(r"^@@+ *-(\d+)(?:,(\d+))? +\+(\d+)(?:,(\d+))? *@@+ ?(.*)$")
_LOOSE_HUNK = re.compile(r"^@@+(.*?)(?:@@+ ?(.*))?$")
_GIT_EXT = re.compile(
    r"^(old mode|new mode|deleted file mode|new file mode|similarity index|dissimilarity index"
    r"|rename from|rename to|copy from|copy to|index) "
)
_DIFF_START = re.compile(r"^(diff --git |--- \S|\+\+\+ \S|@@)")
_BODY = (" ", "+", "-", "\\")
DEV_NULL = "/dev/null"


@dataclass
class HunkSpec:
    number: int  # 1-based within its file, for messages
    header: str
    old_start: int | None  # 1-based line the header claims; None when the header had none
    tags: list[str] = field(default_factory=list)  # " ", "-", "+" per body line
    texts: list[str] = field(default_factory=list)  # body line contents, no line ending
    old_noeol: bool | None = None  # "\ No newline" seen after an old-side line
    new_noeol: bool | None = None

    @property
    def old_lines(self) -> list[str]:
        return [t for g, t in zip(self.tags, self.texts, strict=True) if g != "+"]

    @property
    def new_lines(self) -> list[str]:
        return [t for g, t in zip(self.tags, self.texts, strict=True) if g != "-"]


@dataclass
class FilePatch:
    old_path: str | None  # None: the file is created
    new_path: str | None  # None: the file is deleted
    hunks: list[HunkSpec]
    binary: bool = False
    old_mode: str | None = None
    new_mode: str | None = None
    rename: bool = False
    copy: bool = False

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or "?"


@dataclass
class Parsed:
    files: list[FilePatch]
    repairs: list[str]


@dataclass
class RawSection:
    """One file section as written: its paths and its '+' and '-' body lines, before parsing."""

    old_path: str | None
    new_path: str | None
    added: int = 0
    removed: int = 0
    added_chars: int = 0  # characters of its '+' lines
    longest: int = 0  # characters in its longest '+' line


@dataclass
class Prepared:
    """A diff extracted and its hunk headers repaired, not yet parsed (parsing costs more)."""

    text: str
    positions: list[bool]
    repairs: list[str]
    sections: list[RawSection]


def extract_diff(text: str) -> str:
    """The diff inside model text: fenced ```diff blocks, or raw diff text after any prose."""
    text = text.replace("\r\n", "\n") if "\r\n" in text else text
    lines = text.split("\n")
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None:
        return ""
    if not _DIFF_START.match(lines[first]):
        blocks = _fenced_blocks(lines)
        if blocks:
            return _ending("\n".join(blocks))
    start = next((i for i, ln in enumerate(lines) if _DIFF_START.match(ln)), None)
    if start is None:
        return ""
    return _ending("\n".join(lines[start:]))


def _ending(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _fenced_blocks(lines: list[str]) -> list[str]:
    blocks: list[str] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence = m.group(1)
        j = i + 1
        while j < len(lines) and not (
            lines[j].startswith(fence[0] * 3) and not lines[j].strip(fence[0] + " ")
        ):
            j += 1
        body = lines[i + 1 : j]
        if any(_DIFF_START.match(ln) for ln in body):
            blocks.append("\n".join(body))
        i = j + 1
    return blocks


def _hunk_end(lines: list[str], i: int) -> int:
    """Index just past the body lines of the hunk whose first body line is `i`."""
    n = len(lines)
    while i < n:
        ln = lines[i]
        if ln.startswith(("@@", "diff --git ")):
            break
        if ln.startswith("--- ") and i + 1 < n and lines[i + 1].startswith("+++ "):
            break
        if ln and ln[0] not in _BODY:
            break
        i += 1
    return i


def _repair_text(text: str) -> tuple[str, list[bool], list[str], list[RawSection]]:
    """Recount hunk headers from their bodies; keep only diff lines.

    Returns the repaired text, for each hunk whether its header gave a position, repairs, and
    the '+'/'-' lines of each file section.
    """
    repairs: list[str] = []
    sections: list[RawSection] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out: list[str] = []
    positions: list[bool] = []
    in_file = git_header = False
    i, n = 0, len(lines)
    while i < n:
        ln = lines[i]
        if ln.startswith("diff --git "):
            out.append(ln)
            in_file = git_header = True
            sections.append(_git_section(ln))
            i += 1
        elif in_file and _GIT_EXT.match(ln):
            out.append(ln)
            _rename_line(ln, sections)
            i += 1
        elif ln.startswith("--- ") and i + 1 < n and lines[i + 1].startswith("+++ "):
            out.extend((ln, lines[i + 1]))
            old, new, _ = _strip_prefixes(ln[4:], lines[i + 1][4:])
            if git_header:  # the "---"/"+++" of the section "diff --git" opened
                sections[-1].old_path, sections[-1].new_path = old, new
            else:
                sections.append(RawSection(old, new))
            in_file, git_header = True, False
            i += 2
        elif in_file and (ln.startswith("Binary files ") or ln == "GIT binary patch"):
            # Both markers as git writes them: unidiff flags the file section as binary
            # (a shortened marker would leave an empty, apparently textual new file).
            out.append(ln)
            i += 1
            # Skip the base85 payload of a binary patch; the file is refused anyway.
            while i < n and not lines[i].startswith(("diff --git ", "--- ")):
                i += 1
        elif in_file and ln.startswith("@@"):
            start = len(out)
            git_header = False
            i = _repair_hunk(lines, i, out, positions, repairs)
            if not sections:
                sections.append(RawSection(None, None))
            sec = sections[-1]
            for b in out[start + 1 :]:
                if b[0] == "+":
                    sec.added += 1
                    sec.added_chars += len(b) - 1
                    sec.longest = max(sec.longest, len(b) - 1)
                elif b[0] == "-":
                    sec.removed += 1
        elif in_file and ln and ln[0] in "+-" and ln.strip("+- "):
            raise PatchError(
                f"diff line {i + 1} is outside any hunk: {ln[:60]!r}; "
                "every change must follow an '@@ -a,b +c,d @@' header"
            )
        else:
            # Prose around or between diffs is not part of the patch.
            i += 1
    return "".join(line + "\n" for line in out), positions, repairs, sections


def _git_section(line: str) -> RawSection:
    # "diff --git a/X b/Y": the paths are split at " b/", which is wrong only for a path that
    # contains " b/" itself; the "---"/"+++" lines that follow (when there are hunks) win.
    rest = line[len("diff --git ") :]
    old, sep, new = rest.partition(" b/")
    if not sep:
        return RawSection(None, None)
    return RawSection(old[2:] if old.startswith("a/") else old, new)


def _rename_line(line: str, sections: list[RawSection]) -> None:
    if not sections:
        return
    if line.startswith("rename from "):
        sections[-1].old_path = line[len("rename from ") :].strip()
    elif line.startswith("rename to "):
        sections[-1].new_path = line[len("rename to ") :].strip()


def _repair_hunk(
    lines: list[str], i: int, out: list[str], positions: list[bool], repairs: list[str]
) -> int:
    header = lines[i]
    m = _HUNK.match(header)
    if m:
        s_old, c_old, s_new, c_new, section = m.groups()
        stated: tuple[int, int] | None = (
            1 if c_old is None else int(c_old),
            1 if c_new is None else int(c_new),
        )
        old_start, new_start = int(s_old), int(s_new)
        positions.append(True)
    else:
        loose = _LOOSE_HUNK.match(header)
        section = (loose.group(2) or "") if loose else ""
        stated = None
        old_start = new_start = 1
        positions.append(False)
        repairs.append(f"hunk header {header.strip()[:40]!r} had no line numbers")
    end = _hunk_end(lines, i + 1)
    body = [ln if ln else " " for ln in lines[i + 1 : end]]
    # A blank line ends most model diffs; it is context only if the header counts say so.
    trailing = 0
    while trailing < len(body) and lines[end - 1 - trailing] == "":
        trailing += 1
    counts = _count(body)
    if trailing and counts != stated:
        trimmed = _count(body[: len(body) - trailing])
        if trimmed == stated or stated is None or counts != stated:
            body = body[: len(body) - trailing]
            counts = trimmed
    if not any(b[0] in "+-" for b in body):
        raise PatchError(f"hunk {header.strip()[:60]!r} changes nothing (no '+' or '-' lines)")
    if stated is not None and counts != stated:
        repairs.append(
            f"hunk header {header.strip()[:40]!r} counts corrected to -{counts[0]} +{counts[1]}"
        )
    if counts[0] == 0:
        old_start = max(0, old_start if m else 0)
    if counts[1] == 0:
        new_start = max(0, new_start if m else 0)
    tail = f" {section}" if section else ""
    out.append(f"@@ -{old_start},{counts[0]} +{new_start},{counts[1]} @@{tail}")
    out.extend(body)
    return end


def _count(body: list[str]) -> tuple[int, int]:
    old = sum(1 for b in body if b[0] in " -")
    new = sum(1 for b in body if b[0] in " +")
    return old, new


def _strip_prefixes(old: str, new: str) -> tuple[str | None, str | None, bool]:
    """Paths without git's a/ b/ prefixes; the flag says the prefixes were missing."""
    old = old.split("\t", 1)[0].strip()
    new = new.split("\t", 1)[0].strip()
    old_ok = old == DEV_NULL or old.startswith("a/")
    new_ok = new == DEV_NULL or new.startswith("b/")
    prefixed = old_ok and new_ok and not (old == DEV_NULL and new == DEV_NULL)
    o = None if old == DEV_NULL else (old[2:] if prefixed else old)
    w = None if new == DEV_NULL else (new[2:] if prefixed else new)
    return o, w, not prefixed


def prepare_patch(text: str) -> Prepared:
    """Extract and repair; the raw line counts of each section come for free, before parsing."""
    repairs: list[str] = []
    if "\r\n" in text:
        repairs.append("CRLF line endings in the patch normalised")
    raw = extract_diff(text)
    if not raw.strip():
        raise PatchError(
            "no unified diff found: send one diff with '--- a/PATH', '+++ b/PATH' and '@@' hunks"
        )
    fixed, positions, text_repairs, sections = _repair_text(raw)
    repairs.extend(text_repairs)
    return Prepared(text=fixed, positions=positions, repairs=repairs, sections=sections)


def parse_patch(text: str | Prepared) -> Parsed:
    """Extract, repair and parse. Raises PatchError when there is nothing usable."""
    prep = text if isinstance(text, Prepared) else prepare_patch(text)
    fixed, positions, repairs = prep.text, prep.positions, list(prep.repairs)
    try:
        patch_set = PatchSet(fixed)
    except UnidiffParseError as exc:
        raise PatchError(f"unparsable diff: {exc}") from exc
    except (ValueError, IndexError, TypeError) as exc:  # unidiff on very odd input
        raise PatchError(f"unparsable diff: {exc}") from exc
    if not len(patch_set):
        raise PatchError("no file changes found in the diff")
    files: list[FilePatch] = []
    pos_iter = iter(positions)
    for pf in patch_set:
        old_path, new_path, missing = _strip_prefixes(pf.source_file or "", pf.target_file or "")
        if missing:
            repairs.append(f"missing a/ b/ prefixes on {new_path or old_path}")
        info = "".join(str(x) for x in (pf.patch_info or []))
        fp = FilePatch(
            old_path=old_path,
            new_path=new_path,
            hunks=[],
            binary=bool(pf.is_binary_file),
            old_mode=pf.source_mode,
            new_mode=pf.target_mode,
            rename=bool(pf.is_rename),
            copy="\ncopy from " in "\n" + info,
        )
        for number, hunk in enumerate(pf, 1):
            spec = HunkSpec(
                number=number,
                header=f"@@ -{hunk.source_start},{hunk.source_length} "
                f"+{hunk.target_start},{hunk.target_length} @@",
                old_start=hunk.source_start if next(pos_iter, True) else None,
            )
            prev = ""
            for line in hunk:
                tag = line.line_type
                if tag == "\\":
                    if prev in (" ", "-"):
                        spec.old_noeol = True
                    if prev in (" ", "+"):
                        spec.new_noeol = True
                    continue
                value = line.value[:-1] if line.value.endswith("\n") else line.value
                spec.tags.append(tag)
                spec.texts.append(value)
                prev = tag
            fp.hunks.append(spec)
        files.append(fp)
    return Parsed(files=files, repairs=repairs)
