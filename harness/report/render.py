"""The report as HTML (one self-contained page) and Markdown (a pull-request description),
from the Jinja2 templates in `reports/` (shipped with the package as prompts/ are)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from harness.report.charts import metrics, svg
from harness.report.model import BlockReport, RunReport
from harness.report.sarif import to_sarif
from harness.resources import data_dir

# GitHub refuses a pull-request body over 65,536 characters; leave room for a person's words.
MD_LIMIT = 60_000


@lru_cache(maxsize=2)
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(data_dir("reports")),
        undefined=StrictUndefined,
        # HTML-escaped in .html templates (diffs and messages hold `<`, `&`); Markdown as is.
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["diff_html"] = diff_html
    env.filters["num"] = num
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, default=str, ensure_ascii=False)
    env.filters["short"] = lambda sha: (sha or "")[:10]
    env.filters["seconds"] = seconds
    env.filters["md"] = md_cell
    env.filters["changed"] = lambda files: ", ".join(
        f"{f.get('path')} +{f.get('added')} -{f.get('removed')}" for f in files
    )
    env.filters["deciders"] = lambda ds: "; ".join(
        f"{d.layer} / `{d.rule}`" + (f": {md_cell(d.message)[:200]}" if d.message else "")
        for d in ds
    )
    return env


def diff_html(diff: str) -> Markup:
    """A diff with its added, removed and header lines marked for the stylesheet."""
    lines = []
    for line in diff.splitlines():
        cls = (
            "dh"
            if line.startswith(("diff ", "--- ", "+++ ", "@@"))
            else "da"
            if line.startswith("+")
            else "dr"
            if line.startswith("-")
            else "dc"
        )
        lines.append(f'<span class="{cls}">{escape(line)}</span>')
    # Every line of the diff is escaped above; only the span tags are ours.
    return Markup("\n".join(lines))  # noqa: S704  # nosec B704


def num(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.1f}{unit}" if unit == "%" else f"{value:g}{unit}"
    return f"{value}{unit}"


def seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value < 60:
        return f"{value:.1f}s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes}m{rest:02d}s"


def md_cell(text: Any) -> str:
    """Text safe in a Markdown table cell or list item (one line, no pipes)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _block_view(block: BlockReport) -> dict[str, Any]:
    found = metrics(block)
    return {
        "b": block,
        # svg() escapes every text it writes (titles, labels, values): the markup is its own.
        "metrics": [{"m": m, "svg": Markup(svg(m))} for m in found],  # noqa: S704  # nosec B704
        "landed": block.landed,
        "proposals": sum(len(i.proposals) for i in block.items),
    }


def _context(report: RunReport) -> dict[str, Any]:
    return {
        "r": report,
        "h": report.header,
        "blocks": [_block_view(b) for b in report.blocks],
        "sarif_count": sum(len(run["results"]) for run in to_sarif(report)["runs"]),
    }


def html(report: RunReport) -> str:
    return _environment().get_template("report.html.j2").render(**_context(report))


def markdown(report: RunReport) -> str:
    """The Markdown; if the full one is too long for a PR, one without per-proposal detail."""
    template = _environment().get_template("report.md.j2")
    text = template.render(**_context(report), compact=False, limit=MD_LIMIT)
    if len(text) > MD_LIMIT:
        text = template.render(**_context(report), compact=True, limit=MD_LIMIT)
    if len(text) > MD_LIMIT:
        cut = text[:MD_LIMIT].rsplit("\n", 1)[0]
        text = cut + "\n\n_(cut to fit a pull-request description: see the HTML report)_\n"
    return text


def compare_context(a: RunReport, b: RunReport) -> dict[str, Any]:
    numbers = sorted({blk.number for blk in a.blocks} | {blk.number for blk in b.blocks})
    rows = []
    for n in numbers:
        pair = [next((blk for blk in r.blocks if blk.number == n), None) for r in (a, b)]
        views = [_block_view(blk) if blk is not None else None for blk in pair]
        keys = list(dict.fromkeys(m["m"].key for v in views if v is not None for m in v["metrics"]))
        table = []
        for key in keys:
            cells = []
            for v in views:
                m = next((x["m"] for x in (v["metrics"] if v else []) if x["m"].key == key), None)
                unit = m.unit if m else ""
                cells.append(
                    {"before": num(m.before, unit), "after": num(m.after, unit)}
                    if m
                    else {"before": "-", "after": "-"}
                )
            table.append({"key": key, "cells": cells})
        title = next((blk.title for blk in pair if blk is not None), "")
        rows.append({"number": n, "title": title, "views": views, "table": table})
    return {"a": a, "b": b, "rows": rows}


def compare_html(a: RunReport, b: RunReport) -> str:
    return _environment().get_template("compare.html.j2").render(**compare_context(a, b))


def compare_markdown(a: RunReport, b: RunReport) -> str:
    return _environment().get_template("compare.md.j2").render(**compare_context(a, b))
