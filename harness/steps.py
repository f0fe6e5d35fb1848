"""STEPS scripts: markdown the user wrote for a model, parsed into blocks, gates and guardrails.

The user's own script arrives mis-decoded (UTF-8 read as cp1252), so the text is repaired with
ftfy before anything else. Whatever the parser cannot place is kept in `unplaced`, never dropped.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import ftfy
from pydantic import BaseModel, Field

from harness.errors import StepsError
from harness.policy import Policy

GateName = Literal["ruff", "mypy", "pytest", "bandit", "imports", "secrets"]
GuardrailKind = Literal[
    "max_lines_per_file",
    "no_network_tests",
    "utc",
    "lane_separation",
    "security_clean",
    "progress_log",
    "other",
]
Metric = Literal["coverage", "tests_failed", "ruff", "mypy", "bandit", "imports", "secrets"]


class GateMapping(BaseModel):
    """How one command of the script maps onto the configured gates."""

    command: str = Field(description="the command as written in the script")
    argv: list[str] = Field(description="the command split with shlex")
    kind: Literal["gate", "command", "fixer"] = Field(
        description="gate: a configured gate; command: run as is, judged by exit code; "
        "fixer: rewrites code, never run as a gate"
    )
    gate: GateName | None = Field(None, description="the configured gate it maps onto")
    paths: list[str] = Field(default_factory=list, description="paths the command checks")
    config: str | None = Field(None, description="tool config file named by the command")
    cov: list[str] = Field(default_factory=list, description="pytest --cov targets")
    fail_under: float | None = Field(None, description="pytest --cov-fail-under")
    args: list[str] = Field(
        default_factory=list, description="the command's other options, carried to the gate"
    )
    shell: bool = Field(
        False, description="uses pipes or redirects: mapped on the part before them"
    )


class Target(BaseModel):
    """A measurable goal: `metric op value`, e.g. coverage >= 60 or ruff <= 0."""

    metric: Metric
    op: Literal[">=", "<="]
    value: float
    source: str = Field(description="the text the target was read from")


class Block(BaseModel):
    number: int
    title: str
    goals: list[str] = Field(
        default_factory=list, description="bullets and prose; nested bullets carry their parent"
    )
    gate_commands: list[str] = Field(default_factory=list, description="commands, in order")
    gates: list[GateMapping] = Field(default_factory=list, description="one per gate command")
    targets: list[Target] = Field(default_factory=list)
    final: bool = Field(False, description="the script's final gates")


class Guardrail(BaseModel):
    text: str
    kind: GuardrailKind
    value: int | str | None = Field(None, description="20 for '<=20 lines/file', a log path")
    source: Literal["guardrails", "intro"] = "guardrails"


class StepsScript(BaseModel):
    source: str
    title: str
    repaired_encoding: bool = Field(description="the text was mis-decoded and repaired")
    intro: str = ""
    goals: list[str] = Field(default_factory=list, description="the script-wide goals section")
    blocks: list[Block]
    final_gates: list[str] = Field(default_factory=list, description="the final block's commands")
    guardrails: list[Guardrail] = Field(default_factory=list)
    output_keys: list[str] = Field(default_factory=list, description="top-level output JSON keys")
    output_subkeys: dict[str, list[str]] = Field(
        default_factory=dict, description="keys of nested objects, e.g. pytest: passed, failed"
    )
    output_template: str = ""
    progress_log: str | None = None
    unplaced: list[str] = Field(
        default_factory=list, description="text the parser could not place, verbatim"
    )

    def block(self, number: int) -> Block:
        for b in self.blocks:
            if b.number == number:
                return b
        raise StepsError(f"{self.source}: no block {number}")

    def max_lines_per_file(self) -> int | None:
        for g in self.guardrails:
            if g.kind == "max_lines_per_file" and isinstance(g.value, int):
                return g.value
        return None


# --- encoding ---------------------------------------------------------------------------

# Only the encoding repairs: a clean script's quotes, widths and ligatures stay as written.
_FTFY = ftfy.TextFixerConfig(
    unescape_html=False,
    remove_terminal_escapes=False,
    fix_latin_ligatures=False,
    fix_character_width=False,
    uncurl_quotes=False,
    fix_line_breaks=False,
    remove_control_chars=False,
    normalization=None,
    explain=False,
)


def repair_text(text: str) -> tuple[str, bool]:
    """(repaired text, whether anything was repaired)."""
    fixed = ftfy.fix_text(text, _FTFY)
    return fixed, fixed != text


def load_steps(path: str | Path) -> StepsScript:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise StepsError(f"cannot read STEPS script {p}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # A script saved by a cp1252 editor is legible as cp1252; anything else is not text.
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise StepsError(f"cannot read STEPS script {p}: not UTF-8 or cp1252 text") from exc
    return parse_steps(text, str(p))


# --- markdown elements --------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
_BULLET = re.compile(r"^(\s*)(?:[-*+]|\d+[.)])\s+(.*)$")
_RULE = re.compile(r"^\s*([-*_])(?:\s*\1){2,}\s*$")
_BLOCK_HEAD = re.compile(
    r"^(?:block|step)\s*#?\s*(\d+)\b\s*[\u2014\u2013:.\-]*\s*(.*)$", re.IGNORECASE
)
_EMPHASIS = re.compile(r"(\*\*|__|\*)(.+?)\1")

_SHELL_LANGS = {"", "bash", "sh", "shell", "console", "zsh", "shell-session"}


@dataclass
class _Elem:
    kind: Literal["heading", "bullet", "para", "quote", "fence"]
    text: str
    line: int
    indent: int = 0
    lang: str = ""
    code: list[str] = field(default_factory=list)


@dataclass
class _Section:
    level: int
    heading: str | None
    line: int
    lines: list[tuple[int, str]] = field(default_factory=list)


def _plain(text: str) -> str:
    """Markdown emphasis removed, for matching labels and titles."""
    return _EMPHASIS.sub(r"\2", text).strip()


def _split_sections(lines: list[str], start: int) -> list[_Section]:
    sections = [_Section(0, None, start + 1)]
    fence: str | None = None
    for i in range(start, len(lines)):
        line = lines[i]
        if fence is None:
            if m := _FENCE.match(line):
                fence = m.group(1)
            elif h := _HEADING.match(line):
                sections.append(_Section(len(h.group(1)), h.group(2), i + 1))
                continue
        elif line.strip().startswith(fence) and not line.strip().strip(fence[0]):
            fence = None
        sections[-1].lines.append((i + 1, line))
    return sections


def _elements(lines: list[tuple[int, str]]) -> list[_Elem]:
    out: list[_Elem] = []
    i = 0
    prev_blank = True
    while i < len(lines):
        num, line = lines[i]
        if not line.strip() or _RULE.match(line):
            prev_blank = True
            i += 1
            continue
        if m := _FENCE.match(line):
            marker, code = m.group(1), []
            i += 1
            while i < len(lines):
                closing = lines[i][1].strip()
                if closing.startswith(marker[0] * len(marker)) and not closing.strip(marker[0]):
                    break
                code.append(lines[i][1])
                i += 1
            out.append(_Elem("fence", "", num, lang=m.group(2).lower(), code=code))
            i += 1
            prev_blank = True
            continue
        if m := _BULLET.match(line):
            indent = len(m.group(1).expandtabs(4))
            out.append(_Elem("bullet", m.group(2).strip(), num, indent=indent))
        elif line.lstrip().startswith(">"):
            text = line.lstrip()[1:].strip()
            if out and out[-1].kind == "quote" and not prev_blank:
                out[-1].text += " " + text
            else:
                out.append(_Elem("quote", text, num))
        elif out and out[-1].kind in ("para", "bullet") and not prev_blank:
            out[-1].text += " " + line.strip()  # a wrapped line continues its paragraph/bullet
        else:
            out.append(_Elem("para", line.strip(), num))
        prev_blank = False
        i += 1
    return out


def _section_text(sec: _Section) -> str:
    body_lines = [line for _, line in sec.lines]
    while body_lines and (not body_lines[-1].strip() or _RULE.match(body_lines[-1])):
        body_lines.pop()  # a trailing `---` separates sections; it is not content
    body = "\n".join(body_lines).strip()
    head = f"{'#' * sec.level} {sec.heading}" if sec.heading is not None else ""
    return "\n".join(part for part in (head, body) if part)


def _flatten_bullets(elems: list[_Elem]) -> list[str]:
    """Leaf bullets with their parents' text in front; a parent alone adds nothing new."""
    out: list[str] = []
    stack: list[tuple[int, str]] = []
    for idx, e in enumerate(elems):
        while stack and stack[-1][0] >= e.indent:
            stack.pop()
        nxt = elems[idx + 1] if idx + 1 < len(elems) else None
        if nxt is not None and nxt.indent > e.indent:
            stack.append((e.indent, e.text))
            continue
        text = e.text
        for _, parent in reversed(stack):
            sep = " " if parent.rstrip().endswith(":") else ": "
            text = parent.rstrip() + sep + text
        out.append(text)
    return out


