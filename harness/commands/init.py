"""`harness init`: write `harness.toml` and a starter `STEPS.md` for the repository."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import typer
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from harness import __version__, ui
from harness.detect import Detected, detect
from harness.errors import UsageError
from harness.gitutil import open_repo
from harness.policy import POLICY_FILE, STEPS_FILE, default_policy_path, parse_policy
from harness.resources import data_dir
from harness.steps import parse_steps

PROGRESS_LOG = "docs/harness/PROGRESS.md"


def _env() -> Environment:
    # Output is TOML and markdown, never HTML: nothing to escape.
    return Environment(  # nosec B701
        loader=FileSystemLoader(data_dir("policies") / "init"),
        undefined=StrictUndefined,
        autoescape=False,  # noqa: S701
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _guardrails_and_prices() -> str:
    """The shipped default policy from [regression] on: the T4 guardrails, loop limits, prices."""
    text = default_policy_path().read_text(encoding="utf-8")
    start = text.find("[regression]")
    return text[start:] if start >= 0 else ""


def _portable_python(det: Detected, root: Path) -> str | None:
    if det.python is None:
        return None
    path = Path(det.python)
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def render_policy(det: Detected, root: Path, name: str) -> str:
    layout_why = {
        "src": "a src/ layout",
        "flat": "packages at the repository root",
        "module": "a single module",
        "none": "no package found",
    }[det.layout]
    text = (
        _env()
        .get_template("harness.toml.j2")
        .render(
            name=name,
            version=__version__,
            python=_portable_python(det, root),
            python_why=f"the project's {det.python_source}/, used to run its tests",
            pythonpath=[det.source_root] if det.layout != "none" else [],
            pythonpath_why=f"{layout_why}: this copy of the code is the one imported and measured",
            layout_why=layout_why,
            tests_in_packages=det.tests_in_packages(),
            mypy_exclude="|".join(f"^{re.escape(t)}/" for t in det.tests_in_packages()),
            rest=_guardrails_and_prices(),
            **det.model_dump(exclude={"python", "name"}),
        )
    )
    parse_policy(text, POLICY_FILE)  # what init writes must load; a template bug fails here
    return text


def render_steps(det: Detected, name: str) -> str:
    pkgs = det.package_paths
    target = " ".join(pkgs) if pkgs else "."
    bandit_config = f" -c {det.bandit_config}" if det.bandit_config else ""
    text = (
        _env()
        .get_template("STEPS.md.j2")
        .render(
            name=name,
            max_lines=20,
            coverage_goal=60,
            progress_log=PROGRESS_LOG,
            package_list=", ".join(f"`{p}`" for p in pkgs) or "the project",
            cov_args=" ".join(f"--cov={p}" for p in det.packages) or "--cov",
            ruff_target=target,
            mypy_target=target,
            bandit_target=target,
            bandit_config_arg=bandit_config,
            imports_config=det.imports_config,
        )
    )
    parse_steps(text, STEPS_FILE)  # the starter script must parse
    return text


def _project_name(root: Path, det: Detected) -> str:
    name = det.name or (det.packages[0] if det.packages else root.name)
    return re.sub(r"[^\w.-]+", "-", name) or "project"


def command(
    repo: Path | None = typer.Option(
        None, "--repo", help="Target git repository (default: the one enclosing the cwd)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite existing files."),
    json_out: bool = typer.Option(False, "--json", help="Print what was detected and written."),
) -> None:
    """Detect the repository's layout, tests, interpreter and tool configs, and write
    `harness.toml` (the policy, every detected value with a comment) and a starter `STEPS.md`.
    `harness gates` and `harness run STEPS.md` then work with no edits.

    Exit codes: 0 written; 2 not a git repository, or a file exists (use --force)."""
    found = open_repo(repo or Path.cwd()).working_tree_dir
    if found is None:
        raise UsageError(f"{repo or Path.cwd()}: a bare repository has no working tree")
    root = Path(found)
    det = detect(root)
    name = _project_name(root, det)
    files = {POLICY_FILE: render_policy(det, root, name), STEPS_FILE: render_steps(det, name)}
    existing = [f for f in files if (root / f).exists()]
    if existing and not force:
        raise UsageError(
            f"{', '.join(existing)} already exist(s) in {root}; pass --force to overwrite"
        )
    for rel, text in files.items():
        tmp = root / f".{rel}.tmp-{os.getpid()}"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(root / rel)
    result: dict[str, Any] = {
        "repo": str(root),
        "written": sorted(files),
        "detected": det.model_dump(),
    }
    if json_out:
        ui.print_json(result)
        return
    for note in det.notes:
        ui.err.print(f"  {note}", markup=False)
    ui.out.print(f"wrote {root / POLICY_FILE}", markup=False)
    ui.out.print(f"wrote {root / STEPS_FILE}", markup=False)
    ui.out.print(
        f"next:  harness gates --repo {root}\n       harness run {root / STEPS_FILE} --repo {root}",
        markup=False,
    )
