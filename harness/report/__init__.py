"""`harness report`: a recorded run as a self-contained HTML page, a pull-request description
(Markdown), the findings left at its end as SARIF 2.1.0, and two runs side by side.

`model.load` reads the record; `render` fills the templates in `reports/`; `charts` draws
inline SVG; `sarif` writes the code-scanning log."""

from __future__ import annotations

from harness.report.model import RunReport, load
from harness.report.render import compare_html, compare_markdown, html, markdown
from harness.report.sarif import to_sarif

__all__ = [
    "RunReport",
    "compare_html",
    "compare_markdown",
    "html",
    "load",
    "markdown",
    "to_sarif",
]
