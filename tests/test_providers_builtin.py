from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.gates.ruff import check_argv, lint_command
from harness.gates.runner import context_for
from harness.gitutil import change_key, commit_change_key, open_repo
from harness.guard.check import check_patch
from harness.policy import GuardConfig, resolve_policy
from harness.providers.base import ModelRequest
from harness.providers.builtin import (
    CANNOT,
    FORMAT,
    SAFE,
    UNSAFE,
    BuiltinProvider,
    Work,
    _new,
    build_checked_fix_patch,
    build_fix_patch,
    item_rule,
    item_work,
    notes_at_end,
    ruff_stdin_linter,
)
from tests.conftest import git

MESSY = "".join(f"import mod{i}\n" for i in range(30)) + "\n\ndef f():\n    return 1\n"


def ruff_findings(repo: Path, path: str) -> list[dict[str, object]]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--isolated",
            "--select",
            "F401",
            "--output-format",
            "json",
            path,
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    rows = json.loads(out)
    return [
        {
            "gate": "ruff",
            "code": r["code"],
            "path": path,
            "line": r["location"]["row"],
            "message": r["message"],
            "fix": r["fix"],
        }
        for r in rows
    ]


def numstat(repo: Path) -> tuple[int, int]:
    added, removed, _ = git(repo, "diff", "--numstat").split("\t")
    return int(added), int(removed)


def test_patch_respects_limit_and_applies(make_repo) -> None:
    repo = make_repo({"pkg/m.py": MESSY})
    findings = ruff_findings(repo, "pkg/m.py")
    assert len(findings) == 30
    diff = build_fix_patch("pkg/m.py", MESSY, findings, max_lines=20)
    subprocess.run(["git", "apply", "-"], cwd=repo, input=diff, text=True, check=True)
    added, removed = numstat(repo)
    assert added + removed <= 20
    assert len(ruff_findings(repo, "pkg/m.py")) == 30 - (added + removed)


def test_repeated_patches_finish_the_file(make_repo) -> None:
    repo = make_repo({"pkg/m.py": MESSY})
    for _ in range(3):
        text = (repo / "pkg/m.py").read_text()
        diff = build_fix_patch("pkg/m.py", text, ruff_findings(repo, "pkg/m.py"), 20)
        if not diff:
            break
        subprocess.run(["git", "apply", "-"], cwd=repo, input=diff, text=True, check=True)
    assert ruff_findings(repo, "pkg/m.py") == []


def test_unsafe_or_missing_fixes_are_not_used() -> None:
    finding = {
        "gate": "ruff",
        "code": "X1",
        "path": "a.py",
        "line": 1,
        "message": "m",
        "fix": {
            "applicability": "unsafe",
            "edits": [
                {
                    "content": "",
                    "location": {"row": 1, "column": 1},
                    "end_location": {"row": 2, "column": 1},
                }
            ],
        },
    }
    assert build_fix_patch("a.py", "x = 1\n", [finding], 20) == ""
    assert build_fix_patch("a.py", "x = 1\n", [{**finding, "fix": None}], 20) == ""


def test_plan_names_what_it_cannot_do() -> None:
    req = ModelRequest(
        phase="plan",
        system="",
        messages=[],
        tools=[],
        context={
            "block": {"gates": ["pytest", "mypy", "bandit", "imports"]},
            "findings": {"mypy": [{"code": "arg-type", "message": "m", "path": "a.py"}]},
            "contracts_broken": [],
        },
    )
    resp = BuiltinProvider().complete(req)
    assert resp.tool == "submit_plan"
    assert resp.input is not None
    cannot = " ".join(resp.input["cannot_do"])
    assert "pytest" in cannot and "mypy" in cannot
    # Nothing left to do for bandit, and every contract is kept: no excuse is made for them.
    assert "bandit" not in cannot and "imports" not in cannot


def test_todo_respects_lanes(make_repo) -> None:
    repo = make_repo({"pkg/m.py": MESSY})
    findings = ruff_findings(repo, "pkg/m.py")
    ctx = {"block": {"gates": ["ruff"]}, "findings": {"ruff": findings}}
    provider = BuiltinProvider()
    inside = provider.complete(
        ModelRequest(
            phase="todo", system="", messages=[], tools=[], context={**ctx, "lanes": ["pkg/**"]}
        )
    )
    outside = provider.complete(
        ModelRequest(
            phase="todo", system="", messages=[], tools=[], context={**ctx, "lanes": ["tests/**"]}
        )
    )
    assert inside.input is not None and outside.input is not None
    # 30 fixes of one rule are more than 20 lines: two items, each naming its part.
    assert [(i["title"], i["files"]) for i in inside.input["items"]] == [
        ("ruff F401 in pkg/m.py (20 of 30 fixes)", ["pkg/m.py"]),
        ("ruff F401 in pkg/m.py (10 of 30 fixes)", ["pkg/m.py"]),
    ]
    assert outside.input["items"] == []


