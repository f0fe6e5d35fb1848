"""The markdown of a STEPS script as elements, from markdown-it-py's token stream.

Each element keeps the script lines it came from, so every gate and target can be traced back
to its line. Inline text keeps its code spans apart (`parts`): a command is a code span, and
what precedes it in the same element says whether it is one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from markdown_it import MarkdownIt
from markdown_it.token import Token

# CommonMark only: tables and linkify would change what a line of a runbook means.
_MD = MarkdownIt("commonmark")
_EMPHASIS = re.compile(r"(\*\*|__|\*)(.+?)\1")

PartKind = Literal["text", "code", "break"]
ElemKind = Literal["heading", "bullet", "para", "quote", "fence"]


def plain(text: str) -> str:
    """Markdown emphasis removed, for matching labels and titles."""
    return _EMPHASIS.sub(r"\2", text).strip()


@dataclass
class Elem:
    kind: ElemKind
    text: str
    line: int
    last: int
    level: int = 0
    indent: int = 0
    ordinal: int | None = None
    lang: str = ""
    code: list[str] = field(default_factory=list)
    parts: list[tuple[PartKind, str]] = field(default_factory=list)
    bold_only: bool = False

    def code_only(self) -> bool:
        """Nothing but code spans and the punctuation that joins commands."""
        codes = [t for k, t in self.parts if k == "code"]
        rest = "".join(t for k, t in self.parts if k == "text")
        return (
            bool(codes) and re.fullmatch(r"[\s,;&+]*(?:(?:and|then)[\s,;&+]*)*", rest) is not None
        )


def _parts(tok: Token) -> tuple[list[tuple[PartKind, str]], bool]:
    """The inline parts, and whether all the text is bold (a bold pseudo-heading)."""
    parts: list[tuple[PartKind, str]] = []
    strong = 0
    bold_only = True
    for child in tok.children or []:
        kind = child.type
        if kind == "strong_open":
            strong += 1
        elif kind == "strong_close":
            strong -= 1
        elif kind in ("text", "html_inline", "code_inline"):
            if child.content.strip() and not strong:
                bold_only = False
            parts.append(("code" if kind == "code_inline" else "text", child.content))
        elif kind in ("softbreak", "hardbreak"):
            parts.append(("break", " "))
    has_text = any(t.strip() for _, t in parts)
    return parts, bold_only and has_text


def _joined(content: str) -> str:
    return " ".join(line.strip() for line in content.split("\n")).strip()


def elements(text: str, offset: int) -> list[Elem]:
    """Headings, paragraphs, bullets, quotes and code blocks in document order.

    `offset`: lines before `text` in the script (front matter), so that lines are the script's.
    """
    tokens = _MD.parse(text)
    out: list[Elem] = []
    depth = -1
    quote = 0
    items: list[list[object]] = []  # per open list item: [first paragraph pending, ordinal]
    for i, tok in enumerate(tokens):
        kind = tok.type
        if kind in ("bullet_list_open", "ordered_list_open"):
            depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
        elif kind == "list_item_open":
            items.append([True, int(tok.info) if tok.info.isdigit() else None])
        elif kind == "list_item_close":
            items.pop()
        elif kind == "blockquote_open":
            quote += 1
        elif kind == "blockquote_close":
            quote -= 1
        elif kind == "inline" and tok.map:
            first, end = tok.map[0] + 1 + offset, tok.map[1] + offset
            parts, bold_only = _parts(tok)
            parent = tokens[i - 1]
            elem = Elem("para", _joined(tok.content), first, end, parts=parts)
            if parent.type == "heading_open":
                elem.kind, elem.level = "heading", int(parent.tag[1:])
            elif quote:
                elem.kind = "quote"
            elif items and items[-1][0]:
                items[-1][0] = False
                ordinal = items[-1][1]
                elem.kind, elem.indent = "bullet", depth
                elem.ordinal = ordinal if isinstance(ordinal, int) else None
            else:
                elem.indent = depth if items else 0
                elem.bold_only = bold_only
            out.append(elem)
        elif kind in ("fence", "code_block") and tok.map:
            lang = tok.info.split()[0].lower() if tok.info.strip() else ""
            first, end = tok.map[0] + 1 + offset, tok.map[1] + offset
            code = tok.content.split("\n")
            if code and code[-1] == "":
                code.pop()
            # A fenced block's code starts on the line after its opening fence.
            out.append(
                Elem(
                    "fence", "", first, end, lang=lang, code=code, level=1 if kind == "fence" else 0
                )
            )
        elif kind == "html_block" and tok.map:
            first, end = tok.map[0] + 1 + offset, tok.map[1] + offset
            content = tok.content.strip()
            out.append(Elem("para", _joined(content), first, end, parts=[("text", content)]))
    return out


def code_line(fence: Elem, index: int) -> int:
    """The script line of a code block's `index`-th line."""
    return fence.line + index + fence.level


def flatten_bullets(elems: list[Elem]) -> list[tuple[str, int]]:
    """Leaf bullets with their parents' text in front; a parent alone adds nothing new."""
    out: list[tuple[str, int]] = []
    stack: list[tuple[int, str]] = []
    for idx, e in enumerate(elems):
        while stack and stack[-1][0] >= e.indent:
            stack.pop()
        nxt = elems[idx + 1] if idx + 1 < len(elems) else None
        if nxt is not None and nxt.indent > e.indent:
            stack.append((e.indent, e.text))
            continue
        text = e.text
        for _, parent in reversed(stack):
            sep = " " if parent.rstrip().endswith(":") else ": "
            text = parent.rstrip() + sep + text
        out.append((text, e.line))
    return out


def prose(elems: list[Elem]) -> list[tuple[str, int]]:
    """Bullets (flattened) and paragraphs in document order, with their lines."""
    out: list[tuple[str, int]] = []
    run: list[Elem] = []
    for e in [*elems, None]:
        if e is not None and e.kind == "bullet":
            run.append(e)
            continue
        if run:
            out.extend(flatten_bullets(run))
            run = []
        if e is not None and e.kind in ("para", "quote") and e.text:
            out.append((e.text, e.line))
    return out
