"""A STEPS script applied to a policy: guardrails, gate paths and options, lanes, path remaps."""

from __future__ import annotations

from harness.errors import StepsError
from harness.policy import Policy
from harness.steps.commands import remap_fixer
from harness.steps.model import Block, GateMapping, StepsScript


def apply_to_policy(script: StepsScript, policy: Policy) -> Policy:
    """A copy of `policy` with the script's guardrails and gate commands applied.

    The final gates (the script's definition of done) have the last word, then later blocks
    over earlier ones. For each gate the last block that runs it decides its paths and
    options: all of that block's commands for the gate together, and a command naming no
    path checks everything (`pytest --cov=lukhas` runs the whole suite, not an earlier
    block's `pytest tests/unit`). Its options replace the policy's when it gives any. A
    config file, --cov targets and a coverage goal are kept from wherever they were last given:
    a command that does not mention them does not take them away.
    """
    new = policy.model_copy(deep=True)
    if script.progress_log and script.progress_log not in new.guard.forbidden:
        # The harness writes the progress log; a patch that edits it would rewrite the record.
        new.guard.forbidden.append(script.progress_log)
    limit = script.max_lines_per_file()
    if limit is not None:
        # Both the policy and the script state a maximum; both must hold.
        new.guard.max_changed_lines_per_file = min(new.guard.max_changed_lines_per_file, limit)
    ordered = [b for b in script.blocks if not b.final] + [b for b in script.blocks if b.final]
    last: dict[str, list[GateMapping]] = {}
    for block in ordered:
        here: dict[str, list[GateMapping]] = {}
        for m in block.gates:
            if m.kind != "gate" or m.gate is None:
                continue
            here.setdefault(m.gate, []).append(m)
            gate = getattr(new.gates, m.gate)
            if m.config:
                gate.config = m.config
            if m.cov:
                gate.cov = list(m.cov)
            if m.fail_under is not None:
                gate.fail_under = m.fail_under
        last.update(here)
    for name, mappings in last.items():
        gate = getattr(new.gates, name)
        everything = any(not m.paths for m in mappings)
        gate.paths = [] if everything else list(dict.fromkeys(p for m in mappings for p in m.paths))
        args: list[str] = []
        seen: set[tuple[str, ...]] = set()
        for m in mappings:
            # `ruff check a --select E` and `ruff check b --select E` are one option set.
            if m.args and tuple(m.args) not in seen:
                seen.add(tuple(m.args))
                args += m.args
        if args:
            gate.args = args
    return new


def parse_path_map(items: list[str]) -> dict[str, str]:
    """`--path lukhas=src/click` options -> {"lukhas": "src/click"}; an empty right side drops."""
    out: dict[str, str] = {}
    for item in items:
        old, sep, new = item.partition("=")
        old, new = old.strip().strip("/"), new.strip().rstrip("/")
        if not sep or not old:
            raise StepsError(
                f"--path takes SCRIPT_PATH=REPO_PATH (or SCRIPT_PATH= to drop it), got {item!r}"
            )
        out[old] = new
    return out


def _remap(value: str, mapping: dict[str, str]) -> str | None:
    clean = value.rstrip("/")
    for old, new in mapping.items():
        if clean == old:
            return new or None
        if clean.startswith(old + "/"):
            return f"{new}/{clean[len(old) + 1 :]}" if new else None
    return value


def remap_paths(
    script: StepsScript, mapping: dict[str, str], source_root: str = "."
) -> StepsScript:
    """The script with the paths its gate commands name rewritten: `--path lukhas=src/click`
    points a script written for one repository at another without editing it.

    A --cov target mapped onto a module file (`--path lukhas=six.py`) becomes the module's
    import name (`six`), since coverage reads a target that is not a directory as one: the
    same mapping then serves the script's ruff, mypy and bandit paths and its --cov."""
    if not mapping:
        return script
    new = script.model_copy(deep=True)
    renamed: dict[str, str] = {}
    for block in new.blocks:
        for i, m in enumerate(block.gates):
            if m.kind == "fixer":
                fixer = remap_fixer(m, lambda p: _remap(p, mapping))
                renamed[m.command] = fixer.command
                block.gate_commands = [renamed.get(c, c) for c in block.gate_commands]
                block.gates[i] = m = fixer
            m.paths = [p for p in (_remap(p, mapping) for p in m.paths) if p]
            m.cov = [
                _cov_target(new_c, source_root) if new_c != c else c
                for c in m.cov
                if (new_c := _remap(c, mapping))
            ]
            if m.config is not None:
                m.config = _remap(m.config, mapping)
    new.final_gates = [renamed.get(c, c) for c in new.final_gates]
    return new


def _cov_target(path: str, source_root: str) -> str:
    if not path.endswith(".py"):
        return path
    root = source_root.strip("/")
    if root not in ("", ".") and path.startswith(root + "/"):
        path = path[len(root) + 1 :]
    module = path.removesuffix(".py").removesuffix("/__init__")
    return module.replace("/", ".")


def named_paths(script: StepsScript) -> list[tuple[int, str, str]]:
    """(block, path, what) for every path and config file the script's gates name."""
    out: list[tuple[int, str, str]] = []
    for block in script.blocks:
        for m in block.gates:
            if m.kind != "gate":
                continue
            out += [(block.number, p, f"{m.gate} path") for p in m.paths]
            out += [(block.number, c, "--cov target") for c in m.cov]
            if m.config:
                out.append((block.number, m.config, f"{m.gate} config file"))
    return out


_SOURCE_GATES = ("ruff", "mypy", "bandit")


def block_lanes(block: Block, gates: list[str], policy: Policy) -> tuple[list[str], str]:
    """Where a block may write, from what it does, and why: a coverage block writes tests; a
    lint, typing or security block writes the code its gates check. Never from its number."""
    coverage = "pytest" in gates and (
        any(t.metric == "coverage" for t in block.targets)
        or any(m.fail_under is not None for m in block.gates)
        or "coverage" in block.title.lower()
    )
    source = [g for g in gates if g in _SOURCE_GATES]
    if not coverage and not source:
        return ["**"], "the block's gates do not say what it writes"
    lanes: list[str] = []
    why: list[str] = []
    if coverage:
        lanes += [*policy.guard.test_globs, "conftest.py", "**/conftest.py"]
        why.append("a coverage block writes tests")
    for name in source:
        paths = getattr(policy.gates, name).paths
        if not paths:
            return ["**"], f"{name} checks the whole repository"
        lanes += [p if p.endswith(".py") else f"{p.rstrip('/')}/**" for p in paths]
    if source:
        why.append(f"{'/'.join(source)} block writes the code its gates check")
    return list(dict.fromkeys(lanes)), "; ".join(why)