TYPING = (
    "import time\nfrom typing import Callable, List\n\n\n"
    "def f(x: List[int], cb: Callable[[], None]) -> List[int]:\n    time.sleep(0)\n    return x\n"
)
LINT = [
    sys.executable,
    "-m",
    "ruff",
    "check",
    "--isolated",
    "--select",
    "F,I,UP",
    "--output-format",
    "json",
    "--no-cache",
    "--exit-zero",
]


def test_checked_patch_follows_ruffs_fix_point(make_repo) -> None:
    repo = make_repo({"m.py": TYPING})
    lint = ruff_stdin_linter(LINT, str(repo))
    before = lint("m.py", TYPING)
    # Taken one by one, these fixes leave new findings (unsorted imports, an unused import).
    naive = build_fix_patch("m.py", TYPING, before, 20)
    subprocess.run(["git", "apply", "-"], cwd=repo, input=naive, text=True, check=True)
    assert _new(before, lint("m.py", (repo / "m.py").read_text()))
    git(repo, "checkout", "--", "m.py")
    checked = build_checked_fix_patch("m.py", TYPING, lint, 20)
    subprocess.run(["git", "apply", "-"], cwd=repo, input=checked, text=True, check=True)
    assert lint("m.py", (repo / "m.py").read_text()) == []


def test_checked_patch_respects_limit(make_repo) -> None:
    repo = make_repo({"pkg/m.py": MESSY})
    lint = ruff_stdin_linter(LINT, str(repo))
    diff = build_checked_fix_patch("pkg/m.py", MESSY, lint, 7)
    subprocess.run(["git", "apply", "-"], cwd=repo, input=diff, text=True, check=True)
    added, removed = numstat(repo)
    assert 0 < added + removed <= 7


def test_skip_says_when_the_file_was_not_shown() -> None:
    # The loop hands over every readable file whole, and says why it could not read the others;
    # the skip must not claim there is nothing to fix in a file the provider never saw.
    item = {"id": "R1", "title": "t", "files": ["pkg/big.py"], "gate": "ruff"}
    finding = {"gate": "ruff", "code": "F401", "path": "pkg/big.py", "line": 1, "message": "m"}
    why = "not readable as UTF-8 text (UnicodeDecodeError)"
    req = ModelRequest(
        phase="execute",
        system="",
        messages=[],
        tools=[],
        context={
            "item": item,
            "files": {},
            "missing": {"pkg/big.py": why},
            "findings": [finding],
            "max_lines": 20,
        },
    )
    resp = BuiltinProvider().complete(req)
    assert resp.input is not None and resp.input["action"] == "skip"
    assert f"pkg/big.py ({why})" in resp.input["explanation"]
    shown = req.model_copy(update={"context": {**req.context, "files": {"pkg/big.py": "x = 1\n"}}})
    resp = BuiltinProvider().complete(shown)
    assert resp.input is not None and resp.input["explanation"] == "no fix applies"


# An import block shaped like python-dateutil 2.8.2's tz/tz.py after its other fixes, in a file
# long enough (>= 200 lines) for difflib's autojunk heuristic: ruff's single I001 edit is 20
# lines by `git diff --numstat` (what the guard counts) but 22 by a difflib count.
IMPORTS = (
    '"""Doc."""\nimport datetime\nimport struct\nimport time\nimport sys\nimport os\n'
    "import bisect\nimport weakref\nfrom collections import OrderedDict\n\nimport six\n"
    "from six import string_types\nfrom six.moves import _thread\n"
    "from ._common import tzname_in_python2, _tzinfo\nfrom ._common import tzrangebase, enfold\n"
    "from ._common import _validate_fromutc_inputs\n\n"
    "from ._factories import _TzSingleton, _TzOffsetFactory\n"
    "from ._factories import _TzStrFactory\n"
    "try:\n    from .win import tzwin, tzwinlocal\nexcept ImportError:\n"
    "    tzwin = tzwinlocal = None\n\n# For warning about rounding tzinfo\n\n"
    "ZERO = datetime.timedelta(0)\nEPOCH = datetime.datetime.utcfromtimestamp(0)\n\n\n"
    '__all__ = ["datetime", "struct", "time", "sys", "os", "bisect", "weakref", "OrderedDict"]\n'
) + "".join(f"\n\ndef f{i}():\n    return {i}\n" for i in range(60))


def test_limit_is_counted_as_the_guard_counts(make_repo) -> None:
    repo = make_repo({"pkg/tz.py": IMPORTS})
    lint = ruff_stdin_linter([*LINT[:6], "I", *LINT[7:]], str(repo))
    findings = lint("pkg/tz.py", IMPORTS)
    assert [f["code"] for f in findings] == ["I001"]
    diff = build_fix_patch("pkg/tz.py", IMPORTS, findings, 20)
    assert diff, "a fix of exactly 20 numstat lines fits a limit of 20"
    subprocess.run(["git", "apply", "-"], cwd=repo, input=diff, text=True, check=True)
    assert sum(numstat(repo)) == 20
    assert lint("pkg/tz.py", (repo / "pkg/tz.py").read_text()) == []
    assert build_fix_patch("pkg/tz.py", IMPORTS, findings, 19) == ""


