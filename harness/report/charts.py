"""Charts as inline SVG text: a report opens anywhere, with no network, no script and no
plotting library (matplotlib is an optional extra; a report must not need it)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from harness.report.model import BlockReport, Measure

_W_BAR, _GAP, _H, _TOP, _BOTTOM, _LEFT = 34, 14, 160, 34, 34, 8
GOOD, BAD, PLAIN, FAIL = "#2e7d32", "#c62828", "#78909c", "#e57373"


@dataclass
class Series:
    name: str
    color: str
    values: list[float | None]


@dataclass
class Metric:
    """One metric across a block's gate runs; `lower` says which way is better."""

    key: str
    title: str
    labels: list[str]
    series: list[Series]
    lower: bool
    unit: str = ""

    @property
    def before(self) -> float | None:
        return self.series[0].values[0] if self.series[0].values else None

    @property
    def after(self) -> float | None:
        return self.series[0].values[-1] if self.series[0].values else None


def _short(label: str) -> str:
    """'block 2 iteration 3' -> 'it 3'; 'block 2 start' -> 'start'."""
    words = label.split()
    if len(words) >= 3 and words[0] == "block":
        rest = " ".join(words[2:])
        return rest.replace("iteration", "it")
    return label


def metrics(block: BlockReport) -> list[Metric]:
    """The block's metrics that were measured at least once: coverage, tests, then each
    counting gate (ruff, mypy, bandit, ...)."""
    runs: list[Measure] = block.measures
    labels = [_short(m.label) for m in runs]
    found: list[Metric] = []
    if any(m.coverage is not None for m in runs):
        values = [m.coverage for m in runs]
        found.append(
            Metric("coverage", "coverage %", labels, [Series("coverage", GOOD, values)], False, "%")
        )
    if any(m.tests_passed is not None for m in runs):
        passed = Series("passed", GOOD, [None if m.tests_passed is None else float(m.tests_passed)
                                          for m in runs])  # fmt: skip
        failed = Series("failing", FAIL, [None if m.tests_failed is None else float(m.tests_failed)
                                          for m in runs])  # fmt: skip
        found.append(Metric("tests", "tests", labels, [passed, failed], False))
    gates = list(dict.fromkeys(g for m in runs for g in m.counts))
    for gate in gates:
        values = [None if m.counts.get(gate) is None else float(m.counts[gate] or 0) for m in runs]
        found.append(Metric(gate, f"{gate} findings", labels, [Series(gate, PLAIN, values)], True))
    return found


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}{unit}" if unit == "%" else f"{value:g}"


def _color(metric: Metric, index: int, series: Series) -> str:
    """The last bar says whether the block moved the metric the right way."""
    if len(metric.series) > 1 or index != len(series.values) - 1 or index == 0:
        return series.color if len(metric.series) > 1 else PLAIN
    first, last = series.values[0], series.values[-1]
    if first is None or last is None or first == last:
        return PLAIN
    return GOOD if (last < first) == metric.lower else BAD


def svg(metric: Metric) -> str:
    """A bar per gate run (stacked where the metric has several series), value above each."""
    n = len(metric.labels)
    width = _LEFT * 2 + n * _W_BAR + max(n - 1, 0) * _GAP
    width = max(width, 150)
    totals = [sum(s.values[i] or 0.0 for s in metric.series) for i in range(n)]
    top = max([*totals, 100.0 if metric.unit == "%" else 1.0])
    plot = _H - _TOP - _BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{_H}" '
        f'viewBox="0 0 {width} {_H}" class="chart" data-metric="{escape(metric.key)}">',
        f"<title>{escape(metric.title)}: {escape(_fmt(metric.before, metric.unit))} to "
        f"{escape(_fmt(metric.after, metric.unit))}</title>",
        f'<text x="{_LEFT}" y="14" class="ct">{escape(metric.title)}</text>',
        f'<line x1="{_LEFT}" y1="{_H - _BOTTOM}" x2="{width - _LEFT}" y2="{_H - _BOTTOM}" '
        'stroke="#bbb"/>',
    ]
    for i, label in enumerate(metric.labels):
        x = _LEFT + i * (_W_BAR + _GAP)
        y = float(_H - _BOTTOM)
        for series in metric.series:
            value = series.values[i]
            if value is None:
                continue
            h = plot * value / top
            y -= h
            parts.append(
                f'<rect x="{x}" y="{y:.1f}" width="{_W_BAR}" height="{h:.1f}" '
                f'fill="{_color(metric, i, series)}"><title>{escape(series.name)} '
                f"{escape(_fmt(value, metric.unit))}</title></rect>"
            )
        shown = (
            "error"
            if all(s.values[i] is None for s in metric.series)
            else "/".join(_fmt(s.values[i], metric.unit) for s in metric.series)
        )
        parts.append(
            f'<text x="{x + _W_BAR / 2}" y="{y - 4:.1f}" class="cv">{escape(shown)}</text>'
        )
        parts.append(
            f'<text x="{x + _W_BAR / 2}" y="{_H - _BOTTOM + 14}" class="cl">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
