"""import-linter: contracts kept / broken (the target's "lanes").

`lint-imports` only prints a human report, so a small driver runs import-linter's own use cases
(read options, register contract types, create_report) in the target interpreter and writes the
report as JSON. The broken-contract details are import-linter's own rendering, captured as text.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from harness.gates.common import (
    GateContext,
    config_path,
    dist_versions,
    error,
    one_line,
    proc_failure,
    run_tool,
)
from harness.gates.models import Contract, GateResult, GateStatus

NAME = "imports"
TOOL = "import-linter"

_DRIVER = r"""
import json, os, sys

out_path, config = sys.argv[1], sys.argv[2] or None
sys.path.insert(0, os.getcwd())  # as `lint-imports` does: the target's packages import from cwd


def emit(obj):
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh)


try:
    import importlinter.api  # noqa: F401  (configures import-linter's settings)
    from importlinter.application import use_cases
    from importlinter.application.output import console
except Exception as exc:
    emit({"error": "import-linter is not importable: %s: %s" % (type(exc).__name__, exc)})
    sys.exit(0)

try:
    options = use_cases.read_user_options(config_filename=config)
    if not options.contracts_options:
        raise ValueError("no contracts found in the import-linter configuration")
    use_cases._register_contract_types(options)
    report = use_cases.create_report(options, cache_dir=None)
except FileNotFoundError as exc:
    emit({"error": "no import-linter configuration found (%s); looked for .importlinter, "
          "setup.cfg and pyproject.toml, or set [gates.imports] config" % exc})
    sys.exit(0)
except Exception as exc:
    emit({"error": "%s: %s" % (type(exc).__name__, exc)})
    sys.exit(0)

if report.could_not_run:
    problems = []
    for name, exc in report.invalid_contract_options.items():
        fields = "; ".join("%s: %s" % kv for kv in getattr(exc, "errors", {}).items())
        problems.append("contract %r is not configured correctly: %s" % (name, fields))
    emit({"error": " | ".join(problems) or "import-linter could not run"})
    sys.exit(0)

contracts = []
for contract, check in report.get_contracts_and_checks():
    details = None
    if not check.kept:
        with console.capture() as cap:
            contract.render_broken_contract(check)
        details = cap.get()
    contracts.append({"name": contract.name, "kept": bool(check.kept), "details": details})
emit({"contracts": contracts, "modules": report.module_count, "imports": report.import_count})
"""


class ImportsGate:
    name = NAME

    def version(self, python: str) -> str:
        return dist_versions(python, ["import-linter", "grimp"])

    def run(self, ctx: GateContext) -> GateResult:
        cfg_file = config_path(ctx)
        if cfg_file is not None and not cfg_file.is_file():
            return error(NAME, TOOL, f"import-linter config not found: {ctx.cfg.config}")
        with tempfile.TemporaryDirectory(prefix="harness-imports-") as tmp:
            driver, out = Path(tmp) / "lint_driver.py", Path(tmp) / "report.json"
            driver.write_text(_DRIVER, encoding="utf-8")
            config = str(cfg_file) if cfg_file is not None else ""
            proc = run_tool([ctx.python, str(driver), str(out), config], ctx)
            why = proc_failure(TOOL, proc, ctx)
            if why is None and proc.returncode != 0:
                why = f"import-linter driver exited {proc.returncode}: {proc.tail}"
            if why is None and not out.is_file():
                why = f"import-linter wrote no report: {proc.tail}"
            if why is not None:
                return error(NAME, TOOL, why, proc)
            text = out.read_text(encoding="utf-8", errors="replace")
        try:
            data = json.loads(text)
            if "error" in data:
                return error(NAME, TOOL, f"import-linter could not run: {data['error']}", proc)
            contracts = [
                Contract(name=str(c["name"]), kept=bool(c["kept"]), details=c.get("details"))
                for c in data["contracts"]
            ]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            return error(NAME, TOOL, f"unparsable import-linter report: {exc}", proc)
        broken = [c.name for c in contracts if not c.kept]
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
            contracts=contracts,
        )


GATE = ImportsGate()