def test_plan_says_truly_why_each_ruff_finding_is_left(make_repo) -> None:
    # A safe fix, an unsafe one, none at all, and a safe one outside the lanes: "no safe
    # automatic fix" must not be said of a finding that has one.
    code = (
        "import mod1\n\n\ndef g(x):\n    if x == None:\n        return 1\n    l = 2\n    return l\n"
    )
    repo = make_repo({"pkg/m.py": code, "tests/t.py": "import os\n"})
    lint = ruff_stdin_linter([*LINT[:6], "F,E", *LINT[7:]], str(repo))
    findings = lint("pkg/m.py", code) + lint("tests/t.py", "import os\n")
    ctx = {
        "block": {"gates": ["ruff"]},
        "findings": {"ruff": findings},
        "lanes": ["pkg/**"],
        "max_lines": 20,
    }
    resp = BuiltinProvider().complete(
        ModelRequest(phase="plan", system="", messages=[], tools=[], context=ctx)
    )
    assert resp.input is not None
    assert resp.input["steps"][0].startswith("Apply ruff's safe fixes (1 in 1 files)")
    assert resp.input["steps"][1].startswith("Apply ruff's unsafe fixes (1 in 1 files)")
    assert resp.input["cannot_do"] == [
        "ruff: 1 finding has a fix, in a file outside this block's lanes",
        "ruff: 1 finding has no automatic fix",
    ]


# -------------------------------------------------------------- one rule per patch, and beyond
# A sorted `__slots__` (RUF023) that a test may rely on, next to innocent fixes: an unused
# import (F401), `List` (UP006, whose fix leaves `List` unused), an f-string without
# placeholders (F541), and `== None` (E711, a fix ruff marks unsafe).
SLOTS = (
    'import os\nfrom typing import List\n\n\nclass A:\n    __slots__ = ("b", "a")\n\n\n'
    'def names(xs: List[str], x=None) -> str:\n    if x == None:\n        return ""\n'
    '    return f"names: " + ",".join(xs)\n'
)
WIDE = [*LINT[:6], "F,E,I,UP,RUF", *LINT[7:]]


def ask(provider: BuiltinProvider, phase: str, ctx: dict[str, Any]) -> dict[str, Any]:
    req = ModelRequest(phase=phase, system="", messages=[], tools=[], context=ctx)  # type: ignore[arg-type]
    resp = provider.complete(req)
    assert resp.input is not None
    return resp.input


def block_ctx(repo: Path, argv: list[str], paths: list[str], **more: Any) -> dict[str, Any]:
    """What the loop gives the plan and todo phases, with the gate's findings of `paths`."""
    lint = ruff_stdin_linter(argv, str(repo))
    found = [f for p in paths for f in lint(p, (repo / p).read_text())]
    return {
        "block": {"gates": ["ruff"], "gate_commands": more.pop("commands", ["ruff check ."])},
        "findings": {"ruff": found},
        "lanes": [],
        "max_lines": 20,
        "max_items": 12,
        "lint": {"argv": argv, "cwd": str(repo)},
        **more,
    }


def execute(
    provider: BuiltinProvider, repo: Path, item: dict[str, Any], ctx: dict[str, Any]
) -> dict[str, Any]:
    """The execute phase as the loop calls it; a patch is applied and committed."""
    lint = ruff_stdin_linter(ctx["lint"]["argv"], str(repo))
    files = {p: (repo / p).read_text() for p in item["files"]}
    found = [f for p, t in files.items() for f in lint(p, t)]
    answer = ask(
        provider,
        "execute",
        {**ctx, "item": item, "files": files, "findings": found, "attempt": 0},
    )
    if answer["action"] == "patch":
        subprocess.run(["git", "apply", "-"], cwd=repo, input=answer["diff"], text=True, check=True)
        git(repo, "commit", "-qam", item["title"])
    return answer


def codes(repo: Path, argv: list[str], path: str) -> list[str]:
    lint = ruff_stdin_linter(argv, str(repo))
    return sorted(f["code"] for f in lint(path, (repo / path).read_text()))


