"""import-linter: contracts kept / broken (the target's "lanes").

Runs import-linter's own console script, `lint-imports`, from the harness's environment and
reads its text report, the only interface import-linter documents for a check. The report is
parsed strictly: any line the parser does not know, or counts that disagree with the contract
lines or with the exit code, make the gate an ERROR, so a change of format fails loudly instead
of reading as "all kept".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.gates.common import (
    HARNESS_PYTHON,
    GateContext,
    dist_versions,
    error,
    harness_script,
    missing_input,
    one_line,
    proc_failure,
    run_tool,
    with_pythonpath,
)
from harness.gates.models import Contract, GateResult, GateStatus
from harness.proc import ProcResult

NAME = "imports"
TOOL = "import-linter"
SCRIPT = "lint-imports"

# rich (import-linter's console) wraps at the terminal width, 80 columns when piped: a long
# contract name would be split over two lines. Plain text even where the user forces colour.
_ENV = {"NO_COLOR": "1", "COLUMNS": "100000", "TTY_COMPATIBLE": "0", "FORCE_COLOR": ""}

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_SUMMARY = re.compile(r"^Contracts: (?P<kept>\d+) kept, (?P<broken>\d+) broken\.$")
_ANALYZED = re.compile(r"^Analyzed \d+ files, \d+ dependencies\.$")
# "NAME KEPT", "NAME BROKEN (3 ignored imports, 1 warning)", "NAME KEPT [0.12s]" (timings)
_RESULT = re.compile(r"^(?P<name>.+?) (?P<state>KEPT|BROKEN)(?: \([^()]*\))?(?: \[[0-9.]+m?s\])?$")


@dataclass(frozen=True)
class Report:
    contracts: list[Contract]
    kept: int
    broken: int


class ImportsGate:
    name = NAME

    def version(self, python: str) -> str:
        return dist_versions(HARNESS_PYTHON, ["import-linter", "grimp"])

    def run(self, ctx: GateContext) -> GateResult:
        why = missing_input(ctx, TOOL)
        if why is not None:
            return error(NAME, TOOL, why)
        script = harness_script(SCRIPT)
        if script is None:
            return error(
                NAME, TOOL, f"{SCRIPT} not found next to {HARNESS_PYTHON}: install import-linter"
            )
        # No cache: import-linter's default one would be written into the target.
        argv = [str(script), "--no-logo", "--no-cache", *ctx.cfg.args]
        if ctx.cfg.config:
            argv.append(ctx.cfg.config)
        # grimp must find the target's packages: cwd (lint-imports adds it) and pythonpath.
        proc = run_tool(argv, ctx, env=with_pythonpath(ctx, _ENV))
        why = proc_failure(TOOL, proc, ctx)
        if why is not None:
            return error(NAME, TOOL, why, proc)
        if not any(_SUMMARY.match(line) for line in _plain_lines(proc.stdout)):
            why = f"import-linter could not run (exit {proc.returncode}): {_last_lines(proc)}"
            return error(NAME, TOOL, why, proc)
        try:
            report = parse(proc.stdout)
        except ValueError as exc:
            why = f"unparsable import-linter report: {exc}; it ends: {_last_lines(proc)}"
            return error(NAME, TOOL, why, proc)
        why = disagreement(report, proc.returncode)
        if why is not None:
            return error(NAME, TOOL, f"{why}: {_last_lines(proc)}", proc)
        broken = [c.name for c in report.contracts if not c.kept]
        return GateResult(
            gate=NAME,
            status=GateStatus.FAILED if broken else GateStatus.PASSED,
            reason=one_line(f"{len(broken)} contract(s) broken: {', '.join(broken)}")
            if broken
            else None,
            tool=TOOL,
            seconds=proc.seconds,
            command=list(proc.argv),
            exit_code=proc.returncode,
            contracts=report.contracts,
        )


def disagreement(report: Report, returncode: int) -> str | None:
    """lint-imports exits 0 when every contract is kept and 1 otherwise (or on an error): a
    report that says otherwise is not one this parser understands."""
    if returncode == (0 if report.broken == 0 else 1):
        return None
    return (
        f"import-linter exited {returncode} but reported {report.kept} kept, {report.broken} broken"
    )


def _plain_lines(text: str) -> list[str]:
    return [line.rstrip() for line in _ANSI.sub("", text).splitlines()]


def _last_lines(proc: ProcResult) -> str:
    """The tool's own last words (a config error is printed last), for a one-line reason."""
    lines = [line.strip() for line in _plain_lines(f"{proc.stdout}\n{proc.stderr}")]
    return " | ".join([line for line in lines if line][-4:]) or "no output"


