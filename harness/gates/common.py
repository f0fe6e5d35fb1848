"""What every gate shares: its context, how it runs a tool, and how it turns failure into ERROR.

Gate modules import from here (not from `base`), so `base` can build the registry from them
without an import cycle.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import os
import re
import site
import sys
import sysconfig
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from harness.gates.models import Finding, GateResult, GateStatus
from harness.policy import GateConfig
from harness.proc import ProcResult, run
from harness.redact import redact_text

# Gates must leave no file behind in the target: no bytecode, no colour codes in parsed output.
BASE_ENV: dict[str, str] = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "NO_COLOR": "1",
    "PYTHONIOENCODING": "utf-8",
}

VERSION_TIMEOUT = 60.0

# Static tools (ruff, bandit, detect-secrets, import-linter, mypy itself) run from the harness's
# own environment: they read the target's code, they need not import it, and the target's env
# need not have them installed.
HARNESS_PYTHON = sys.executable


@dataclass(frozen=True)
class GateContext:
    """Where and how a gate runs: the target repo, its interpreter and the gate's config."""

    repo: Path
    python: str = field(default_factory=lambda: sys.executable)
    cfg: GateConfig = field(default_factory=GateConfig)
    # Repo-relative directories that go first on PYTHONPATH when the target's code is imported.
    pythonpath: tuple[str, ...] = ()
    # Persistent per-tool caches (mypy's); None means a throw-away temp dir per run.
    cache_dir: Path | None = None
    # > 0: the tool runs at a lower priority, giving way to the gate that takes longest.
    nice: int = 0


def error(gate: str, tool: str, reason: str, proc: ProcResult | None = None) -> GateResult:
    """A gate that could not run. Never a pass."""
    return GateResult(
        gate=gate,
        status=GateStatus.ERROR,
        reason=one_line(reason),
        tool=tool,
        seconds=proc.seconds if proc else 0.0,
        command=list(proc.argv) if proc else [],
        exit_code=proc.returncode if proc else None,
    )


def one_line(text: str, limit: int = 400) -> str:
    return " ".join(text.split())[:limit]


def run_tool(
    argv: Sequence[str],
    ctx: GateContext,
    *,
    env: Mapping[str, str] | None = None,
) -> ProcResult:
    full_env = dict(BASE_ENV)
    if env:
        full_env.update(env)
    return run(argv, ctx.repo, timeout=ctx.cfg.timeout, env=full_env, nice=ctx.nice)


def proc_failure(
    tool: str, proc: ProcResult, ctx: GateContext, module: str | None = None
) -> str | None:
    """The reason a tool run is unusable regardless of its output, or None.

    `module` is what `python -m` was asked to run (by `argv[0]`): only runpy's own complaint
    about *that* module means the tool is missing (a target's conftest failing an import does
    not).
    """
    if proc.missing:
        return f"{tool}: executable not found: {proc.argv[0]}"
    if proc.timed_out:
        return f"{tool} timed out after {ctx.cfg.timeout:g}s"
    if module and proc.returncode != 0:
        pattern = rf"^\S.*: No module named {re.escape(module)}\s*$"
        if re.search(pattern, proc.stderr, re.MULTILINE):
            return f"{tool} is not installed for {proc.argv[0]} (no module {module})"
    return None


def same_interpreter(a: str, b: str) -> bool:
    """Absolute, but not resolve()d: a venv's python is a symlink to the shared base one."""
    return Path(a).absolute() == Path(b).absolute()


def harness_script(name: str) -> Path | None:
    """A console script installed next to the running harness (`lint-imports`), or None."""
    scripts = Path(sysconfig.get_path("scripts"))
    for candidate in (scripts / name, scripts / f"{name}.exe"):
        if candidate.is_file():
            return candidate
    return None


def repo_pythonpath(ctx: GateContext) -> list[str]:
    """The `pythonpath` dirs as absolute paths inside the repo, in their configured order."""
    return [str(ctx.repo / d) for d in ctx.pythonpath]


def with_pythonpath(
    ctx: GateContext, env: Mapping[str, str] | None = None, *, first: Sequence[str] = ()
) -> dict[str, str]:
    """`env` plus PYTHONPATH = `first`, the repo's pythonpath dirs, then any inherited entries.

    PYTHONPATH precedes site-packages, so the repo's own copy of its packages is the one
    imported even when the interpreter's env has another copy installed (editable or not).
    """
    out = dict(env or {})
    inherited = out.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    parts = [*first, *repo_pythonpath(ctx), *[p for p in inherited.split(os.pathsep) if p]]
    if parts:
        out["PYTHONPATH"] = os.pathsep.join(parts)
    return out