def test_one_rule_per_patch_safe_fixes_first_then_unsafe(make_repo) -> None:
    repo = make_repo({"m.py": SLOTS})
    provider = BuiltinProvider()
    ctx = block_ctx(repo, WIDE, ["m.py"])
    items = ask(provider, "todo", ctx)["items"]
    assert [i["title"] for i in items] == [
        "ruff F401 in m.py (1 fix)",
        "ruff F541 in m.py (1 fix)",
        "ruff RUF023 in m.py (1 fix)",
        "ruff UP006 in m.py (1 fix)",
        "ruff E711 in m.py (1 unsafe fix)",
    ]
    assert {i["gate"] for i in items} == {"ruff"} and all(i["files"] == ["m.py"] for i in items)
    assert codes(repo, WIDE, "m.py") == ["E711", "F401", "F541", "RUF023", "UP006", "UP035"]
    left = [["E711", "F541", "RUF023", "UP006", "UP035"], ["E711", "RUF023", "UP006", "UP035"]]
    # UP006's fix leaves `List` unused: its patch also takes ruff's fix of that (fix-point).
    left += [["E711", "UP006", "UP035"], ["E711"], []]
    for item, after in zip(items, left, strict=True):
        answer = execute(provider, repo, item, ctx)
        assert answer["action"] == "patch", answer
        assert codes(repo, WIDE, "m.py") == after, item["title"]
    log = git(repo, "log", "--format=%s", "-5").splitlines()
    assert log == [i["title"] for i in reversed(items)]
    assert '__slots__ = ("a", "b")' in (repo / "m.py").read_text()


UP032 = (
    "def f(name, value, other):\n"
    '    a = "{} is {}".format(name, value)\n'
    '    b = "result for this item: {0} / {0} / {0} / {0}".format(other.attribute)\n'
    '    c = "{}-{}".format(name, other)\n'
    "    return a, b, c\n"
)


WHY_E501 = "each fix within the line limit would leave a new ruff finding"


def test_a_fix_that_would_add_e501_costs_only_itself(make_repo) -> None:
    # `ruff check --fix` takes all three and leaves a 113-character line; all at once adds an
    # E501, so the rule is applied finding by finding, and the other two are kept.
    repo = make_repo({"u.py": UP032})
    argv = [*LINT[:6], "UP032,E501", *LINT[7:]]
    provider = BuiltinProvider()
    ctx = block_ctx(repo, argv, ["u.py"])
    items = ask(provider, "todo", ctx)["items"]
    assert [i["title"] for i in items] == ["ruff UP032 in u.py (3 fixes)"]
    assert execute(provider, repo, items[0], ctx)["action"] == "patch"
    text = (repo / "u.py").read_text()
    assert 'a = f"{name} is {value}"' in text and 'c = f"{name}-{other}"' in text
    assert ".format(other.attribute)" in text
    assert codes(repo, argv, "u.py") == ["UP032"]
    # What is left adds an E501 whatever is done: it is not listed again in this run.
    ctx = block_ctx(repo, argv, ["u.py"])
    items = ask(provider, "todo", ctx)["items"]
    assert execute(provider, repo, items[0], ctx) == {
        "item_id": "R1",
        "action": "skip",
        "explanation": WHY_E501,
    }
    assert ask(provider, "todo", ctx)["items"] == []
    assert f"ruff UP032 in u.py: {WHY_E501}" in ask(provider, "plan", ctx)["cannot_do"]


UGLY_SMALL = "x = {'a':1}\n"
UGLY_BIG = "".join(f"def f{i}( a,b ):\n  return a+b\n" for i in range(10))


def test_ruff_format_where_the_block_runs_it_within_the_limit(make_repo) -> None:
    repo = make_repo({"pkg/small.py": UGLY_SMALL, "pkg/big.py": UGLY_BIG, "pkg/ok.py": "x = 1\n"})
    provider = BuiltinProvider()
    ctx = block_ctx(repo, WIDE, [], commands=["ruff check pkg", "ruff format --check pkg"])
    plan = ask(provider, "plan", ctx)
    assert plan["steps"] == ["Run ruff format on 1 files, one file per patch."]
    # The count is the one the guard would make (git's numstat) of the whole format.
    subprocess.run(
        [sys.executable, "-m", "ruff", "format", "-q", "pkg/big.py"], cwd=repo, check=True
    )
    n = sum(numstat(repo))
    git(repo, "checkout", "--", "pkg/big.py")
    assert n > 20
    assert [c for c in plan["cannot_do"] if c.startswith("ruff format")] == [
        f"ruff format: over the per-file limit ({n} lines in 1 files: pkg/big.py)"
    ]
    items = ask(provider, "todo", ctx)["items"]
    assert [i["title"] for i in items] == ["ruff format pkg/small.py (2 changed lines)"]
    assert execute(provider, repo, items[0], ctx)["action"] == "patch"
    assert (repo / "pkg/small.py").read_text() == 'x = {"a": 1}\n'
    # Without a `ruff format` command in the block, nothing is formatted.
    ctx = block_ctx(repo, WIDE, [], commands=["ruff check pkg"])
    assert ask(provider, "todo", ctx)["items"] == []


