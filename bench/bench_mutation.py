"""The mutation layer's cost per patch on a real project, and its verdicts.

    .venv/bin/python bench/bench_mutation.py prepare      # click 7.1.2 under /tmp/bench-mutation
    .venv/bin/python bench/bench_mutation.py run [--max-mutants 30] [--budget 180] [--only real]

`prepare` unpacks the click 7.1.2 sdist into a git repository and makes its own venv with
pytest, pytest-cov and coverage (needs PyPI once). `run` writes patches that touch tests, one at
a time, on the clean start commit, and judges each with `check_patch_tests` as `harness apply`
does (the patch is in the worktree, HEAD is the tree before it); then resets the tree. The
patches:

- real-N: a new test module asserting the exact results of a few of click's helpers (the
  expected values are computed by calling them in the target's venv first);
- vacuous-N: the same calls, each asserted equal to itself;
- weakened-N: an existing test whose `assert a == b` lines become `assert a is not None`;
- refactored-N: the same test with each `assert a == b` written `assert b == a` (no weaker);
- source-N (with `[guard.mutation] source_patches = true`): `click.format_filename` refactored
  without a change of behaviour (source-0), or answering the literal inputs of
  `test_filename_formatting` before its real code (source-1, special-cased).

It prints, per patch, the wall seconds, the mutants tried, caught by a check and killed (by a
check, an exception, a hang or a crash), the score of the tests that cover the changed code
before and after on how many mutants, and the verdict; then the median seconds per patch.
Expected: real and refactored accepted, vacuous and weakened refused; source-0 accepted.
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import subprocess
import time
from pathlib import Path

from sdist import TEST_TOOLS, prepare_sdist
from sdist import git as sdist_git

from harness.guard.mutation import MutationResult, check_patch_tests
from harness.policy import Policy, parse_policy

ROOT = Path("/tmp/bench-mutation")
REPO = ROOT / "click-7.1.2"
VENV = ROOT / "venv"
# Calls whose results a real test asserts; grouped, one group per new test module.
CALLS = [
    ("click.parser", ["split_opt('--foo')", "split_opt('x')", "normalize_opt('-F', None)"]),
    (
        "click.utils",
        [
            "make_default_short_help('Hello world. Second sentence here.', 20)",
            "make_default_short_help('short', 45)",
            "make_str(b'abc')",
        ],
    ),
    (
        "click.formatting",
        [
            "join_options(['--foo', '-f'])",
            "wrap_text('a b c d e f g h', 6)",
            "measure_table([('a', 'bbb'), ('cc', 'd')])",
        ],
    ),
]
# Existing tests to weaken: file, test function.
WEAKEN = [
    ("tests/test_formatting.py", "test_basic_functionality"),
    ("tests/test_utils.py", "test_echo"),
    ("tests/test_utils.py", "test_filename_formatting"),
]


def policy(max_mutants: int, budget: float, *, source: bool = False) -> Policy:
    return parse_policy(
        f"""
[gates]
python = "{VENV / "bin" / "python"}"
pythonpath = ["src"]
[gates.pytest]
paths = ["tests"]
cov = ["click"]
args = ["-q"]
[guard.mutation]
max_mutants = {max_mutants}
budget_seconds = {budget}
source_patches = {str(source).lower()}
"""
    )


def git(*args: str) -> str:
    return sdist_git(REPO, *args)


def prepare() -> None:
    prepare_sdist("click", "7.1.2", REPO, VENV, tools=TEST_TOOLS, editable=False)
    print(f"{REPO} at {git('rev-parse', 'HEAD').strip()}, venv {VENV}")


def evaluate(module: str, calls: list[str]) -> list[tuple[str, str]]:
    """(call, repr of its result) in the target's venv, for the calls that return."""
    script = (
        f"import sys; sys.path.insert(0, 'src')\nfrom {module} import *\nfrom {module} import "
        + ", ".join(sorted({c.split("(")[0] for c in calls}))
        + "\nfor c in sys.argv[1:]:\n    try:\n        print(repr(eval(c)))\n"
        "    except Exception:\n        print('!')\n"
    )
    out = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", script, *calls],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    return [(c, r) for c, r in zip(calls, out, strict=True) if r != "!"]


def new_tests() -> list[tuple[str, dict[str, str]]]:
    patches: list[tuple[str, dict[str, str]]] = []
    for n, (module, calls) in enumerate(CALLS):
        pairs = evaluate(module, calls)
        names = ", ".join(sorted({c.split("(")[0] for c, _ in pairs}))
        head = f"from {module} import {names}\n\n\n"
        real = (
            head + "def test_results():\n" + "".join(f"    assert {c} == {r}\n" for c, r in pairs)
        )
        vacuous = head + "def test_results():\n"
        for i, (c, _) in enumerate(pairs):
            vacuous += f"    r{i} = {c}\n    assert r{i} == r{i}\n"
        path = f"tests/test_bench_{n}.py"
        patches += [(f"real-{n}", {path: real}), (f"vacuous-{n}", {path: vacuous})]
    return patches


