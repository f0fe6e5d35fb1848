"""STEPS scripts: markdown the user wrote for a model, parsed into blocks, gates and guardrails.

The user's own script arrives mis-decoded (UTF-8 read as cp1252), so the text is repaired with
ftfy before anything else. The markdown is read from markdown-it-py's token stream
(`harness.steps.text`); the shapes understood are described in docs/steps.md. Whatever the
parser cannot place is kept in `unplaced`, never dropped and never guessed into a gate.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import ftfy

from harness.errors import StepsError
from harness.steps.commands import fence_commands, map_command, not_a_command, split_commands
from harness.steps.guardrails import (
    GuardrailSource,
    classify_guardrail,
    intro_guardrails,
    output_keys,
)
from harness.steps.model import Block, Guardrail, StepsScript
from harness.steps.targets import block_targets
from harness.steps.text import Elem, code_line, elements, plain, prose

# --- encoding ---------------------------------------------------------------------------

# Only the encoding repairs: a clean script's quotes, widths and ligatures stay as written.
_FTFY = ftfy.TextFixerConfig(
    unescape_html=False,
    remove_terminal_escapes=False,
    fix_latin_ligatures=False,
    fix_character_width=False,
    uncurl_quotes=False,
    fix_line_breaks=False,
    remove_control_chars=False,
    normalization=None,
    explain=False,
)


def repair_text(text: str) -> tuple[str, bool]:
    """(repaired text, whether anything was repaired)."""
    fixed = ftfy.fix_text(text, _FTFY)
    return fixed, fixed != text


def load_steps(path: str | Path) -> StepsScript:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise StepsError(f"cannot read STEPS script {p}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # A script saved by a cp1252 editor is legible as cp1252; anything else is not text.
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise StepsError(f"cannot read STEPS script {p}: not UTF-8 or cp1252 text") from exc
    return parse_steps(text, str(p))


# --- what a heading or a label says ------------------------------------------------------

_SHELL_LANGS = {"", "bash", "sh", "shell", "console", "zsh", "shell-session"}
_DASHES = r"[\u2014\u2013:.\-)\s]*"
_EXPLICIT = re.compile(rf"^(?:block|step)\s*#?\s*(\d+)\b{_DASHES}(.*)$", re.IGNORECASE)
_NUMBERED = re.compile(r"^(\d+)[.)]\s+(\S.*)$")
_LETTERED = re.compile(r"^([A-Z])[.)]\s+(\S.*)$")
_FINAL_HEAD = re.compile(r"\bfinal\s+gates?\b", re.IGNORECASE)
_FINAL = re.compile(
    r"\bfinal\s+gates?\b|^(?:re-?run|run)\s+(?:all\s+|the\s+)*gates?\b", re.IGNORECASE
)
_GUARDRAILS = re.compile(r"guardrails?|constraints|\brules\b", re.IGNORECASE)
_GOALS = re.compile(r"\bgoals?\b|\bobjectives?\b", re.IGNORECASE)
# Numbered sections that describe rather than do: never blocks on their number alone.
_ASIDE = re.compile(
    r"^(?:context|background|notes?|summary|overview|appendix|references?|artifacts?|status"
    r"|introduction|purpose|scope|links)\b",
    re.IGNORECASE,
)
_LABEL_WORD = r"(?:re-?run|run|gates?|snapshot|commands?|checks?|final\s+gates?)"
_LABEL_TAIL = r"(?:\s+(?:the|all|again|gates?|commands?|checks?|these|following|once|more))*"
# A paragraph, bullet or heading that is only a label: the commands follow it.
_LABEL_ONLY = re.compile(
    rf"^(?:then\s+|and\s+|finally,?\s+)?{_LABEL_WORD}{_LABEL_TAIL}\s*(?:\([^)]*\))?\s*:?$",
    re.IGNORECASE,
)
# A label right before a code span: with a colon anywhere ("BEFORE snapshot: `...`"); without
# one only where a sentence starts ("Run `ruff check .` again", "...; then run `mypy .`").
_LABEL_COLON = re.compile(rf"\b{_LABEL_WORD}{_LABEL_TAIL}\s*(?:\([^)]*\))?\s*:\s*$", re.I)
_LABEL_BARE = re.compile(
    rf"(?:^|[.;:,!?]\s+|\bthen\s+|\band\s+|[\u2014\u2013]\s*)(?:re-?run|run|gates?){_LABEL_TAIL}\s+$",
    re.IGNORECASE,
)
# What is left of "Run `ruff check .` again" or "**Gate:** `a` && `b`" without its commands.
_RESIDUE = re.compile(
    rf"^\s*(?:(?:then\s+|and\s+|finally,?\s+)?{_LABEL_WORD}{_LABEL_TAIL}\s*(?:\([^)]*\))?\s*:?)?"
    r"[\s,;&+]*(?:(?:and|then|again|once\s+more)[\s,;&+]*)*[.!]?\s*$",
    re.IGNORECASE,
)
_CHAIN = re.compile(r"^[\s,;&+]*(?:(?:and|then)[\s,;&+]*)*$", re.IGNORECASE)
_OUTPUT_WORDS = (
    r"(?:a|an|the|one|single|final|last|json|line|object|summary|status|result|results|report"
    r"|as|exactly|following|of|in|protocol|format)"
)
_OUTPUT_LABEL = re.compile(
    rf"^(?:finally,?\s+)?(?:output|print|emit)\b(?:\s+{_OUTPUT_WORDS})*\s*:?$", re.IGNORECASE
)
_OUTPUT_HEAD = re.compile(
    r"^(?:\d+[.)]\s+)?output(?:\s+(?:json|protocol|format))?\s*:?$", re.IGNORECASE
)


# Bold and lettered pseudo-headings sit below every real heading level.
_PSEUDO_LEVEL = 7


@dataclass(frozen=True)
class _Head:
    """A heading that starts a block."""

    number: int | None
    name: str
    explicit: bool  # "BLOCK 3" / "Step 3": a block wherever it is
    final: bool


def _block_head(heading: str) -> _Head | None:
    if m := _EXPLICIT.match(heading):
        name = m.group(2).strip() or heading
        return _Head(int(m.group(1)), name, True, _FINAL_HEAD.search(name) is not None)
    for rx in (_NUMBERED, _LETTERED):
        if m := rx.match(heading):
            name = m.group(2).strip()
            number = int(m.group(1)) if rx is _NUMBERED else None
            final = _FINAL.search(name) is not None
            return _Head(number, name, _FINAL_HEAD.search(name) is not None, final)
    if _FINAL_HEAD.search(heading):
        return _Head(None, heading, True, True)
    if _FINAL.search(heading):
        return _Head(None, heading.rstrip(":").strip(), False, True)
    return None


def _pseudo_heading(e: Elem) -> Elem:
    """A paragraph that is a heading in all but markup: `**BLOCK 1 — Lint**` (bold only),
    `A) Ruff` (one line). `A) x` and `B) y` on consecutive lines are a list, not headings."""
    if e.kind != "para" or e.indent:
        return e
    text = plain(e.text)
    bold = e.bold_only and _block_head(text) is not None
    lettered = _LETTERED.match(text) is not None and len(text) <= 80
    if bold or (lettered and not any(k == "break" for k, _ in e.parts)):
        return Elem("heading", e.text, e.line, e.last, level=_PSEUDO_LEVEL, parts=e.parts)
    return e


# --- sections ----------------------------------------------------------------------------


@dataclass
class _Section:
    level: int
    head: Elem | None
    elems: list[Elem] = field(default_factory=list)
    end: int = 0  # last script line (inclusive)


def _sections(elems: list[Elem], n_lines: int) -> list[_Section]:
    sections = [_Section(0, None)]
    for e in map(_pseudo_heading, elems):
        if e.kind == "heading":
            sections.append(_Section(e.level, e))
        else:
            sections[-1].elems.append(e)
    for sec, nxt in zip(sections, [*sections[1:], None], strict=True):
        sec.end = (nxt.head.line - 1) if nxt is not None and nxt.head is not None else n_lines
    return sections


_RULE = re.compile(r"^\s*([-*_])(?:\s*\1){2,}\s*$")


def _raw(lines: list[str], first: int, last: int, skip: set[int] | None = None) -> str:
    """Script lines first..last (1-based, inclusive) verbatim, without trailing blanks/rules."""
    body = [lines[i - 1] for i in range(first, last + 1) if not skip or i not in skip]
    while body and (not body[-1].strip() or _RULE.match(body[-1])):
        body.pop()  # a trailing `---` separates sections; it is not content
    return "\n".join(body).strip()


def _section_text(sec: _Section, lines: list[str], skip: set[int] | None = None) -> str:
    head = ""
    first = 1
    if sec.head is not None:
        first = sec.head.last + 1
        if sec.level <= 6:
            head = f"{'#' * sec.level} {sec.head.text}"
        else:
            head = _raw(lines, sec.head.line, sec.head.last)
    body = _raw(lines, first, sec.end, skip)
    return "\n".join(part for part in (head, body) if part)


# --- commands of a block -------------------------------------------------------------------

Strength = Literal["gate", "run"]


@dataclass
class _Cmd:
    command: str
    line: int
    strength: Strength


@dataclass
class _Pending:
    level: int
    head: _Head
    line: int
    elems: list[Elem]


def _strength(label: str) -> Strength:
    return "gate" if re.search(r"\bgates?\b", label, re.IGNORECASE) else "run"


class _Builder:
    def __init__(self, source: str) -> None:
        self.source = source
        self.unplaced: list[str] = []
        self.output_template = ""

    # The commands of one element's code spans, where a label says they are commands.
    def inline_commands(
        self, e: Elem, pending: Strength | None, where: str
    ) -> tuple[list[_Cmd], bool]:
        """(commands, whether the element says nothing else: a label and its commands)."""
        cmds: list[_Cmd] = []
        before = ""
        residue = ""  # the element without its commands
        line = e.line
        chain: Strength | None = pending
        for kind, text in e.parts:
            if kind in ("break", "text"):
                line += kind == "break"
                before += text
                residue += text
                continue
            label: Strength | None = None
            if chain is not None and _CHAIN.match(before):
                label = chain
            elif m := (_LABEL_COLON.search(before) or _LABEL_BARE.search(before)):
                label = _strength(m.group(0))
            chain, before = label, ""
            if label is None:
                residue += f"`{text}`"
                continue
            for c in split_commands(text):
                if (why := not_a_command(c)) is not None:
                    self.unplaced.append(f"{where}: line {line}: not a command ({why}): {c}")
                else:
                    cmds.append(_Cmd(self.checked(c, line), line, label))
        return cmds, bool(cmds) and _RESIDUE.match(residue) is not None

    def fence_commands(self, e: Elem, strength: Strength, where: str) -> list[_Cmd]:
        cmds: list[_Cmd] = []
        for c, index in fence_commands(e.code):
            line = code_line(e, index)
            if (why := not_a_command(c)) is not None:
                self.unplaced.append(f"{where}: line {line}: not a command ({why}): {c}")
            else:
                cmds.append(_Cmd(self.checked(c, line), line, strength))
        return cmds

    def block(self, number: int, p: _Pending, final: bool) -> Block:
        where = f"BLOCK {number}"
        cmds: list[_Cmd] = []
        goal_elems: list[Elem] = []
        label: Strength | Literal["output"] | None = None
        for e in p.elems:
            if e.kind == "fence":
                if label == "output":
                    self.set_output("\n".join(e.code).strip(), e.line)
                elif label is not None or e.lang in _SHELL_LANGS:
                    cmds += self.fence_commands(e, label or "run", where)
                else:
                    self.unplaced.append(
                        f"{where}: code block ({e.lang}) at line {e.line}:\n" + "\n".join(e.code)
                    )
                label = None
                continue
            text = plain(e.text)
            if _LABEL_ONLY.match(text):
                label = _strength(text)
                continue
            if _OUTPUT_LABEL.match(text):
                label = "output"
                continue
            if label == "output" and e.code_only():
                self.set_output(next(t for k, t in e.parts if k == "code"), e.line)
                label = None
                continue
            if self.inline_output(e):
                label = None
                continue
            pending = label if label != "output" else None
            found, only = self.inline_commands(e, pending, where)
            # "Gates:" then a list of bullets that are only commands: the label holds for all.
            label = pending if found and e.kind == "bullet" and e.code_only() else None
            cmds += found
            if only:
                continue  # "Run: `cmd`" is the command, not a goal
            if e.kind == "heading":
                # A subsection's heading (`### Fixes`, `A) Ruff` under a block) is said too.
                e = Elem("para", e.text, e.line, e.last, parts=e.parts)
            goal_elems.append(e)
        goals = prose(goal_elems)
        kept = self.supersede(cmds, where)
        gates = []
        for c in kept:
            m = map_command(c.command)
            m.line = c.line
            gates.append(m)
        return Block(
            number=number,
            title=p.head.name,
            goals=[g for g, _ in goals],
            gate_commands=[c.command for c in kept],
            gates=gates,
            targets=block_targets(p.head.name, p.line, goals, gates),
            final=final,
            line=p.line,
        )

    def supersede(self, cmds: list[_Cmd], where: str) -> list[_Cmd]:
        """A later explicit `Gate:` command wins over an earlier run of the same gate (a
        triage `pytest -x` before the gate `pytest -q`): the earlier one is listed, not run."""
        kept: list[_Cmd] = []
        for i, c in enumerate(cmds):
            gate = map_command(c.command)
            later = None
            if c.strength == "run" and gate.kind == "gate":
                later = next(
                    (
                        d
                        for d in cmds[i + 1 :]
                        if d.strength == "gate"
                        and (m := map_command(d.command)).kind == "gate"
                        and m.gate == gate.gate
                    ),
                    None,
                )
            if later is not None:
                self.unplaced.append(
                    f"{where}: line {c.line}: {c.command} (superseded by the block's gate "
                    f"{later.command}, line {later.line})"
                )
            else:
                kept.append(c)
        return kept

    def inline_output(self, e: Elem) -> bool:
        """`Output a single JSON line: `{...}`` states the template inline."""
        before = ""
        for kind, text in e.parts:
            if kind == "code" and _OUTPUT_LABEL.match(plain(before).strip()):
                self.set_output(text, e.line)
                return True
            if kind == "code":
                return False
            before += text
        return False

    def loose(self, elems: list[Elem], where: str) -> None:
        """Outside blocks: an output template is placed, any other code block is listed."""
        output = False
        for e in elems:
            if e.kind == "fence":
                if output:
                    self.set_output("\n".join(e.code).strip(), e.line)
                else:
                    self.unplaced.append(
                        f"{where}: code block at line {e.line}:\n" + "\n".join(e.code)
                    )
                output = False
                continue
            output = _OUTPUT_LABEL.match(plain(e.text)) is not None
            if not output:
                self.inline_output(e)

    def place_output(self, elems: list[Elem]) -> set[int]:
        """In a section no rule placed: its output template, if it states one; the lines used."""
        placed: set[int] = set()
        for prev, e in zip([None, *elems], elems, strict=False):
            label = prev is not None and _OUTPUT_LABEL.match(plain(prev.text)) is not None
            if e.kind == "fence" and label and prev is not None:
                self.set_output("\n".join(e.code).strip(), e.line)
                placed |= {*range(prev.line, prev.last + 1), *range(e.line, e.last + 1)}
            elif e.kind != "fence" and self.inline_output(e):
                placed |= set(range(e.line, e.last + 1))
        return placed

    def set_output(self, template: str, line: int) -> None:
        if self.output_template:
            self.unplaced.append(f"second output template at line {line}:\n{template}")
        else:
            self.output_template = template

    def checked(self, cmd: str, line: int) -> str:
        try:
            shlex.split(cmd)
        except ValueError as exc:
            raise StepsError(f"{self.source}:{line}: cannot parse command {cmd!r}: {exc}") from exc
        return cmd


def _front_matter(lines: list[str]) -> int:
    """Index of the first line after a `---` YAML front matter, or 0."""
    if lines and lines[0].strip() == "---":
        for i in range(1, len(lines)):
            if lines[i].strip() in ("---", "..."):
                return i + 1
    return 0


def _final_steps(sec: _Section) -> tuple[_Pending, set[int]] | None:
    """A "Re-run gates" step outside any block (the last of a runbook's numbered steps) is the
    script's final gates: the step and the commands that follow it."""
    for i, e in enumerate(sec.elems):
        if e.kind not in ("bullet", "para"):
            continue
        label = plain("".join(t for k, t in e.parts if k != "code").split(":")[0])
        if not _FINAL.match(label.strip()):
            continue
        taken = [e]
        for nxt in sec.elems[i + 1 :]:
            if nxt.kind == "fence" or (nxt.indent > e.indent and nxt.code_only()):
                taken.append(nxt)
            else:
                break
        has_code = any(k == "code" for k, _ in e.parts) or len(taken) > 1
        if not has_code:
            continue
        title = re.sub(r"[\s:]+$", "", label.strip())
        lines = {n for t in taken for n in range(t.line, t.last + 1)}
        head = _Head(None, title, False, True)
        return _Pending(_PSEUDO_LEVEL, head, e.line, taken), lines
    return None


def _has_commands(sec: _Section) -> bool:
    probe = _Builder("<probe>")
    block = probe.block(0, _Pending(sec.level, _Head(0, "", False, False), 0, sec.elems), False)
    return bool(block.gate_commands)


_NO_BLOCKS = (
    "no blocks found: expected a heading per block with its gate command, e.g. "
    "'## BLOCK 1 — Ruff to 0' then 'Run: `ruff check src`'; `harness init` writes a starter "
    "STEPS.md"
)


def parse_steps(text: str, source: str = "<steps>") -> StepsScript:
    fixed, repaired = repair_text(text)
    lines = fixed.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start = _front_matter(lines)
    builder = _Builder(source)
    if start:
        builder.unplaced.append("\n".join(lines[:start]).strip())

    title: str | None = None
    intro_parts: list[tuple[str, int]] = []
    goals: list[str] = []
    guardrails: list[Guardrail] = []
    pending: list[_Pending] = []
    # Sections no rule placed, kept in order: listed as unplaced unless the script has no
    # blocks at all, when a section that runs commands is a block (structure over phrasing).
    others: list[tuple[_Section, set[int], int]] = []  # (section, lines placed, slot)
    extra_prose: list[tuple[str, GuardrailSource]] = []
    # The section later, deeper headings belong to: a block, the guardrails or the goals.
    open_: tuple[int, _Pending | Literal["guardrails", "goals"]] | None = None

    body = "\n".join(lines[start:])
    for sec in _sections(elements(body, start), len(lines)):
        top = sec.head
        if top is None:
            intro_parts.extend(prose(sec.elems))
            builder.loose(sec.elems, "preamble")
            continue
        heading = plain(top.text)
        if title is None and sec.level == 1 and not pending:
            head = _block_head(heading)
            if head is None or not (head.explicit and head.number is not None):
                title = heading
                intro_parts.extend(prose(sec.elems))
                builder.loose(sec.elems, heading)
                continue
        head = _block_head(heading)
        if open_ is not None and sec.level > open_[0] and not (head is not None and head.explicit):
            # A subsection (`### Gate`, `A) Ruff` under a block, `### Tests` under the
            # guardrails) belongs to the section above it, its heading included.
            sub = [Elem("para", heading, top.line, top.last, parts=top.parts), *sec.elems]
            kind = open_[1]
            if isinstance(kind, _Pending):
                kind.elems += [Elem("heading", heading, top.line, top.last), *sec.elems]
            elif kind == "guardrails":
                guardrails.extend(classify_guardrail(t, "guardrails") for t, _ in prose(sub))
                builder.loose(sec.elems, heading)
            else:
                goals.extend(t for t, _ in prose(sub))
                builder.loose(sec.elems, heading)
            continue
        open_ = None
        if head is not None and (
            head.explicit
            or head.final
            or (not _kind_word(head.name) and (not _ASIDE.match(head.name) or _has_commands(sec)))
        ):
            pending.append(_Pending(sec.level, head, top.line, sec.elems))
            open_ = (sec.level, pending[-1])
            continue
        name = head.name if head is not None else heading
        if _GUARDRAILS.search(name):
            guardrails.extend(classify_guardrail(t, "guardrails") for t, _ in prose(sec.elems))
            builder.loose(sec.elems, heading)
            open_ = (sec.level, "guardrails")
            continue
        if _GOALS.search(name):
            goals.extend(t for t, _ in prose(sec.elems))
            builder.loose(sec.elems, heading)
            open_ = (sec.level, "goals")
            continue
        if _OUTPUT_HEAD.match(heading):
            fences = [e for e in sec.elems if e.kind == "fence"]
            if fences:
                builder.set_output("\n".join(fences[0].code).strip(), fences[0].line)
                rest = [e.text for e in sec.elems if e.kind != "fence"]
                if rest:
                    builder.unplaced.append(f"{heading}: " + "\n".join(rest))
                builder.loose(fences[1:], heading)
                continue
        extra_prose.extend((t, "section") for t, _ in prose(sec.elems))
        placed = builder.place_output(sec.elems)
        if (steps := _final_steps(sec)) is not None:
            pending.append(steps[0])
            placed |= steps[1]
        others.append((sec, placed, len(builder.unplaced)))
        builder.unplaced.append("")  # the section's slot, filled once the blocks are known

    structural = not pending
    for sec, placed, slot in others:
        if structural and sec.head is not None and _has_commands(sec):
            head = _Head(None, plain(sec.head.text), False, False)
            pending.append(_Pending(sec.level, head, sec.head.line, sec.elems))
        else:
            builder.unplaced[slot] = _section_text(sec, lines, placed)

    blocks: list[Block] = []
    numbers_seen: set[int] = set()
    next_number = max((p.head.number for p in pending if p.head.number is not None), default=0)
    next_number += 1
    for p in pending:
        number = p.head.number
        if number is None:
            number, next_number = next_number, next_number + 1
        if number in numbers_seen:
            raise StepsError(f"{source}: block {number} appears twice")
        numbers_seen.add(number)
        final = _FINAL.search(p.head.name) is not None or p.head.final
        blocks.append(builder.block(number, p, final))

    if not blocks:
        raise StepsError(f"{source}: {_NO_BLOCKS}")

    intro = "\n\n".join(t for t, _ in intro_parts)
    kinds = {g.kind for g in guardrails}
    guardrails.extend(g for g in intro_guardrails(intro) if g.kind not in kinds)
    if not any(g.kind == "progress_log" for g in guardrails):
        # The progress log may be stated anywhere: in a block, or a section of its own.
        extra_prose = [(g, "block") for b in blocks for g in b.goals] + extra_prose
        for t, where in extra_prose:
            rail = classify_guardrail(t, where)
            if rail.kind == "progress_log":
                guardrails.append(rail)
                break
    progress_log = next(
        (str(g.value) for g in guardrails if g.kind == "progress_log" and g.value), None
    )
    final_gates = [c for b in blocks if b.final for c in b.gate_commands]
    keys, subkeys = output_keys(builder.output_template)
    return StepsScript(
        source=source,
        title=title or Path(source).stem,
        repaired_encoding=repaired,
        intro=intro,
        goals=goals,
        blocks=blocks,
        final_gates=final_gates,
        guardrails=guardrails,
        output_keys=keys,
        output_subkeys=subkeys,
        output_template=builder.output_template,
        progress_log=progress_log,
        unplaced=[u for u in builder.unplaced if u.strip()],
    )


def _kind_word(name: str) -> bool:
    """A numbered heading that names a section kind (`## 2. Guardrails`) is that section."""
    return bool(_GUARDRAILS.search(name) or _GOALS.search(name) or _OUTPUT_HEAD.match(name))