def test_a_refused_or_reverted_change_is_not_proposed_again(make_repo) -> None:
    repo = make_repo({"m.py": SLOTS})
    reason = "reverted earlier in this run (tests/test_m.py::test_order broke)"
    # By (path, rule): the plan says why, and no item is made for it.
    avoid = [{"patch_id": "0" * 40, "path": "m.py", "rule": "RUF023", "reason": reason}]
    ctx = block_ctx(repo, WIDE, ["m.py"], avoid=avoid)
    provider = BuiltinProvider()
    assert f"ruff RUF023 in m.py: {reason}" in ask(provider, "plan", ctx)["cannot_do"]
    titles = [i["title"] for i in ask(provider, "todo", ctx)["items"]]
    assert "ruff RUF023 in m.py (1 fix)" not in titles and len(titles) == 4
    # By patch-id: the id of the commit that landed the change and was reverted.
    item = {"id": "R1", "title": "ruff RUF023 in m.py (1 fix)", "files": ["m.py"], "gate": "ruff"}
    assert execute(provider, repo, item, block_ctx(repo, WIDE, ["m.py"]))["action"] == "patch"
    landed = commit_change_key(open_repo(repo), "HEAD")
    git(repo, "revert", "--no-edit", "HEAD")
    avoid = [{"patch_id": landed, "path": "m.py", "rule": None, "reason": reason}]
    ctx = block_ctx(repo, WIDE, ["m.py"], avoid=avoid)
    answer = execute(provider, repo, item, ctx)
    assert answer["action"] == "skip"
    assert answer["explanation"] == f"the same change was {reason}"
    assert "ruff RUF023 in m.py (1 fix)" not in [
        i["title"] for i in ask(provider, "todo", ctx)["items"]
    ]
    # The other fixes are still proposed, and land.
    other = {**item, "title": "ruff F541 in m.py (1 fix)"}
    assert execute(provider, repo, other, ctx)["action"] == "patch"


def test_titles_read_back() -> None:
    assert item_work("ruff UP032 in src/a b.py (3 of 17 fixes)") == Work(
        SAFE, "UP032", "src/a b.py", 3
    )
    assert item_work("ruff E711 in x.py (1 unsafe fix)") == Work(UNSAFE, "E711", "x.py", 1)
    assert item_work("ruff format x.py (2 changed lines)") == Work(FORMAT, FORMAT, "x.py")
    assert item_rule("Fix the typing errors in x.py") is None
    assert item_rule("ruff format x.py (1 changed line)") == "format"


# attrs 21.4.0's `__init__.pyi`: every PYI026 fix rewrites the whole `from typing import (...)`
# block to add `TypeAlias`, an edit they all share; the change is 1 line per alias plus 1.
STUB_NAMES = ["Any", "Callable", "Dict", "List", "Mapping", "Optional", "Tuple", "Union"]
STUB = (
    "from typing import (\n"
    + "".join(f"    {n},\n" for n in STUB_NAMES)
    + ")\n\n"
    + "".join(f"_A{i} = Union[int, Tuple[str, ...], Callable[..., Any]]\n" for i in range(8))
    + "".join(
        f"def f{i}(x: _A{i}) -> Optional[Mapping[str, List[Dict[str, int]]]]: ...\n"
        for i in range(8)
    )
)


def test_fixes_that_share_a_rewritten_import_are_one_patch(make_repo) -> None:
    repo = make_repo({"s.pyi": STUB})
    argv = [*LINT[:6], "PYI026", *LINT[7:]]
    provider = BuiltinProvider()
    ctx = block_ctx(repo, argv, ["s.pyi"])
    items = ask(provider, "todo", ctx)["items"]
    # Counted rewritten line by rewritten line, each fix was 14 lines: 8 patches of 1 fix.
    assert [i["title"] for i in items] == ["ruff PYI026 in s.pyi (8 fixes)"]
    assert execute(provider, repo, items[0], ctx)["action"] == "patch"
    assert codes(repo, argv, "s.pyi") == []
    assert git(repo, "diff", "--numstat", "HEAD~1").split("\t")[:2] == ["9", "8"]


# attrs' `__init__.pyi` again: adding `TypeAlias` to an unused private alias makes ruff report
# it as unused (PYI047, no fix), so the PYI026 fix is left. The loop gives no findings with a
# `.pyi` item.
UNUSED_ALIAS = "from typing import Any, Callable\n\n_Cmp = Callable[[Any, Any], bool]\n"


def test_a_stub_fix_left_for_a_new_finding_says_so_and_is_not_listed_again(make_repo) -> None:
    repo = make_repo({"s.pyi": UNUSED_ALIAS})
    argv = [*LINT[:6], "PYI", *LINT[7:]]
    provider = BuiltinProvider()
    ctx = block_ctx(repo, argv, ["s.pyi"])
    items = ask(provider, "todo", ctx)["items"]
    assert [i["title"] for i in items] == ["ruff PYI026 in s.pyi (1 fix)"]
    files = {"s.pyi": UNUSED_ALIAS}
    answer = ask(
        provider, "execute", {**ctx, "item": items[0], "files": files, "findings": [], "attempt": 0}
    )
    assert answer == {"item_id": "R1", "action": "skip", "explanation": WHY_E501}
    assert ask(provider, "todo", ctx)["items"] == []
    assert f"ruff PYI026 in s.pyi: {WHY_E501}" in ask(provider, "plan", ctx)["cannot_do"]