def _is_rule(line: str, under: str) -> bool:
    """`line` is the dashes rich draws under (or over) the heading `under`."""
    return bool(under) and line == "-" * len(under)


def parse(text: str) -> Report:
    """lint-imports' report -> contracts. Raises ValueError on anything it does not know."""
    lines = _plain_lines(text)
    summaries = [(i, m) for i, line in enumerate(lines) if (m := _SUMMARY.match(line))]
    if len(summaries) != 1:
        raise ValueError(f"expected one 'Contracts: N kept, M broken.' line, got {len(summaries)}")
    end, summary = summaries[0]

    # The Contracts section: its heading, the "Analyzed" heading, then one line per contract.
    analyzed = [i for i in range(end) if _ANALYZED.match(lines[i])]
    if len(analyzed) != 1 or not _is_rule(lines[analyzed[0] + 1], lines[analyzed[0]]):
        raise ValueError("no 'Analyzed N files, M dependencies.' heading before the summary")
    contracts: list[Contract] = []
    for line in lines[analyzed[0] + 2 : end]:
        if not line:
            continue
        m = _RESULT.match(line)
        if m is None:
            raise ValueError(f"unexpected line in the contracts section: {line[:160]!r}")
        contracts.append(Contract(name=m["name"], kept=m["state"] == "KEPT"))
    kept, broken = int(summary["kept"]), int(summary["broken"])
    n_kept = sum(c.kept for c in contracts)
    if (kept, broken) != (n_kept, len(contracts) - n_kept):
        raise ValueError(
            f"summary says {kept} kept, {broken} broken, but the contract lines say "
            f"{n_kept} kept, {len(contracts) - n_kept} broken"
        )
    if not contracts:
        raise ValueError("no contracts in the report")
    return Report(_with_details(contracts, lines[end + 1 :]), kept, broken)


def _with_details(contracts: list[Contract], lines: list[str]) -> list[Contract]:
    """Each broken contract's details: the text under its heading in "Broken contracts"."""
    broken = [c for c in contracts if not c.kept]
    if not broken:
        return contracts
    title = "Broken contracts"
    starts = [
        i
        for i in range(1, len(lines) - 1)
        if lines[i] == title and _is_rule(lines[i - 1], title) and _is_rule(lines[i + 1], title)
    ]
    if len(starts) != 1:
        raise ValueError("broken contracts, but no 'Broken contracts' section")
    # Headings come in the order of the contract lines; each one is its name over dashes.
    pos = starts[0] + 2
    bounds: list[tuple[int, int]] = []
    for contract in broken:
        at = next(
            (
                i
                for i in range(pos, len(lines) - 1)
                if lines[i] == contract.name and _is_rule(lines[i + 1], contract.name)
            ),
            None,
        )
        if at is None:
            raise ValueError(f"no details for broken contract {contract.name!r}")
        if bounds:
            bounds[-1] = (bounds[-1][0], at)
        bounds.append((at + 2, len(lines)))
        pos = at + 2
    details = iter("\n".join(lines[a:b]).strip() for a, b in bounds)
    out: list[Contract] = []
    for c in contracts:
        if not c.kept:
            text = next(details)
            if not text:
                raise ValueError(f"empty details for broken contract {c.name!r}")
            c = c.model_copy(update={"details": text})
        out.append(c)
    return out


GATE = ImportsGate()
