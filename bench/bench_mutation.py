"""The mutation layer's cost per patch on a real project, and its verdicts.

    .venv/bin/python bench/bench_mutation.py prepare      # click 7.1.2 under /tmp/bench-mutation
    .venv/bin/python bench/bench_mutation.py run [--max-mutants 30] [--budget 180] [--only real]
        [--baseline REV] [--repo CLONE]

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

With `--baseline REV`, `git archive REV harness policies` of this checkout is a second copy of
the layer: each patch is judged by it and then by this checkout, each in a process of its own,
one after the other, so both see the same machine load; the table gives both times, their
ratio, and whether the verdicts (accepted, rules, score before) agree. `--repo` judges in a
clone of the prepared repository (the venv is shared), so two runs do not write to one tree.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from sdist import TEST_TOOLS, prepare_sdist
from sdist import git as sdist_git

from harness.guard.mutation import MutationResult, check_patch_tests
from harness.policy import Policy, parse_policy

HERE = Path(__file__).resolve().parent.parent
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


def patches() -> list[tuple[str, dict[str, str]]]:
    return new_tests() + weakened() + weakened(refactor=True) + source_patches()


def one(name: str, max_mutants: int, budget: float) -> None:
    """Judge one patch with the harness this process imports; print the result as JSON."""
    files = dict(patches())[name]
    t0 = time.monotonic()
    result = judge(files, policy(max_mutants, budget, source=name.startswith("source")))
    took = time.monotonic() - t0
    if git("status", "--porcelain"):
        raise SystemExit("the worktree is not clean after a patch")
    import harness

    out = {"seconds": took, "harness": harness.__file__, "result": result.model_dump(mode="json")}
    print(json.dumps(out))


def judged_by(
    impl: Path, name: str, max_mutants: int, budget: float
) -> tuple[MutationResult, float]:
    argv = [sys.executable, __file__, "one", name, "--repo", str(REPO),
            "--max-mutants", str(max_mutants), "--budget", str(budget)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(impl)}
    proc = subprocess.run(argv, cwd=impl, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{name} under {impl}: exit {proc.returncode}: {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.splitlines()[-1])
    if not Path(out["harness"]).resolve().is_relative_to(impl.resolve()):
        raise SystemExit(f"{name}: imported {out['harness']}, not the copy under {impl}")
    # The baseline's result may lack fields added since; read what both have.
    return MutationResult.model_validate(out["result"]), float(out["seconds"])


def compare(max_mutants: int, budget: float, only: str, baseline: str) -> None:
    head = git("rev-parse", "HEAD").strip()
    print(f"click 7.1.2 at {head[:12]}; max_mutants {max_mutants}, budget {budget:g}s")
    print(f"baseline {baseline} against this checkout, each patch judged by both in turn")
    print(f"load average before: {os.getloadavg()[0]:.2f}\n")
    print("| patch | verdict | rules | mutants run/selected (base, now) | score before -> after "
          "(base; now) | seconds base | seconds now | now/base |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    totals = {"base": [], "now": []}
    differ = 0
    with tempfile.TemporaryDirectory(prefix="bench-mutation-base-") as tmp:
        base_dir = Path(tmp)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", baseline, "harness", "policies"],
            cwd=HERE, check=True, capture_output=True,
        ).stdout  # fmt: skip
        (base_dir / "base.tar").write_bytes(archive)
        with tarfile.open(base_dir / "base.tar") as tar:
            tar.extractall(base_dir, filter="data")
        for name, _ in patches():
            if not name.startswith(only):
                continue
            old, old_s = judged_by(base_dir, name, max_mutants, budget)
            new, new_s = judged_by(HERE, name, max_mutants, budget)
            totals["base"].append(old_s)
            totals["now"].append(new_s)
            same = (
                old.accepted == new.accepted
                and [v.rule for v in old.violations] == [v.rule for v in new.violations]
                and old.score_before == new.score_before
            )
            differ += not same
            rules = ", ".join(v.rule for v in new.violations) or "-"
            verdict = ("accepted" if new.accepted else "refused") + ("" if same else " (DIFFERS)")
            print(
                f"| {name} | {verdict} | {rules} | {old.tried}/{old.mutants}, "
                f"{new.tried}/{new.mutants} | {_score(old)}; {_score(new)} | {old_s:.1f} | "
                f"{new_s:.1f} | {new_s / old_s:.2f} |"
            )
    base_sum, now_sum = sum(totals["base"]), sum(totals["now"])
    print(
        f"\nbaseline: median {statistics.median(totals['base']):.1f}s, total {base_sum:.0f}s; "
        f"now: median {statistics.median(totals['now']):.1f}s, total {now_sum:.0f}s; "
        f"now/base {now_sum / base_sum:.2f}; verdicts that differ: {differ}"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def _score(result: MutationResult) -> str:
    if result.score_before is None or result.score_after is None:
        return "-"
    return (
        f"{result.score_before:.2f} -> {result.score_after:.2f} "
        f"({result.score_mutants}, {len(result.lost)} lost)"
    )


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
    for name, files in patches():
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
    global REPO
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("prepare")
    r = sub.add_parser("run")
    o = sub.add_parser("one")
    o.add_argument("name")
    for cmd in (r, o):
        cmd.add_argument("--max-mutants", type=int, default=30)
        cmd.add_argument("--budget", type=float, default=180.0)
        cmd.add_argument("--repo", type=Path, default=REPO, help="a clone of the prepared repo")
    r.add_argument("--only", default="", help="patches whose name starts with this")
    r.add_argument("--baseline", help="git revision of this checkout to compare against")
    args = parser.parse_args()
    if args.cmd == "prepare":
        prepare()
        return
    REPO = args.repo.resolve()
    if args.cmd == "one":
        one(args.name, args.max_mutants, args.budget)
    elif args.baseline:
        compare(args.max_mutants, args.budget, args.only, args.baseline)
    else:
        run(args.max_mutants, args.budget, args.only)


if __name__ == "__main__":
    main()