# attrs' `Attribute.__slots__`, which RUF023 sorts: difflib and git pair the moved lines
# differently, and the loop keys a refused change by the guard's (git's) diff.
ATTRIBUTE_SLOTS = ["name", "default", "validator", "repr", "eq", "eq_key", "order", "order_key"]
ATTRIBUTE_SLOTS += [
    "hash",
    "init",
    "metadata",
    "type",
    "converter",
    "kw_only",
    "inherited",
    "on_setattr",
]
ATTRIBUTE = (
    "class Attribute:\n    __slots__ = (\n"
    + "".join(f'        "{n}",\n' for n in ATTRIBUTE_SLOTS)
    + "    )\n"
)


def test_a_refused_reordering_is_recognised_when_proposed_again(make_repo) -> None:
    repo = make_repo({"a.py": ATTRIBUTE})
    argv = [*LINT[:6], "RUF023", *LINT[7:]]
    provider = BuiltinProvider()
    ctx = block_ctx(repo, argv, ["a.py"])
    (item,) = ask(provider, "todo", ctx)["items"]
    files = {"a.py": ATTRIBUTE}
    asked = {**ctx, "item": item, "files": files, "findings": [], "attempt": 0}
    proposed = ask(provider, "execute", asked)
    assert proposed["action"] == "patch"
    landed = check_patch(proposed["diff"], repo, GuardConfig())
    assert landed.accepted and change_key(landed.diff) == change_key(proposed["diff"])
    refused = {"path": "a.py", "patch_id": change_key(landed.diff), "reason": "refused at landing"}
    again = ask(provider, "execute", {**asked, "avoid": [refused]})
    assert again == {
        "item_id": item["id"],
        "action": "skip",
        "explanation": "the same change was refused at landing",
    }


# ------------------------------------------------- through the loop: halves, and packed patches
def loop_run(
    make_repo: Any, files: dict[str, str], select: str, verify: bool, iterations: int
) -> tuple[Any, Path]:
    from tests.conftest import other_gates_off
    from tests.test_loop import options

    steps = "# STEPS\n\n## BLOCK 1 — Ruff to 0\n\nRun: `ruff check pkg`\n"
    policy = (
        "detect = false\n"
        + other_gates_off("ruff", "pytest")
        + f'\n[gates.ruff]\npaths = ["pkg"]\nargs = ["--select", "{select}"]\n'
        + '[gates.pytest]\nargs = ["-q"]\n'
        + f"[loop]\nmax_iterations = {iterations}\nverify_patches = {str(verify).lower()}\n"
    )
    repo = make_repo(files)
    from harness.loop import Loop

    return Loop(options(repo, BuiltinProvider(), steps=steps, policy=policy)).run(), repo


def loop_events(summary: Any, kind: str) -> list[dict[str, Any]]:
    rows = (Path(summary.run_dir) / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, rows) if e["kind"] == kind]


# Three `__slots__` RUF023 sorts in one file; a test relies on the middle one's order.
THREE_SLOTS = {
    "pkg/__init__.py": "",
    # Distinct slots: the loop keys a change by its lines, so three identical sorts would be
    # one change to it.
    "pkg/mod.py": "".join(
        f'class {name}:\n    __slots__ = ("{b}", "{a}")\n\n\n'
        for name, b, a in (("A", "b", "a"), ("B", "d", "c"), ("C", "f", "e"))
    ),
    "tests/test_mod.py": (
        "from pkg.mod import A, B, C\n\n\n"
        "def test_order():\n"
        '    assert B.__slots__ == ("d", "c")\n\n\n'
        "def test_classes():\n"
        "    assert A() is not C()\n"
    ),
}


def test_a_harmful_fix_among_three_of_one_rule_is_left_alone_and_the_others_land(
    make_repo,
) -> None:
    summary, repo = loop_run(make_repo, THREE_SLOTS, "RUF023", verify=True, iterations=3)
    block = summary.blocks[0]
    assert block.reverts == [] and len(block.commits) == 2, block
    tip = git(repo, "show", f"{summary.branch}:pkg/mod.py")
    assert '("a", "b")' in tip and '("e", "f")' in tip and '("d", "c")' in tip
    # Each commit is one RUF023 fix, and says so.
    for sha in block.commits:
        subject = git(repo, "log", "-1", "--format=%s", sha).strip()
        assert subject.startswith("harness: ruff RUF023 in pkg/mod.py ("), subject
        assert git(repo, "show", "--numstat", "--format=", sha).split()[:2] == ["1", "1"]
    # Refused as one patch of three, then alone; never proposed after that.
    diffs = [v["diff"] for v in loop_events(summary, "verdict")]
    harmful = [d for d in diffs if '-    __slots__ = ("d", "c")' in d]
    assert len(harmful) == 2 and harmful[0].count("\n-  ") == 3, diffs
    assert harmful[1].count("\n-  ") == 1, harmful[1]
    refused = [c for c in loop_events(summary, "patch_check") if not c["ok"]]
    assert len(refused) == 2 and not loop_events(summary, "refused_again")
    assert all("test_order" in c["reasons"][0] for c in refused)
    assert any(
        c.startswith("ruff RUF023 in pkg/mod.py: 1 fix refused at landing") for c in block.cannot_do
    ), block.cannot_do


