"""Targets: what a block's text and gates say must hold at its end.

A target is read only where the text states one on a gate's metric: "Ruff to 0", "target = 0",
"≤ 25 findings", "coverage ≥ 60%", a reduction (ruff, minus sign, 300). A number that belongs
to a setting ("Raise line length to 120") or carries another unit ("20 lines") is not a target.
"""

from __future__ import annotations

import re

from harness.steps.model import GateMapping, Metric, Target
from harness.steps.text import plain

_METRIC_WORDS: list[tuple[Metric, re.Pattern[str]]] = [
    ("coverage", re.compile(r"\bcoverage\b|--cov\b", re.IGNORECASE)),
    ("ruff", re.compile(r"\bruff\b", re.IGNORECASE)),
    ("mypy", re.compile(r"\bmypy\b", re.IGNORECASE)),
    ("bandit", re.compile(r"\bbandit\b", re.IGNORECASE)),
]
_AT_LEAST = re.compile(r"(?:≥|>=|\bto\b|\bat least\b)\s*(\d+(?:\.\d+)?)\s*%")

_NOUN = r"(?:errors?|findings?|issues?|violations?|warnings?|problems?|diagnostics?|alerts?)"
_CMP = r"(?:\bto\b|=|≤|<=|\bunder\b|\bbelow\b|\bat most\b)"
# Not a count: a percentage, a decimal, or a number with another unit.
_NOT_COUNT = (
    r"(?!\s*%|\.\d|\s*(?:lines?|files?|chars?|characters?|columns?|days?|hours?|minutes?"
    r"|seconds?|ms|s)\b)"
)
# Words that name a setting: a number next to them configures a tool, it is not a goal.
_SETTING = re.compile(
    r"line[- ]?length|complexity|version|timeout|max[- ]|--\w|\bpython\b|\bworkers?\b",
    re.IGNORECASE,
)
_COUNTS = [
    # "target = 0", "target: 0"
    re.compile(rf"\btarget\b\s*(?:[:=]|\bis\b)?\s*(\d+)\b{_NOT_COUNT}", re.IGNORECASE),
    # "to 0 errors", "or 0 MyPy errors", "below 50 findings"
    re.compile(rf"(?:{_CMP}|\bor\b)\s*(\d+)\s+(?:\w+\s+)?{_NOUN}\b", re.IGNORECASE),
    # "findings to 0", "errors <= 10"
    re.compile(rf"\b{_NOUN}\b[^.\d]{{0,20}}?{_CMP}\s*(\d+)\b{_NOT_COUNT}", re.IGNORECASE),
]
# "Ruff to 0", "bring ruff to 25": the metric itself, a few words before the number.
_METRIC_COUNT = re.compile(
    rf"\b(?:ruff|mypy|bandit)\b(?P<between>(?:\W+\w+){{0,3}}?)\W*{_CMP}\s*(\d+)\b{_NOT_COUNT}",
    re.IGNORECASE,
)
_REDUCTION = [
    # A minus sign or a dash right before the number (not a range, not an option).
    re.compile(rf"(?:^|[\s(:,])[\u2212\u2013](?:\s)?(\d+)\b{_NOT_COUNT}"),
    re.compile(rf"(?:^|[\s(:,])-(\d+)\s+{_NOUN}\b", re.IGNORECASE),
    # "reduce ruff findings by 300"
    re.compile(
        rf"\b(?:reduce|cut|lower|drop|decrease)\w*\b[^.\d]{{0,40}}?\bby\s+[\u2212\u2013-]?\s?(\d+)\b{_NOT_COUNT}",
        re.IGNORECASE,
    ),
]
_GREEN = re.compile(r"\bgreen\b", re.IGNORECASE)


def _count(text: str, named: bool) -> int | None:
    """The count a text states as a goal, if any; `named`: the text names the metric."""
    if named and (m := _METRIC_COUNT.search(text)) and not _SETTING.search(m.group("between")):
        return int(m.group(2))
    for rx in _COUNTS:
        if (m := rx.search(text)) and not _SETTING.search(text[: m.start(1)]):
            return int(m.group(1))
    return None


def _reduction(text: str) -> int | None:
    for rx in _REDUCTION:
        if m := rx.search(text):
            return int(m.group(1))
    return None


def block_targets(
    title: str, title_line: int | None, goals: list[tuple[str, int]], gates: list[GateMapping]
) -> list[Target]:
    found: list[Target] = []
    title_metrics = [m for m, rx in _METRIC_WORDS if rx.search(title)]
    for text, line in [(title, title_line), *goals]:
        flat = plain(text)
        named = [m for m, rx in _METRIC_WORDS if rx.search(flat)]
        metrics = named or title_metrics
        if "coverage" in metrics and (m := _AT_LEAST.search(flat)):
            value = float(m.group(1))
            found.append(Target(metric="coverage", op=">=", value=value, source=text, line=line))
        counted = [m for m in metrics if m != "coverage"]
        if not counted:
            continue
        count = _count(flat, bool(named))
        drop = _reduction(flat)
        for metric in counted:
            if count is not None:
                found.append(Target(metric=metric, op="<=", value=count, source=text, line=line))
            elif drop is None and _GREEN.search(flat):
                found.append(Target(metric=metric, op="<=", value=0, source=text, line=line))
            if drop is not None:
                found.append(
                    Target(
                        metric=metric, op="<=", value=drop, reduction=True, source=text, line=line
                    )
                )
    for g in gates:
        if g.kind != "gate" or g.gate is None:
            continue
        if g.gate == "pytest":
            found.append(
                Target(metric="tests_failed", op="<=", value=0, source=g.command, line=g.line)
            )
            if g.fail_under is not None:
                found.append(
                    Target(
                        metric="coverage",
                        op=">=",
                        value=g.fail_under,
                        source=g.command,
                        line=g.line,
                    )
                )
        else:
            # The command passes only when the tool reports nothing.
            found.append(Target(metric=g.gate, op="<=", value=0, source=g.command, line=g.line))
    unique: dict[tuple[str, str, float, bool], Target] = {}
    for t in found:
        unique.setdefault((t.metric, t.op, t.value, t.reduction), t)
    return list(unique.values())
