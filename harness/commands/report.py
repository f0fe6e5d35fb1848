"""`harness report RUN_DIR`: a recorded run as HTML, Markdown and SARIF;
`harness report --compare RUN_A RUN_B`: two runs side by side (harness/report/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from harness import ui
from harness.errors import UsageError
from harness.report import (
    RunReport,
    compare_html,
    compare_markdown,
    html,
    load,
    markdown,
    to_sarif,
)
from harness.report.render import compare_context


def _write(path: Path, text: str, what: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the {what} to {path}: {exc.strerror or exc}") from exc
    ui.err.print(f"{what}: {path}", markup=False)


def _comparison(a: RunReport, b: RunReport) -> dict[str, Any]:
    rows = []
    for row in compare_context(a, b)["rows"]:
        sides: list[dict[str, Any] | None] = []
        for v in row["views"]:
            if v is None:
                sides.append(None)
                continue
            blk = v["b"]
            sides.append(
                {
                    "status": blk.status,
                    "kept": len(blk.commits),
                    "reverted": len(blk.reverted),
                    "rejected": blk.rejected,
                    "metrics": {
                        m["m"].key: {"before": m["m"].before, "after": m["m"].after}
                        for m in v["metrics"]
                    },
                    "landed": [
                        {"sha": p.sha, "item": p.item, "title": p.title} for p in v["landed"]
                    ],
                }
            )
        rows.append({"block": row["number"], "title": row["title"], "a": sides[0], "b": sides[1]})
    return {"a": a.header.run_id, "b": b.header.run_id, "blocks": rows}


def command(
    run_dirs: list[Path] = typer.Argument(
        ..., metavar="RUN_DIR", help="A recorded run directory (two with --compare)."
    ),
    html_file: Path | None = typer.Option(None, "--html", help="Write a self-contained HTML page."),
    md_file: Path | None = typer.Option(
        None, "--md", help="Write Markdown sized for a pull-request description."
    ),
    sarif_file: Path | None = typer.Option(
        None, "--sarif", help="Write the findings left at the end as SARIF 2.1.0."
    ),
    compare: bool = typer.Option(
        False, "--compare", help="Two runs side by side: metrics per block, what each landed."
    ),
    json_: bool = typer.Option(False, "--json", help="Print the report's data as JSON."),
) -> None:
    """Report on a recorded run as HTML, pull-request Markdown and SARIF; or compare two.

    Made from the record alone, of a live or a replayed run: the run header, per block the
    goal, metrics before and after as charts, every todo item with its proposals, diffs,
    verdicts and the layer and rule that decided them, reverts with the regression behind
    each, supervised decisions, gate timings, tokens and cost, and the summary JSON. Without
    --html/--md/--sarif the Markdown goes to stdout.

    Exit codes: 0 written; 2 not a run record, or a file that cannot be written.
    """
    if compare:
        if len(run_dirs) != 2 or sarif_file is not None:
            raise UsageError("--compare takes exactly two run directories (and no --sarif)")
        a, b = load(run_dirs[0]), load(run_dirs[1])
        if html_file is not None:
            _write(html_file, compare_html(a, b), "comparison (html)")
        if md_file is not None:
            _write(md_file, compare_markdown(a, b), "comparison (markdown)")
        if json_:
            ui.print_json(_comparison(a, b))
        elif html_file is None and md_file is None:
            print(compare_markdown(a, b), end="")
        return
    if len(run_dirs) != 1:
        raise UsageError(f"one run directory, got {len(run_dirs)} (two only with --compare)")
    report = load(run_dirs[0])
    if html_file is not None:
        _write(html_file, html(report), "html")
    if md_file is not None:
        _write(md_file, markdown(report), "markdown")
    if sarif_file is not None:
        _write(sarif_file, json.dumps(to_sarif(report), indent=2) + "\n", "sarif")
    if json_:
        ui.print_json(report.model_dump(mode="json"))
    elif html_file is None and md_file is None and sarif_file is None:
        print(markdown(report), end="")
