"""Commands of a STEPS script: recognised as commands, split, and mapped onto the gates."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import StepsError
from harness.steps.model import GateMapping


def split_commands(line: str) -> list[str]:
    """`a && b` -> [a, b], respecting quotes; `;` separates too."""
    parts: list[str] = []
    buf: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\" and quote == '"' and i + 1 < len(line):
                buf.append(line[i : i + 2])
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif line.startswith("&&", i) or ch == ";":
            parts.append("".join(buf))
            buf = []
            i += 2 if ch == "&" else 1
            continue
        buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return [p.strip() for p in parts if p.strip()]


def fence_commands(code: list[str]) -> list[tuple[str, int]]:
    """(command, index of the line it starts on) for each command of a shell code block."""
    cmds: list[tuple[str, int]] = []
    pending, start = "", 0
    for i, raw in enumerate(code):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if not pending:
            start = i
        if line.startswith("$ "):
            line = line[2:]
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        cmds.extend((c, start) for c in split_commands(pending + line))
        pending = ""
    if pending.strip():
        cmds.extend((c, start) for c in split_commands(pending))
    return cmds


def _opt(argv: list[str], i: int, names: tuple[str, ...]) -> tuple[str | None, int]:
    """(value, tokens consumed) for `--name=value` / `--name value` at argv[i], else (None, 0)."""
    tok = argv[i]
    for name in names:
        if tok.startswith(name + "=") and name.startswith("--"):
            return tok[len(name) + 1 :], 1
        if tok == name and i + 1 < len(argv):
            return argv[i + 1], 2
    return None, 0


_SHELL_OP = re.compile(r"^(?:\||&|\d*>|<|&>)")


def _strip_path(p: str) -> str:
    return p.rstrip("/") or p


@dataclass(frozen=True)
class _Tool:
    """What a tool's command line means to its gate.

    `value`: options that take a value (the next word is not a path). `special`: options the
    gate configures itself (config file, coverage goal), canonical name first. `drop`: options
    the gate sets on its own terms (output format, report files); carrying them would break
    the parsing. Any other option, with its value, is carried into the gate's `args`.
    """

    value: frozenset[str]
    special: dict[str, str] = field(default_factory=dict)
    drop: frozenset[str] = frozenset()
    packages: frozenset[str] = frozenset()


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_RUFF = _Tool(
    value=_words(
        "--config --select --ignore --extend-select --extend-ignore --per-file-ignores"
        " --extend-per-file-ignores --fixable --unfixable --extend-fixable --exclude"
        " --extend-exclude --line-length --target-version --output-format -o --output-file"
        " --stdin-filename --cache-dir --dummy-variable-rgx"
    ),
    special={"--config": "--config"},
    drop=_words(
        "--output-format -o --output-file --cache-dir -n --no-cache --exit-zero --statistics"
        " --watch -w --show-files --show-settings --show-fixes --no-show-fixes -q --quiet"
        " -s --silent -e --exit-non-zero-on-fix --diff --stdin-filename"
    ),
)
_MYPY = _Tool(
    value=_words(
        "--config-file -p --package -m --module -c --command --python-version --platform"
        " --python-executable --always-true --always-false --exclude --cache-dir"
        " --custom-typeshed-dir --disable-error-code --enable-error-code --follow-imports"
        " --junit-xml --output -O --html-report --txt-report --xml-report --xslt-html-report"
        " --xslt-txt-report --linecount-report --linecoverage-report --lineprecision-report"
        " --any-exprs-report --cobertura-xml-report --memory-xml-report"
    ),
    special={"--config-file": "--config-file"},
    drop=_words(
        "--cache-dir --output -O --junit-xml --html-report --txt-report --xml-report"
        " --xslt-html-report --xslt-txt-report --linecount-report --linecoverage-report"
        " --lineprecision-report --any-exprs-report --cobertura-xml-report"
        " --memory-xml-report --pretty"
    ),
    packages=_words("-p --package -m --module"),
)
_PYTEST = _Tool(
    value=_words(
        "-m -k -p -c -o -W --maxfail --rootdir --basetemp --override-ini --deselect --ignore"
        " --ignore-glob --durations --durations-min --tb --confcutdir --log-level --log-file"
        " --log-cli-level --import-mode --color --junitxml --junit-xml --junit-prefix"
        " --cov-report --cov-config --cov-fail-under --timeout -n --numprocesses --dist"
        " --capture --doctest-glob"
    ),
    special={"--cov-config": "--cov-config", "--cov-fail-under": "--cov-fail-under"},
    drop=_words("--junitxml --junit-xml --junit-prefix --cov-report"),
)
_BANDIT = _Tool(
    value=_words(
        "-a --aggregate -n --number -c --configfile -p --profile -t --tests -s --skip -f"
        " --format --msg-template -o --output -x --exclude -b --baseline --ini"
        " --severity-level --confidence-level"
    ),
    special={"-c": "--configfile", "--configfile": "--configfile"},
    drop=_words("-r --recursive -f --format --msg-template -o --output -q --quiet --silent"),
)


# `ruff format` options that take a value, and the ones that decide how it reports rather
# than what it changes.
_RUFF_FORMAT = _Tool(
    value=_words(
        "--config --line-length --target-version --exclude --extend-exclude --range"
        " --stdin-filename --cache-dir"
    ),
    special={"--config": "--config"},
    drop=_words(
        "--check --diff -n --no-cache --cache-dir -q --quiet -s --silent"
        " --exit-non-zero-on-format --stdin-filename"
    ),
)
# What makes `ruff check` write: a dry run (`--diff`) implies them.
_FIX_FLAGS = frozenset(("--fix", "--fix-only", "--no-fix"))


@dataclass
class _Scan:
    positional: list[str] = field(default_factory=list)
    at: list[int] = field(default_factory=list)  # where each positional word stood
    args: list[str] = field(default_factory=list)
    special: dict[str, str] = field(default_factory=dict)
    packages: list[str] = field(default_factory=list)
    cov: list[str] = field(default_factory=list)


def _scan(words: list[str], tool: _Tool) -> _Scan:
    """Split a tool's words into paths, the options its gate sets, and the options carried."""
    out = _Scan()
    i = 0
    while i < len(words):
        tok = words[i]
        if tok == "--":
            out.positional += [_strip_path(w) for w in words[i + 1 :]]
            out.at += range(i + 1, len(words))
            break
        if not tok.startswith("-") or tok == "-":
            out.positional.append(_strip_path(tok))
            out.at.append(i)
            i += 1
            continue
        name, value = tok, None
        if tok.startswith("--") and "=" in tok:
            name, value = tok.split("=", 1)
        used = 1
        if name == "--cov":
            # pytest-cov's --cov takes an optional value: `--cov lukhas`, `--cov=lukhas`, `--cov`.
            if value is None and i + 1 < len(words) and not words[i + 1].startswith("-"):
                value, used = words[i + 1], 2
            if value:
                out.cov.append(_strip_path(value))
            i += used
            continue
        if value is None and name in tool.value and i + 1 < len(words):
            value, used = words[i + 1], 2
        if name in tool.special and value is not None:
            out.special[tool.special[name]] = value
        elif name in tool.packages and value is not None:
            out.packages.append(value)
        elif name not in tool.drop:
            out.args += words[i : i + used]
        i += used
    return out