def _prose(elems: list[_Elem]) -> list[str]:
    """Bullets (flattened) and paragraphs in document order."""
    out: list[str] = []
    run: list[_Elem] = []
    for e in [*elems, None]:
        if e is not None and e.kind == "bullet":
            run.append(e)
            continue
        if run:
            out.extend(_flatten_bullets(run))
            run = []
        if e is not None and e.kind in ("para", "quote"):
            out.append(e.text)
    return out


# --- commands -----------------------------------------------------------------------------

_CMD_LABEL = re.compile(r"^(?:gates?|run|commands?|checks?)\s*:?$", re.IGNORECASE)
_OUTPUT_LABEL = re.compile(r"^output(?:\s+json)?\s*:?$", re.IGNORECASE)
_INLINE_CMD = re.compile(r"\b(?:run|gate|snapshot|command)\s*:\s*`([^`]+)`", re.IGNORECASE)
_LEADING_CMD_LABEL = re.compile(r"^(?:run|gate|command)\s*:", re.IGNORECASE)


def _split_and(line: str) -> list[str]:
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


def _fence_commands(code: list[str]) -> list[str]:
    cmds: list[str] = []
    pending = ""
    for raw in code:
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("$ "):
            line = line[2:]
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        cmds.extend(_split_and(pending + line))
        pending = ""
    if pending.strip():
        cmds.extend(_split_and(pending))
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