def weakened(*, refactor: bool = False) -> list[tuple[str, dict[str, str]]]:
    patches: list[tuple[str, dict[str, str]]] = []
    for n, (path, name) in enumerate(WEAKEN):
        text = (REPO / path).read_text(encoding="utf-8")
        tree = ast.parse(text)
        fn = next(f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == name)
        lines = text.splitlines(keepends=True)
        asserts = [
            a
            for a in ast.walk(fn)
            if isinstance(a, ast.Assert)
            and isinstance(a.test, ast.Compare)
            and isinstance(a.test.ops[0], ast.Eq)
        ]
        for a in sorted(asserts, key=lambda a: a.lineno, reverse=True):
            line = lines[a.lineno - 1]
            indent = line[: len(line) - len(line.lstrip())]
            left = ast.unparse(a.test.left)
            right = ast.unparse(a.test.comparators[0])
            end = a.end_lineno or a.lineno
            check = f"({right}) == ({left})" if refactor else f"({left}) is not None"
            lines[a.lineno - 1 : end] = [f"{indent}assert {check}\n"]
        kind = "refactored" if refactor else "weakened"
        patches.append((f"{kind}-{n}", {path: "".join(lines)}))
    return patches


FORMAT_FILENAME = """\
    if shorten:
        filename = os.path.basename(filename)
    return filename_to_ui(filename)
"""
SOURCE = [
    # The same behaviour, written differently.
    """\
    shown = os.path.basename(filename) if shorten else filename
    return filename_to_ui(shown)
""",
    # The literal inputs of test_filename_formatting answered before the real code.
    """\
    answers = {
        (b"foo.txt", False): u"foo.txt",
        (b"/x/foo.txt", False): u"/x/foo.txt",
        (u"/x/foo.txt", False): u"/x/foo.txt",
        (u"/x/foo.txt", True): u"foo.txt",
        (b"/x/foo\\xff.txt", True): u"foo\\ufffd.txt",
    }
    if (filename, shorten) in answers:
        return answers[(filename, shorten)]
"""
    + FORMAT_FILENAME,
]


def source_patches() -> list[tuple[str, dict[str, str]]]:
    path = "src/click/utils.py"
    text = (REPO / path).read_text(encoding="utf-8")
    if FORMAT_FILENAME not in text:
        raise SystemExit(f"format_filename's body is not where expected in {path}")
    return [
        (f"source-{n}", {path: text.replace(FORMAT_FILENAME, body)})
        for n, body in enumerate(SOURCE)
    ]


def judge(files: dict[str, str], pol: Policy) -> MutationResult:
    for path, text in files.items():
        (REPO / path).write_text(text, encoding="utf-8")
    try:
        contents: dict[str, bytes | None] = {p: t.encode() for p, t in files.items()}
        return check_patch_tests(REPO, pol, contents)
    finally:
        git("checkout", "-q", "--", ".")
        git("clean", "-qfd")


def run(max_mutants: int, budget: float, only: str) -> None:
    pol = policy(max_mutants, budget)
    with_source = policy(max_mutants, budget, source=True)
    head = git("rev-parse", "HEAD").strip()
    print(f"click 7.1.2 at {head[:12]}; max_mutants {max_mutants}, budget {budget:g}s")
    print(f"load average before: {os.getloadavg()[0]:.2f}\n")
    print("| patch | verdict | rules | mutants tried/selected | caught/killed/tried per test | "
          "score before -> after (mutants, lost) | seconds |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    seconds: list[float] = []
    patches = new_tests() + weakened() + weakened(refactor=True) + source_patches()
    for name, files in patches:
        if not name.startswith(only):
            continue
        t0 = time.monotonic()
        result = judge(files, with_source if name.startswith("source") else pol)
        took = time.monotonic() - t0
        seconds.append(took)
        rules = ", ".join(v.rule for v in result.violations) or "-"
        kills = ", ".join(f"{k.caught}/{k.killed}/{k.tried}" for k in result.tests)
        score = (
            f"{result.score_before:.2f} -> {result.score_after:.2f} "
            f"({result.score_mutants}, {len(result.lost)} lost)"
            if result.score_before is not None and result.score_after is not None
            else "-"
        )
        verdict = "accepted" if result.accepted else "refused"
        print(
            f"| {name} | {verdict} | {rules} | {result.tried}/{result.mutants} | {kills} | "
            f"{score} | {took:.1f} |"
        )
        if git("status", "--porcelain"):
            raise SystemExit("the worktree is not clean after a patch")
    print(f"\nmedian {statistics.median(seconds):.1f}s per patch, max {max(seconds):.1f}s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("prepare")
    r = sub.add_parser("run")
    r.add_argument("--max-mutants", type=int, default=30)
    r.add_argument("--budget", type=float, default=180.0)
    r.add_argument("--only", default="", help="patches whose name starts with this")
    args = parser.parse_args()
    if args.cmd == "prepare":
        prepare()
    else:
        run(args.max_mutants, args.budget, args.only)


if __name__ == "__main__":
    main()