def config_path(ctx: GateContext) -> Path | None:
    """The configured tool config file, resolved inside the repo (None when not configured)."""
    if not ctx.cfg.config:
        return None
    return ctx.repo / ctx.cfg.config


def missing_config(ctx: GateContext, tool: str) -> str | None:
    """A config file the policy names must exist: run without it, a tool would fall back to its
    defaults (or to another file) and judge by rules the user did not choose."""
    cfg_file = config_path(ctx)
    if cfg_file is not None and not cfg_file.is_file():
        return f"{tool} config not found: {ctx.cfg.config}"
    return None


def missing_input(ctx: GateContext, tool: str) -> str | None:
    """Why the gate cannot look at what it is configured to look at, or None.

    A configured path that does not exist would be reported by the tool as one more finding
    (ruff's E902) or skipped silently (bandit); a configured config file that does not exist
    would be skipped by some tools and their defaults used: either way the gate would judge
    something other than what the user's own command judges.
    """
    why = missing_config(ctx, tool)
    if why is not None:
        return why
    for rel in ctx.cfg.paths:
        if not (ctx.repo / rel).exists():
            return f"path not found: {rel}"
    return None


def rel_path(repo: Path, name: str) -> str:
    """Repo-relative, forward slashes; a path outside the repo is kept as given."""
    p = Path(name)
    if p.is_absolute():
        try:
            return p.relative_to(repo).as_posix()
        except ValueError:
            pass
        # Resolved only now: a tool reports every finding's path, and resolving is syscalls.
        real = repo.resolve()
        try:
            return p.relative_to(real).as_posix()
        except ValueError:
            pass
        try:
            return p.resolve().relative_to(real).as_posix()
        except ValueError:
            return p.as_posix()
    posix = p.as_posix()
    return posix[2:] if posix.startswith("./") else posix


class SourceLines:
    """Reads source lines once per file, for fingerprint context.

    A line comes back redacted: it is stored in the result cache and in run records, and
    redacting it here, before it is fingerprinted, keeps every fingerprint and every result
    (fresh or cached) the same.
    """

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self._files: dict[str, list[str]] = {}

    def line(self, path: str, lineno: int | None) -> str:
        if lineno is None or lineno < 1:
            return ""
        if path not in self._files:
            try:
                text = (self.repo / path).read_text(encoding="utf-8", errors="replace")
            except OSError:
                text = ""
            self._files[path] = text.splitlines()
        lines = self._files[path]
        return redact_text(lines[lineno - 1].strip()) if lineno <= len(lines) else ""


def name_and_version(dist: importlib.metadata.Distribution) -> tuple[str, str]:
    """What `dist.metadata["Name"]` and `["Version"]` say, read from the metadata's headers
    without parsing the whole file with the email package (0.3 ms a distribution: most of
    reading an env). A header block a plain scan might read otherwise (a folded or malformed
    line, either header missing) goes to `dist.metadata` itself.

    Also runs in the target's interpreter (`_ENV_SCRIPT` holds its source): Python 3.8 syntax
    and the standard library only."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or dist.read_text("") or ""
    end = text.find("\n\n")
    found: dict[str, str] = {}
    took = True  # whether the line before was a header read into `found` (or the start)
    for line in re.split("\r\n|\r|\n", text if end < 0 else text[: end + 1]):
        if not line:
            break
        if line[0] in " \t":
            if took:
                found = {}  # folded: only the email parser joins it exactly
                break
            continue
        if "name" in found and "version" in found:
            break  # both read, and neither was folded
        key, colon, value = line.partition(":")
        if not colon or not _HEADER_NAME.match(key):
            found = {}  # not a header line: the email parser decides where headers end
            break
        key = key.lower()
        took = key in ("name", "version") and key not in found
        if took:
            found[key] = value.lstrip(" \t")
    if "name" in found and "version" in found:
        return found["name"], found["version"]
    meta = dist.metadata
    return meta["Name"], meta["Version"]


# The characters the email package allows in a header's name.
_HEADER_NAME = re.compile("[!-9;-~]+$")

# What an env holds: where it looks for distributions (its site dirs and the rest of sys.path,
# less sys.path[0], which is only where it was started from) and which are installed there.
_ENV_SCRIPT = (
    "from __future__ import annotations\n"
    "import hashlib, importlib.metadata, json, re, site, sys\n"
    f"_HEADER_NAME = re.compile({_HEADER_NAME.pattern!r})\n"
    + inspect.getsource(name_and_version)
    + """