@dataclass
class _Scan:
    positional: list[str] = field(default_factory=list)
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
            break
        if not tok.startswith("-") or tok == "-":
            out.positional.append(_strip_path(tok))
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


# --- targets ------------------------------------------------------------------------------

_METRIC_WORDS: list[tuple[Metric, re.Pattern[str]]] = [
    ("coverage", re.compile(r"\bcoverage\b|--cov\b", re.IGNORECASE)),
    ("ruff", re.compile(r"\bruff\b", re.IGNORECASE)),
    ("mypy", re.compile(r"\bmypy\b", re.IGNORECASE)),
    ("bandit", re.compile(r"\bbandit\b", re.IGNORECASE)),
]
_AT_LEAST = re.compile(r"(?:≥|>=|\bto\b|\bat least\b)\s*(\d+(?:\.\d+)?)\s*%")
# A count goal ("ruff to 0", "target = 0"); numbers with a unit are limits of another kind.
_AT_MOST = re.compile(
    r"(?:\bto\b|=|≤|<=|\bor\b|\btarget\b:?)\s*(\d+)\b(?!\s*%|\.\d|\s*(?:lines?|files?|days?|hours?|minutes?|seconds?)\b)",
    re.IGNORECASE,
)
_GREEN = re.compile(r"\bgreen\b", re.IGNORECASE)