def _fixer_scan(m: GateMapping) -> tuple[str, int, _Scan]:
    """A ruff fixer's subcommand, where its own words start in `m.argv`, and their scan."""
    words = list(m.argv)
    at = next((i for i, w in enumerate(words) if Path(w).name == "ruff"), None)
    if m.kind != "fixer" or at is None:
        raise StepsError(f"{m.command!r} is not a ruff fixer")
    start = at + 1
    rest = words[start:]
    rest = rest[: next((i for i, w in enumerate(rest) if _SHELL_OP.match(w)), len(rest))]
    sub = "format" if rest[:1] == ["format"] else "check"
    if rest[:1] == [sub]:
        rest, start = rest[1:], start + 1
    return sub, start, _scan(rest, _RUFF_FORMAT if sub == "format" else _RUFF)


def fixer_parts(m: GateMapping) -> tuple[str, list[str], list[str], str | None]:
    """A ruff fixer's (subcommand, options, paths, config file): what a dry run of it
    (`ruff format --diff`, `ruff check --diff`) needs to measure what it would change."""
    sub, _, scan = _fixer_scan(m)
    options = [a for a in scan.args if a not in _FIX_FLAGS]
    return sub, options, scan.positional, scan.special.get("--config")


def remap_fixer(m: GateMapping, remap: Callable[[str], str | None]) -> GateMapping:
    """The fixer with each path it names passed through `remap` (None drops the path), in its
    argv and in its command text (its `paths` are left to the caller): the builtin provider
    and the block's accounting run the fixer from those, so a `--path` that left them alone
    would run it on the script's paths."""
    _, start, scan = _fixer_scan(m)
    where = {start + i for i in scan.at}
    if where and not any(remap(_strip_path(m.argv[i])) for i in where):
        # Dropping every path would leave the fixer to rewrite the whole repository.
        return m
    argv: list[str] = []
    for i, word in enumerate(m.argv):
        new = remap(_strip_path(word)) if i in where else word
        if new:
            argv.append(new if i in where and new != _strip_path(word) else word)
    if argv == m.argv:
        return m
    # Shell operators stay bare: the text is split again with shlex where it is run.
    command = " ".join(w if _SHELL_OP.match(w) else shlex.quote(w) for w in argv)
    return m.model_copy(update={"argv": argv, "command": command})