# An f-string without placeholders (F541): each fix changes one line (1 removed, 1 added).
def fstrings(n: int) -> str:
    return "".join(f'X{i} = f"value {i}"\n' for i in range(n))


def test_many_small_fixes_of_one_rule_take_as_few_patches_as_the_limit_allows(
    make_repo,
) -> None:
    files = {"pkg/__init__.py": "", "pkg/big.py": fstrings(25)}
    files |= {f"pkg/m{i}.py": fstrings(1) for i in range(3)}
    summary, repo = loop_run(make_repo, files, "F541", verify=False, iterations=1)
    block = summary.blocks[0]
    # 25 fixes of 2 changed lines in one file need 3 patches of at most 20 lines (10, 10, 5);
    # the three other files' fixes ride along in the first, each file within its own limit.
    assert len(block.commits) == 3 and block.rejected == 0, block
    subjects = sorted(git(repo, "log", "-1", "--format=%s", c).strip() for c in block.commits)
    assert subjects == [
        "harness: ruff F541 in 4 files (13 of 28 fixes)",
        "harness: ruff F541 in pkg/big.py (10 of 25 fixes)",
        "harness: ruff F541 in pkg/big.py (5 of 25 fixes)",
    ]
    for sha in block.commits:
        for row in git(repo, "show", "--numstat", "--format=", sha).strip().splitlines():
            added, removed, _path = row.split("\t")
            assert int(added) + int(removed) <= 20
    assert summary.summary["gates"]["ruff"]["status"] == "passed", summary.summary


def test_an_unused_noqa_is_left_where_the_project_also_runs_flake8(make_repo) -> None:
    # ruff calls a suppression unused when it does not select its rule or sees no finding;
    # flake8, configured by the project, may be what it is for (more-itertools' __init__.py).
    code = "x = 1  # noqa: E501\n"
    plain = make_repo({"m.py": code}, name="plain")
    items = ask(BuiltinProvider(), "todo", block_ctx(plain, WIDE, ["m.py"]))["items"]
    assert [i["title"] for i in items] == ["ruff RUF100 in m.py (1 fix)"]
    linted = make_repo({"m.py": code, "setup.cfg": "[flake8]\nmax-line-length = 79\n"})
    ctx = block_ctx(linted, WIDE, ["m.py"])
    assert ask(BuiltinProvider(), "todo", ctx)["items"] == []
    why = "ruff RUF100 in m.py: flake8 reads the same `# noqa` (setup.cfg [flake8])"
    assert why in ask(BuiltinProvider(), "plan", ctx)["cannot_do"]


# -------------------------------------------------------- the project's line length (flake8 79)
# Two UP032 fixes: `g`'s fits in 79 columns, `f`'s joins the call onto one line of 84.
FORMAT_CALLS = (
    "def f(first_argument, second_argument):\n"
    "    raise ValueError(\n"
    '        "the long message says {} and then it says {}".format(\n'
    "            first_argument, second_argument\n"
    "        )\n"
    "    )\n\n\n"
    'def g(x):\n    return "{}!".format(x)\n'
)


def project_ctx(repo: Path, **more: Any) -> dict[str, Any]:
    """The block context with the lint command the loop would give, from the policy detected."""
    policy = resolve_policy(repo).policy
    argv = check_argv(context_for(repo, policy, policy.gates.ruff))
    return block_ctx(repo, argv, ["m.py"], **more)


def test_no_fix_writes_a_line_over_the_projects_flake8_length(make_repo) -> None:
    repo = make_repo(
        {
            "setup.cfg": "[flake8]\nmax-line-length = 79\n",
            # ruff's own config selects the rule, not E501, and sets no line length.
            "pyproject.toml": '[tool.ruff.lint]\nselect = ["UP032"]\n',
            "m.py": FORMAT_CALLS,
        }
    )
    ctx = project_ctx(repo)
    assert ctx["lint"]["argv"][-2:] == ["--line-length", "79"]
    provider = BuiltinProvider()
    [item] = ask(provider, "todo", ctx)["items"]
    assert item["title"] == "ruff UP032 in m.py (2 fixes)"
    assert execute(provider, repo, item, ctx)["action"] == "patch"
    text = (repo / "m.py").read_text()
    assert 'return f"{x}!"' in text and ".format(\n" in text
    assert max(len(line) for line in text.splitlines()) <= 79
    # Asked again, it says why the other is left.
    again = execute(provider, repo, item, ctx)
    assert again["action"] == "skip" and "new ruff finding" in again["explanation"]
    # At ruff's default length the same check takes both, one line of 84 columns.
    plain = [a for a in ctx["lint"]["argv"] if a not in ("--line-length", "79")]
    both = build_checked_fix_patch("m.py", FORMAT_CALLS, ruff_stdin_linter(plain, str(repo)), 20)
    assert max(len(line) for line in both.splitlines()) == 85  # "+" and 84 columns