def _targets(block: Block) -> list[Target]:
    found: list[Target] = []
    title_metrics = [m for m, rx in _METRIC_WORDS if rx.search(block.title)]
    for text in [block.title, *block.goals]:
        plain = _plain(text)
        metrics = [m for m, rx in _METRIC_WORDS if rx.search(plain)] or title_metrics
        if "coverage" in metrics and (m := _AT_LEAST.search(plain)):
            found.append(Target(metric="coverage", op=">=", value=float(m.group(1)), source=text))
        count = _AT_MOST.search(plain)
        for metric in metrics:
            if metric == "coverage":
                continue
            if count:
                found.append(Target(metric=metric, op="<=", value=int(count.group(1)), source=text))
            elif _GREEN.search(plain):
                found.append(Target(metric=metric, op="<=", value=0, source=text))
    for g in block.gates:
        if g.kind != "gate" or g.gate is None:
            continue
        if g.gate == "pytest":
            found.append(Target(metric="tests_failed", op="<=", value=0, source=g.command))
            if g.fail_under is not None:
                found.append(
                    Target(metric="coverage", op=">=", value=g.fail_under, source=g.command)
                )
        else:
            # The command passes only when the tool reports nothing.
            found.append(Target(metric=g.gate, op="<=", value=0, source=g.command))
    unique: dict[tuple[str, str, float], Target] = {}
    for t in found:
        unique.setdefault((t.metric, t.op, t.value), t)
    return list(unique.values())


# --- guardrails ---------------------------------------------------------------------------

_MAX_LINES = re.compile(
    r"(?:≤|<=|=<|\bat most\b|\bmax(?:imum)?\.?|\bno more than\b|\bup to\b)\s*(\d+)\s*"
    r"(?:changed\s+)?lines?\s*(?:/|\bper\b|\ba\b|\beach\b)\s*file",
    re.IGNORECASE,
)
_LOG_PATH = re.compile(
    r"\b(?:append|log|record|write)\w*\b[^`]*`([^`\s]+\.(?:md|txt|log|jsonl?))`", re.IGNORECASE
)
_KINDS: list[tuple[GuardrailKind, re.Pattern[str]]] = [
    ("no_network_tests", re.compile(r"\bnetwork\b|nondeterministic|non-deterministic|flaky", re.I)),
    ("utc", re.compile(r"\butc\b|time\s*zone", re.IGNORECASE)),
    ("lane_separation", re.compile(r"\blanes?\b", re.IGNORECASE)),
    ("security_clean", re.compile(r"\bsecurity\b|\bbandit\b|\bgitleaks\b|\bsecrets?\b", re.I)),
]


def classify_guardrail(text: str, source: Literal["guardrails", "intro"]) -> Guardrail:
    if m := _MAX_LINES.search(text):
        return Guardrail(text=text, kind="max_lines_per_file", value=int(m.group(1)), source=source)
    if m := _LOG_PATH.search(text):
        return Guardrail(text=text, kind="progress_log", value=m.group(1), source=source)
    for kind, rx in _KINDS:
        if rx.search(text):
            return Guardrail(text=text, kind=kind, source=source)
    return Guardrail(text=text, kind="other", source=source)


def _intro_guardrails(intro: str) -> list[Guardrail]:
    out: list[Guardrail] = []
    if m := _MAX_LINES.search(intro):
        out.append(classify_guardrail(m.group(0), "intro"))
    if m := _LOG_PATH.search(intro):
        out.append(classify_guardrail(m.group(0), "intro"))
    return out


# --- output JSON --------------------------------------------------------------------------