def map_command(cmd: str) -> GateMapping:
    """Map one script command onto a configured gate, a plain command, or a fixer."""
    try:
        argv = shlex.split(cmd)
    except ValueError as exc:
        raise StepsError(f"cannot parse command {cmd!r}: {exc}") from exc
    if not argv:
        raise StepsError("empty command")
    shell_at = next((i for i, tok in enumerate(argv) if _SHELL_OP.match(tok)), None)
    words = list(argv[:shell_at])
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words.pop(0)  # leading VAR=value assignments
    if len(words) >= 3 and Path(words[0]).name.startswith("python") and words[1] == "-m":
        words = words[2:]
    if not words:
        data = {"command": cmd, "argv": argv, "kind": "command", "shell": shell_at is not None}
        return GateMapping.model_validate(data)
    tool, rest = Path(words[0]).name, words[1:]

    def mapping(**kw: object) -> GateMapping:
        data = {"command": cmd, "argv": argv, "shell": shell_at is not None, **kw}
        return GateMapping.model_validate(data)

    if tool == "ruff":
        sub = rest[0] if rest and not rest[0].startswith("-") else "check"
        args = rest[1:] if rest and rest[0] == sub else rest
        if sub == "format":
            checking = "--check" in args or "--diff" in args
            return mapping(kind="command" if checking else "fixer")
        if sub != "check":
            return mapping(kind="command")
        scan = _scan(args, _RUFF)
        if any(a in ("--fix", "--unsafe-fixes", "--fix-only") for a in args):
            return mapping(kind="fixer", gate="ruff", paths=scan.positional)
        config = scan.special.get("--config")
        if config is not None and "=" in config and not config.endswith(".toml"):
            # `--config "line-length = 100"` is an inline setting, not a file.
            scan.args += ["--config", config]
            config = None
        return mapping(
            kind="gate", gate="ruff", paths=scan.positional, config=config, args=scan.args
        )

    if tool == "mypy":
        scan = _scan(rest, _MYPY)
        paths = scan.positional + [p.replace(".", "/") for p in scan.packages]
        config = scan.special.get("--config-file")
        return mapping(kind="gate", gate="mypy", paths=paths, config=config, args=scan.args)

    if tool in ("pytest", "py.test"):
        scan = _scan(rest, _PYTEST)
        fail_under = None
        if (raw := scan.special.get("--cov-fail-under")) is not None:
            try:
                fail_under = float(raw)
            except ValueError as exc:
                raise StepsError(f"{cmd!r}: --cov-fail-under is not a number") from exc
        return mapping(
            kind="gate",
            gate="pytest",
            paths=scan.positional,
            cov=scan.cov,
            config=scan.special.get("--cov-config"),
            fail_under=fail_under,
            args=scan.args,
        )

    if tool == "bandit":
        scan = _scan(rest, _BANDIT)
        config = scan.special.get("--configfile")
        return mapping(
            kind="gate", gate="bandit", paths=scan.positional, config=config, args=scan.args
        )

    if tool in ("lint-imports", "import-linter"):
        config = None
        for i in range(len(rest)):
            value, used = _opt(rest, i, ("--config",))
            if used:
                config = value
        return mapping(kind="gate", gate="imports", config=config)

    if tool == "gitleaks" or (tool == "detect-secrets" and rest[:1] == ["scan"]):
        return mapping(kind="gate", gate="secrets")

    return mapping(kind="command")


# --- recognising a command --------------------------------------------------------------

# The executables a STEPS script runs as gates or fixers, and the shell's own small tools.
# A first word outside this list is a command only when it names a file (`./check.sh`,
# `.venv/bin/ruff`): a bare word such as `types-PyYAML` is a package name, not a program.
KNOWN_TOOLS = _words(
    "ruff mypy dmypy pytest py.test bandit lint-imports import-linter gitleaks detect-secrets"
    " coverage black isort flake8 pylint pyright pytype vulture radon xenon interrogate"
    " pydocstyle codespell deptry safety pip-audit semgrep pre-commit tox nox make just"
    " python python3 pip pip3 uv uvx pipx poetry pdm hatch rye conda git"
    " sh bash zsh env true false test [ echo printf cat grep rg find ls sleep cd timeout"
    " time xargs jq tee wc sort head tail diff cmp awk sed mkdir rm cp mv touch chmod"
    " npm npx node yarn pnpm docker"
)
_PYTHON = re.compile(r"^(?:python|pip|pypy)\d*(?:\.\d+)?$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def not_a_command(cmd: str) -> str | None:
    """Why `cmd` is not a command, or None when it is one.

    Only the first word decides: a known tool, a python/pip of any version, or a path to an
    executable. A JSON template or a list of package names is text, whatever block it is in.
    """
    text = cmd.strip()
    if not text:
        return "empty"
    if text[0] in "{[<\"'":
        return "a template or literal, not a command"
    try:
        argv = shlex.split(text)
    except ValueError:
        return None  # malformed quoting is reported as an error where the command is read
    words = [w for w in argv if not _ASSIGNMENT.match(w)] or argv
    first = words[0]
    name = first.rsplit("/", 1)[-1]
    if name in KNOWN_TOOLS or _PYTHON.match(name):
        return None
    if "/" in first or first.endswith((".sh", ".py")):
        return None
    return f"{first!r} is not a known tool or a path to an executable"