OLD_STYLE = 'class A(object):\n    pass\n\n\ndef f(x):\n    return "%s!" % x\n'


def test_no_pyupgrade_fix_for_a_project_older_than_ruffs_lowest_target(make_repo) -> None:
    # cachetools 4.2.4's floor: ruff's UP031 f-string and UP004 would not run on 3.5.
    files = {"pyproject.toml": '[tool.ruff.lint]\nselect = ["UP", "F"]\n', "m.py": OLD_STYLE}
    repo = make_repo({**files, "setup.cfg": "[options]\npython_requires = >=3.5\n"})
    policy = resolve_policy(repo).policy
    lint = lint_command(context_for(repo, policy, policy.gates.ruff))
    assert lint["python_floor"] == "3.5" and lint["argv"][-2:] == ["--target-version", "py37"]
    ctx = block_ctx(repo, lint["argv"], ["m.py"])
    ctx["lint"] = lint
    assert sorted(f["code"] for f in ctx["findings"]["ruff"]) == ["UP004", "UP031"]
    provider = BuiltinProvider()
    why = "the project supports Python 3.5, older than ruff's lowest target 3.7"
    cannot = ask(provider, "plan", ctx)["cannot_do"]
    assert f"ruff UP004 in m.py: {why}" in cannot
    assert f"ruff UP031 in m.py (unsafe fix): {why}" in cannot
    assert ask(provider, "todo", ctx)["items"] == []
    # An item of another provider's making (all safe fixes of the file) takes none either.
    item = {"id": "R1", "title": "tidy m.py", "files": ["m.py"], "gate": "ruff"}
    assert execute(provider, repo, item, ctx)["action"] == "skip"
    # A floor ruff can express: the same fixes are proposed.
    newer = make_repo({**files, "setup.cfg": "[options]\npython_requires = >=3.8\n"}, "newer")
    policy = resolve_policy(newer).policy
    lint = lint_command(context_for(newer, policy, policy.gates.ruff))
    ctx = {**block_ctx(newer, lint["argv"], ["m.py"]), "lint": lint}
    titles = [i["title"] for i in ask(BuiltinProvider(), "todo", ctx)["items"]]
    assert titles == ["ruff UP004 in m.py (1 fix)", "ruff UP031 in m.py (1 unsafe fix)"]


def test_ruff_format_formats_at_the_projects_black_length(make_repo) -> None:
    call = "result = some_function_name(first_argument_value, second_argument_value, third_value)\n"
    assert len(call) - 1 == 85  # within ruff's default 88
    repo = make_repo({"pyproject.toml": "[tool.black]\nline-length = 79\n", "m.py": call})
    provider = BuiltinProvider()
    ctx = project_ctx(repo, commands=["ruff format --check ."])
    [item] = ask(provider, "todo", ctx)["items"]
    assert execute(provider, repo, item, ctx)["action"] == "patch"
    text = (repo / "m.py").read_text()
    assert text.startswith("result = some_function_name(\n")
    assert max(len(line) for line in text.splitlines()) <= 79


def test_notes_at_the_blocks_end_say_what_is_left_then() -> None:
    def finding(code: str, path: str, fix: str | None) -> dict[str, Any]:
        return {"code": code, "path": path, "fix": {"applicability": fix} if fix else None}

    planned = [
        "mypy: " + CANNOT["mypy"],
        "ruff: 3 findings have no automatic fix",
        "ruff: 1 finding has only a fix ruff marks display-only (it shows it, never applies it)",
        "ruff UP032 in a.py: each fix within the line limit would leave a new ruff finding",
        "ruff E711 in b.py (unsafe fix): 1 fix reverted earlier in this run",
        "ruff format: over the per-file limit (40 lines in 1 files: c.py)",
    ]
    end = {
        "block": {"gates": ["ruff", "mypy"]},
        "findings": {"ruff": [finding("E741", "a.py", None), finding("UP032", "a.py", "safe")]},
        "lanes": [],
    }
    assert notes_at_end(planned, end) == [
        "ruff: 1 finding has no automatic fix",
        "ruff UP032 in a.py: each fix within the line limit would leave a new ruff finding",
        "ruff format: over the per-file limit (40 lines in 1 files: c.py)",
    ]
    # What the plan would say of the same findings is what the end says.
    plan = ask(BuiltinProvider(), "plan", end)
    assert [n for n in plan["cannot_do"] if n.startswith("ruff: ")] == [
        "ruff: 1 finding has no automatic fix"
    ]