def _output_keys(template: str) -> tuple[list[str], dict[str, list[str]]]:
    """Keys of a JSON-like template whose values are placeholders (`<bool>`, X), by depth."""
    top: list[str] = []
    nested: dict[str, list[str]] = {}
    depth = 0
    parents: list[str | None] = []
    last_key: str | None = None
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"\s*(:)?|[{}]', template):
        tok = m.group(0)
        if tok == "{":
            depth += 1
            parents.append(last_key if depth > 1 else None)
        elif tok == "}":
            depth -= 1
            if parents:
                parents.pop()
        elif m.group(2):
            key = m.group(1)
            last_key = key
            if depth == 1:
                top.append(key)
            elif depth > 1 and parents and parents[-1] is not None:
                nested.setdefault(parents[-1], []).append(key)
    return top, nested


# --- the parser ---------------------------------------------------------------------------


class _Builder:
    def __init__(self, source: str) -> None:
        self.source = source
        self.unplaced: list[str] = []
        self.output_template = ""

    def block(self, number: int, title: str, elems: list[_Elem], final: bool) -> Block:
        commands: list[str] = []
        goals_elems: list[_Elem] = []
        label: Literal["cmd", "output"] | None = None
        for e in elems:
            if e.kind == "fence":
                if label == "output":
                    self.set_output("\n".join(e.code).strip(), e.line)
                elif label == "cmd" or e.lang in _SHELL_LANGS:
                    commands.extend(self._checked(_fence_commands(e.code), e.line))
                else:
                    self.unplaced.append(
                        f"BLOCK {number}: code block ({e.lang}) at line {e.line}:\n"
                        + "\n".join(e.code)
                    )
                label = None
                continue
            plain = _plain(e.text)
            if e.kind in ("para", "heading") and _CMD_LABEL.match(plain):
                label = "cmd"
                continue
            if e.kind in ("para", "heading") and _OUTPUT_LABEL.match(plain):
                label = "output"
                continue
            label = None
            if m := _INLINE_CMD.search(e.text):
                commands.extend(self._checked(_split_and(m.group(1)), e.line))
                if _LEADING_CMD_LABEL.match(plain):
                    continue  # "Run: `cmd`" is the command, not a goal
            goals_elems.append(e)
        goals = _prose(goals_elems)
        b = Block(number=number, title=title, goals=goals, gate_commands=commands, final=final)
        b.gates = [map_command(c) for c in commands]
        b.targets = _targets(b)
        return b

    def set_output(self, template: str, line: int) -> None:
        if self.output_template:
            self.unplaced.append(f"second output template at line {line}:\n{template}")
        else:
            self.output_template = template

    def _checked(self, cmds: list[str], line: int) -> list[str]:
        for c in cmds:
            try:
                shlex.split(c)
            except ValueError as exc:
                raise StepsError(
                    f"{self.source}:{line}: cannot parse command {c!r}: {exc}"
                ) from exc
        return cmds


def _front_matter(lines: list[str]) -> int:
    """Index of the first line after a `---` YAML front matter, or 0."""
    if lines and lines[0].strip() == "---":
        for i in range(1, len(lines)):
            if lines[i].strip() in ("---", "..."):
                return i + 1
    return 0