dirs = site.getsitepackages() + sys.path[1:]
out = {}
for d in importlib.metadata.distributions(path=dirs):
    name, version = name_and_version(d)
    out.setdefault((name or "").lower(), version)
env = sorted("%s==%s" % (k, v) for k, v in out.items())
out["(env)"] = hashlib.sha256("\\n".join(env).encode()).hexdigest()[:12]
print(json.dumps({"dirs": dirs, "versions": out}))
"""
)
_probe_lock = threading.Lock()


@dataclass(frozen=True)
class _Env:
    dirs: tuple[str, ...]
    versions: dict[str, str]


def _env_here() -> _Env:
    """The harness's own env, read in this process: the same answer as `_ENV_SCRIPT` run by
    this interpreter, without starting it again."""
    dirs = [*site.getsitepackages(), *sys.path[1:]]
    out: dict[str, str] = {}
    for d in importlib.metadata.distributions(path=dirs):
        name, version = name_and_version(d)
        out.setdefault((name or "").lower(), version)
    env = sorted(f"{k}=={v}" for k, v in out.items())
    out["(env)"] = hashlib.sha256("\n".join(env).encode()).hexdigest()[:12]
    return _Env(_existing(dirs), out)


def _env_of(python: str) -> _Env:
    if same_interpreter(python, HARNESS_PYTHON):
        return _env_here()
    proc = run([python, "-c", _ENV_SCRIPT], Path.cwd(), timeout=VERSION_TIMEOUT, env=BASE_ENV)
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        dirs, versions = data["dirs"], data["versions"]
        if not isinstance(dirs, list) or not isinstance(versions, dict):
            raise TypeError("not a list and a dict")
    except (json.JSONDecodeError, IndexError, KeyError, TypeError):
        return _Env((), {})
    return _Env(_existing(str(d) for d in dirs), {str(k): str(v) for k, v in versions.items()})


def _existing(dirs: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({d for d in dirs if d and Path(d).is_dir()}))


@lru_cache(maxsize=16)
def _first_look(python: str) -> tuple[_Env, tuple[tuple[str, int], ...]]:
    """One start of the interpreter tells both where its env lives and what it holds."""
    env = _env_of(python)
    return env, _stamp(env.dirs)


def _site_dirs(python: str) -> tuple[str, ...]:
    return _first_look(python)[0].dirs


def _stamp(dirs: Iterable[str]) -> tuple[tuple[str, int], ...]:
    return tuple((d, Path(d).stat().st_mtime_ns) for d in dirs if Path(d).is_dir())


def _env_stamp(python: str) -> tuple[tuple[str, int], ...]:
    """Installing, upgrading or removing a distribution touches its site directory, so the
    directories' mtimes tell whether a probe made earlier still describes the env."""
    return _stamp(_site_dirs(python))


@lru_cache(maxsize=16)
def _probe(python: str, stamp: tuple[tuple[str, int], ...]) -> dict[str, str]:
    env, first = _first_look(python)
    if stamp == first:
        return env.versions
    return _env_of(python).versions


def dist_versions(python: str, dists: Sequence[str]) -> str:
    """'ruff 0.6.1 (env 3f2a...)': the tools' versions in the env of interpreter `python`.

    Part of the result-cache key. The env digest covers every installed distribution, because
    a new stub package changes mypy's verdict as surely as a new mypy does. 'unknown' when the
    interpreter does not answer (then the gate itself errors, and errors are never cached).
    One probe serves every gate until the env changes on disk; the harness's own env is read
    in-process.
    """
    with _probe_lock:
        data = _probe(python, _env_stamp(python))
    if not data:
        # An interpreter that did not answer is asked again next time.
        _probe.cache_clear()
        _first_look.cache_clear()
        return "unknown"
    tools = "".join(f"{d} {data.get(d.lower()) or 'missing'} " for d in dists)
    return f"{tools}(env {data.get('(env)', '?')})"


def findings_result(name: str, proc: ProcResult, findings: list[Finding], noun: str) -> GateResult:
    """A gate judged by its findings alone: passed when there are none."""
    return GateResult(
        gate=name,
        status=GateStatus.FAILED if findings else GateStatus.PASSED,
        reason=f"{len(findings)} {noun}" if findings else None,
        tool=name,
        seconds=proc.seconds,
        command=list(proc.argv),
        exit_code=proc.returncode,
        findings=findings,
    )
