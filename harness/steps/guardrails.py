"""Guardrails (limits a run must keep) and the output protocol (the JSON the script asks for)."""

from __future__ import annotations

import re
from typing import Literal

from harness.steps.model import Guardrail, GuardrailKind

GuardrailSource = Literal["guardrails", "intro", "block", "section"]

_MAX_LINES = re.compile(
    r"(?:≤|<=|=<|\bat most\b|\bmax(?:imum)?\.?|\bno more than\b|\bup to\b)\s*(\d+)\s*"
    r"(?:changed\s+)?lines?\s*(?:/|\bper\b|\ba\b|\beach\b)\s*file",
    re.IGNORECASE,
)
_LOG_PATH = re.compile(
    r"\b(?:append|log|record|write)\w*\b[^`]*`([^`\s]+\.(?:md|txt|log|jsonl?))`", re.IGNORECASE
)
_KINDS: list[tuple[GuardrailKind, re.Pattern[str]]] = [
    ("no_network_tests", re.compile(r"\bnetwork\b|nondeterministic|non-deterministic|flaky", re.I)),
    ("utc", re.compile(r"\butc\b|time\s*zone", re.IGNORECASE)),
    ("lane_separation", re.compile(r"\blanes?\b", re.IGNORECASE)),
    ("security_clean", re.compile(r"\bsecurity\b|\bbandit\b|\bgitleaks\b|\bsecrets?\b", re.I)),
]


def classify_guardrail(text: str, source: GuardrailSource) -> Guardrail:
    if m := _MAX_LINES.search(text):
        return Guardrail(text=text, kind="max_lines_per_file", value=int(m.group(1)), source=source)
    if m := _LOG_PATH.search(text):
        return Guardrail(text=text, kind="progress_log", value=m.group(1), source=source)
    for kind, rx in _KINDS:
        if rx.search(text):
            return Guardrail(text=text, kind=kind, source=source)
    return Guardrail(text=text, kind="other", source=source)


def intro_guardrails(intro: str) -> list[Guardrail]:
    out: list[Guardrail] = []
    if m := _MAX_LINES.search(intro):
        out.append(classify_guardrail(m.group(0), "intro"))
    if m := _LOG_PATH.search(intro):
        out.append(classify_guardrail(m.group(0), "intro"))
    return out


# --- output JSON --------------------------------------------------------------------------


def output_keys(template: str) -> tuple[list[str], dict[str, list[str]]]:
    """Keys of a JSON-like template whose values are placeholders (`<bool>`, X), by depth."""
    top: list[str] = []
    nested: dict[str, list[str]] = {}
    depth = 0
    parents: list[str | None] = []
    last_key: str | None = None
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"\s*(:)?|[{}]', template):
        tok = m.group(0)
        if tok == "{":
            depth += 1
            parents.append(last_key if depth > 1 else None)
        elif tok == "}":
            depth -= 1
            if parents:
                parents.pop()
        elif m.group(2):
            key = m.group(1)
            last_key = key
            if depth == 1:
                top.append(key)
            elif depth > 1 and parents and parents[-1] is not None:
                nested.setdefault(parents[-1], []).append(key)
    return top, nested