def parse_steps(text: str, source: str = "<steps>") -> StepsScript:
    fixed, repaired = repair_text(text)
    lines = fixed.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start = _front_matter(lines)
    builder = _Builder(source)
    if start:
        builder.unplaced.append("\n".join(lines[:start]).strip())

    title: str | None = None
    intro_parts: list[str] = []
    goals: list[str] = []
    blocks: list[Block] = []
    guardrails: list[Guardrail] = []
    # Block sections with their subsections folded in: (heading level, number, title, elems).
    pending: list[tuple[int, int | None, str, list[_Elem]]] = []

    for sec in _split_sections(lines, start):
        elems = _elements(sec.lines)
        heading = _plain(sec.heading) if sec.heading is not None else None
        if heading is None:
            intro_parts.extend(_prose(elems))
            _unplace_fences(builder, elems, "preamble")
            continue
        block_m = _BLOCK_HEAD.match(heading)
        final = re.search(r"\bfinal\s+gates?\b", heading, re.IGNORECASE) is not None
        if block_m or final:
            number = int(block_m.group(1)) if block_m else None
            name = block_m.group(2).strip() if block_m else heading
            pending.append((sec.level, number, name or heading, elems))
            continue
        if pending and sec.level > pending[-1][0]:
            # A subsection (e.g. `### Gate`) belongs to the block above it.
            pending[-1][3].append(_Elem("heading", heading, sec.line))
            pending[-1][3].extend(elems)
            continue
        if title is None and sec.level == 1:
            title = heading
            intro_parts.extend(_prose(elems))
            _unplace_fences(builder, elems, heading)
            continue
        if re.search(r"guardrails?|constraints|\brules\b", heading, re.IGNORECASE):
            guardrails.extend(classify_guardrail(t, "guardrails") for t in _prose(elems))
            _unplace_fences(builder, elems, heading)
            continue
        if re.search(r"\bgoals?\b|\bobjectives?\b", heading, re.IGNORECASE):
            goals.extend(_prose(elems))
            _unplace_fences(builder, elems, heading)
            continue
        if _OUTPUT_LABEL.match(heading):
            fences = [e for e in elems if e.kind == "fence"]
            if fences:
                builder.set_output("\n".join(fences[0].code).strip(), fences[0].line)
                rest = [e.text for e in elems if e.kind != "fence"]
                if rest:
                    builder.unplaced.append(f"{heading}: " + "\n".join(rest))
                _unplace_fences(builder, fences[1:], heading)
                continue
        builder.unplaced.append(_section_text(sec))

    numbers_seen: set[int] = set()
    next_number = max((n for _, n, _, _ in pending if n is not None), default=0) + 1
    for _, number, name, elems in pending:
        is_final = re.search(r"\bfinal\s+gates?\b", name, re.IGNORECASE) is not None
        if number is None:
            number, next_number = next_number, next_number + 1
        if number in numbers_seen:
            raise StepsError(f"{source}: block {number} appears twice")
        numbers_seen.add(number)
        blocks.append(builder.block(number, name, elems, is_final))

    if not blocks:
        raise StepsError(f"{source}: no blocks found (expected headings like '## BLOCK 1 — title')")

    intro = "\n\n".join(intro_parts)
    kinds = {g.kind for g in guardrails}
    guardrails.extend(g for g in _intro_guardrails(intro) if g.kind not in kinds)
    progress_log = next(
        (str(g.value) for g in guardrails if g.kind == "progress_log" and g.value), None
    )
    final_gates = [c for b in blocks if b.final for c in b.gate_commands]
    keys, subkeys = _output_keys(builder.output_template)
    return StepsScript(
        source=source,
        title=title or Path(source).stem,
        repaired_encoding=repaired,
        intro=intro,
        goals=goals,
        blocks=blocks,
        final_gates=final_gates,
        guardrails=guardrails,
        output_keys=keys,
        output_subkeys=subkeys,
        output_template=builder.output_template,
        progress_log=progress_log,
        unplaced=[u for u in builder.unplaced if u.strip()],
    )


def _unplace_fences(builder: _Builder, elems: list[_Elem], where: str) -> None:
    for e in elems:
        if e.kind == "fence":
            builder.unplaced.append(f"{where}: code block at line {e.line}:\n" + "\n".join(e.code))


# --- policy -------------------------------------------------------------------------------


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


def remap_paths(script: StepsScript, mapping: dict[str, str]) -> StepsScript:
    """The script with the paths its gate commands name rewritten: `--path lukhas=src/click`
    points a script written for one repository at another without editing it."""
    if not mapping:
        return script
    new = script.model_copy(deep=True)
    for block in new.blocks:
        for m in block.gates:
            m.paths = [p for p in (_remap(p, mapping) for p in m.paths) if p]
            m.cov = [c for c in (_remap(c, mapping) for c in m.cov) if c]
            if m.config is not None:
                m.config = _remap(m.config, mapping)
    return new


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
